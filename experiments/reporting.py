"""Tables and figures over populations, for every experiment's `report`.

Each population's run directory holds a row per member per logged step (metrics.jsonl) and
each member's outcome (summary.json `"members"`). Here they become, per configuration: mean,
standard deviation, median and 95 % t-interval over members of a final metric; success
rates with Wilson intervals and steps to success; learning curves as the median with an
interquartile band (rnn_jax.stats, rnn_jax.population_plots).
"""

from pathlib import Path
from typing import Sequence

from rnn_jax import population_plots, results, stats


def finals(run: results.Run) -> list[dict]:
    """Each member's outcome with its last record: `[{member, stopped, steps, final}]`."""
    return run.summary()["members"]


def label(config, fields: Sequence[str]) -> str:
    return " ".join(f"{f}={getattr(config, f)}" for f in fields) or "all"


def steps_to_reach(run: results.Run, metric: str, value: float) -> dict[int, int | None]:
    """Per member: the first logged step at which `metric >= value`, or None if it never did."""
    first = {}
    for row in run.metrics():
        member = row.get("member", 0)
        first.setdefault(member, None)
        if first[member] is None and row.get(metric) is not None and row[metric] >= value:
            first[member] = row["step"]
    return first


def metric_row(outcomes: list[dict], metric: str) -> dict:
    """describe() of `metric` in the members' last records, as `metric_mean`, ... columns;
    a diverged member's last record holds NaN and counts in `metric_nonfinite`."""
    d = stats.describe([o["final"].get(metric, float("nan")) for o in outcomes])
    return {f"{metric}_mean": d["mean"], f"{metric}_std": d["std"],
            f"{metric}_median": d["median"],
            f"{metric}_ci95": f"[{d['ci95_low']:.4g}, {d['ci95_high']:.4g}]",
            f"{metric}_nonfinite": d["n_nonfinite"]}


def success_row(outcomes: list[dict], solved: Sequence[bool]) -> dict:
    """Success rate with its Wilson 95 % interval and the median steps of the solved (the
    steps each member trained)."""
    return reached_row([o["steps"] if ok else None for o, ok in zip(outcomes, solved)])


def reached_row(steps: Sequence[int | None]) -> dict:
    """Success rate with its Wilson 95 % interval and the median steps to success, from each
    member's steps to success (None: not solved)."""
    s = stats.success_summary([step is not None for step in steps], list(steps))
    return {"solved": f"{s['successes']}/{s['n']}", "success_rate": s["rate"],
            "wilson95": f"[{s['wilson_low']:.2f}, {s['wilson_high']:.2f}]",
            "median_steps_to_success": s["steps"]["median"], "_summary": s}


def curves(done: list, metric: str, fields: Sequence[str]) -> dict[str, dict]:
    """Median/IQR learning curves of `metric`, one per population."""
    out = {}
    for config, _, run in done:
        rows = [r for r in run.metrics() if metric in r]
        members = sorted({r["member"] for r in rows})
        if not members:
            continue
        steps = [[r["step"] for r in rows if r["member"] == m] for m in members]
        values = [[r[metric] for r in rows if r["member"] == m] for m in members]
        out[label(config, fields)] = stats.curve_quantiles(steps, values)
    return out


def write_table(run: results.Run, name: str, rows: list[dict], columns: list[str]) -> str:
    """Writes `<name>.csv` and `<name>.md` into the run directory; returns the markdown."""
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    results.write_csv(run.path / f"{name}.csv", clean)
    table = results.markdown_table(clean, columns)
    (run.path / f"{name}.md").write_text(table + "\n")
    return table


def plot_curves(run: results.Run, name: str, done: list, metric: str,
                fields: Sequence[str], title: str) -> Path | None:
    data = curves(done, metric, fields)
    return population_plots.plot_population_curves(run.path / name, data, metric, title) \
        if data else None


def copy_figures(figures: list, figures_dir: str, prefix: str) -> None:
    """Copies the written figures to `figures_dir` as `<prefix>_<name>` (no-op when empty);
    the prefix names the experiment and the run, e.g. 'parity_lstm_hidden16_seq_len20_seeds20'."""
    import shutil

    if not figures_dir:
        return
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    for figure in figures:
        if figure is not None:
            shutil.copyfile(figure, Path(figures_dir) / f"{prefix}_{Path(figure).name}")
