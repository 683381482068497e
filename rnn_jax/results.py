"""Run directories: every run leaves a folder that explains itself.

    results/<experiment>/<run_name>/
      config.json      the full config, written before step 0
      metrics.jsonl    one JSON object per logged step: {"step": ..., "loss": ..., ...}
      summary.json     final metrics, wall time, parameter count, versions
      checkpoints/     orbax checkpoints (rnn_jax.checkpoint)
      curves.png       learning curves, drawn from metrics.jsonl by `plot_curves`

Plots are drawn from the files, so they can be redrawn without re-running.
"""

import dataclasses
import json
import math
import platform
import shutil
from pathlib import Path
from typing import Any

import jax
import numpy as np

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVES = "curves.png"


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples, numpy/JAX scalars and arrays -> plain JSON values (NaN -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        value = np.asarray(value)
        value = value.item() if value.ndim == 0 else value.tolist()
        return to_jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on, for summary.json."""
    import flax
    import optax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
    }


def num_params(params: Any) -> int:
    """Total number of scalars in a params pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


class Run:
    """A run directory. `Run.create` makes it and writes config.json; `Run(path)` opens it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(
        cls,
        out_dir: str | Path,
        experiment: str,
        run_name: str,
        config: Any,
        *,
        overwrite: bool = False,
    ) -> "Run":
        """Creates `out_dir/experiment/run_name/` and writes `config.json`.

        An existing directory is reused (so an interrupted run resumes) only if it was made
        with the same config; otherwise a ValueError names the differing keys. With
        `overwrite=True` an existing directory is deleted first.
        """
        if not run_name or "/" in run_name:
            raise ValueError(f"expected a non-empty run name without '/', received {run_name!r}")
        run = cls(Path(out_dir) / experiment / run_name)
        config = to_jsonable(config)
        if overwrite and run.path.exists():
            shutil.rmtree(run.path)
        if (run.path / CONFIG).exists():
            old = json.loads((run.path / CONFIG).read_text())
            if old != config:
                keys = sorted(k for k in set(old) | set(config) if old.get(k) != config.get(k))
                changes = ", ".join(f"{k}: {old.get(k)!r} -> {config.get(k)!r}" for k in keys)
                raise ValueError(
                    f"run directory {run.path} holds a run with a different config ({changes}); "
                    "choose another --run_name, or pass --overwrite to replace it"
                )
        run.path.mkdir(parents=True, exist_ok=True)
        _write_json(run.path / CONFIG, config)
        return run

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def config(self) -> dict:
        return json.loads((self.path / CONFIG).read_text())

    def log(self, record: dict) -> None:
        """Appends one JSON object (one logged step) to metrics.jsonl."""
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(to_jsonable(record)) + "\n")

    def metrics(self) -> list[dict]:
        """Every record in metrics.jsonl, in order ([] when there is none)."""
        return read_metrics(self.path)

    def truncate_metrics(self, last_step: int) -> list[dict]:
        """Keeps only records with `step <= last_step` (used on resume: steps after the
        checkpoint will be run again). Returns the kept records."""
        kept = [r for r in self.metrics() if r.get("step", 0) <= last_step]
        with open(self.path / METRICS, "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        return kept

    def write_summary(self, summary: dict) -> None:
        """Writes summary.json, adding the package versions."""
        _write_json(self.path / SUMMARY, {**to_jsonable(summary), "versions": versions()})

    def update_summary(self, extra: dict) -> None:
        """Adds keys to an existing summary.json (e.g. an experiment's own results)."""
        path = self.path / SUMMARY
        summary = json.loads(path.read_text()) if path.exists() else {"versions": versions()}
        _write_json(path, {**summary, **to_jsonable(extra)})

    def summary(self) -> dict:
        return json.loads((self.path / SUMMARY).read_text())


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / METRICS
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_csv(path: str | Path, rows: list[dict]) -> Path:
    """Writes `rows` (dicts with the same keys) as CSV, e.g. a sweep's sweep.csv."""
    import csv

    path = Path(path)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]) if rows else [])
        writer.writeheader()
        writer.writerows(to_jsonable(rows))
    return path


def markdown_table(rows: list[dict], columns: list[str] | None = None) -> str:
    """`rows` as a Markdown table (floats to 3 decimals; None as '-')."""
    columns = columns or (list(rows[0]) if rows else [])

    def cell(value):
        if value is None:
            return "-"
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(row.get(c)) for c in columns) + " |" for row in rows]
    return "\n".join(lines)


def _write_json(path: Path, value: Any) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(value, indent=2, sort_keys=True) + "\n")
    tmp.replace(path)  # atomic: an interrupt never leaves half a file


def plot_curves(run_dir: str | Path, *, filename: str = CURVES) -> Path | None:
    """Draws every numeric metric in metrics.jsonl against step, one panel per metric.

    Losses and gradient norms use a log y-axis. Returns the PNG path, or None when there is
    nothing to plot.
    """
    records = read_metrics(run_dir)
    names = sorted(
        {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and k != "step"}
        - {"wall_s", "steps_per_s"}
    )
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        points = [(r["step"], r[name]) for r in records if r.get(name) is not None]
        steps, values = zip(*points)
        ax.plot(steps, values, marker="." if len(points) < 30 else None)
        if ("loss" in name or "norm" in name) and min(values) > 0:
            ax.set_yscale("log")
        ax.set_title(name)
        ax.set_xlabel("step")
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    fig.suptitle(Path(run_dir).name)
    fig.tight_layout()
    out = Path(run_dir) / filename
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
