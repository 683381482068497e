"""A run's learning curves, curves.png, drawn from its metrics.jsonl (so they can be redrawn
without re-running)."""

import math
from pathlib import Path

from rnn_jax.training.records import CURVES, read_metrics


def plot_curves(run_dir: str | Path, *, filename: str = CURVES) -> Path | None:
    """Draws every numeric metric in metrics.jsonl against step, one panel per metric (one line
    per member of a population).

    Losses and gradient norms use a log y-axis. Returns the PNG path, or None when there is
    nothing to plot.
    """
    records = read_metrics(run_dir)
    names = sorted(
        {k for r in records for k, v in r.items() if isinstance(v, (int, float)) and k != "step"}
        - {"wall_s", "steps_per_s", "member"}
    )
    if not names:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(3, len(names))
    rows = math.ceil(len(names) / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4 * columns, 3 * rows), squeeze=False)
    members = list(dict.fromkeys(r.get("member") for r in records))  # [None]: one model
    for ax, name in zip(axes.flat, names):
        lowest = math.inf
        for member in members:
            points = [(r["step"], r[name]) for r in records
                      if r.get(name) is not None and r.get("member") == member]
            if not points:
                continue
            steps, values = zip(*points)
            lowest = min(lowest, *values)
            ax.plot(steps, values, marker="." if len(points) < 30 else None,
                    linewidth=1 if len(members) > 1 else 1.5)
        if ("loss" in name or "norm" in name) and lowest > 0:
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
