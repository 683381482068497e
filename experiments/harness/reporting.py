"""Tables and figures over populations, for every experiment's `report`.

Each population's run directory holds a row per member per logged step (metrics.jsonl) and
each member's outcome (summary.json `"members"`). Here they become, per configuration: mean,
standard deviation, median and 95 % t-interval over members of a final metric; success
rates with Wilson intervals and steps to success; learning curves as the median with an
interquartile band (rnn_jax.stats, rnn_jax.population_plots).

No member is left out silently: every table gets `members` and `diverged` columns (a member
diverged when training stopped on a non-finite loss or a final metric is not finite); a mean
or interval over fewer members than the table's shows the count in its cell ("0.142 (4 of
5)"); a diverged member never counts as solved.
"""

import math
import shutil
from pathlib import Path
from typing import Sequence

from rnn_jax import population_plots, results, stats, training


def finals(run: training.Run) -> list[dict]:
    """Each member's outcome with its last record: `[{member, stopped, steps, final}]`."""
    return run.summary()["members"]


def label(config, fields: Sequence[str]) -> str:
    return " ".join(f"{f}={getattr(config, f)}" for f in fields) or "all"


def steps_to_reach(run: training.Run, metric: str, value: float) -> dict[int, int | None]:
    """Per member: the first logged step at which `metric >= value`, or None if it never did."""
    first = {}
    for row in run.metrics():
        member = row.get("member", 0)
        first.setdefault(member, None)
        if first[member] is None and row.get(metric) is not None and row[metric] >= value:
            first[member] = row["step"]
    return first


def by_member_values(members: list[dict], outcomes: list[dict],
                     fields: Sequence[str]) -> dict[tuple, list[dict]]:
    """The outcomes grouped by the members' values of `fields` (e.g. a `--grid=lr=...` that
    trains several rates as members of one population), in the order the outcomes first show
    each value; one group of all outcomes when `fields` is empty."""
    groups = {}
    for outcome in outcomes:
        values = tuple(members[outcome["member"]][f] for f in fields) if fields else ()
        groups.setdefault(values, []).append(outcome)
    return groups


def diverged(outcome: dict, metrics: Sequence[str] = ()) -> bool:
    """Whether a member diverged: training stopped on a non-finite loss, or one of `metrics` in
    its last record is missing or not finite."""
    finals = [outcome["final"].get(m) for m in metrics]
    return outcome.get("stopped") == "diverged" or any(
        v is None or not math.isfinite(v) for v in finals)


def metric_row(outcomes: list[dict], metric: str) -> dict:
    """describe() of `metric` in the members' last records, as `metric_mean`, ... columns,
    with `members` and `diverged` (see `diverged`); the statistics use the `metric_n`
    finite values and `write_table` prints that count beside them when it is short."""
    d = stats.describe([o["final"].get(metric, float("nan")) for o in outcomes])
    return {"members": len(outcomes), "diverged": sum(diverged(o, [metric]) for o in outcomes),
            f"{metric}_mean": d["mean"], f"{metric}_std": d["std"],
            f"{metric}_median": d["median"],
            f"{metric}_ci95": f"[{d['ci95_low']:.4g}, {d['ci95_high']:.4g}]",
            f"{metric}_n": d["n"], f"{metric}_nonfinite": d["n_nonfinite"]}


def success_row(outcomes: list[dict], solved: Sequence[bool]) -> dict:
    """Success rate with its Wilson 95 % interval and the median steps of the solved (the
    steps each member trained)."""
    return reached_row([o["steps"] if ok else None for o, ok in zip(outcomes, solved)],
                       outcomes)


def reached_row(steps: Sequence[int | None], outcomes: list[dict] | None = None) -> dict:
    """Success rate with its Wilson 95 % interval and the median steps to success, from each
    member's steps to success (None: not solved). With `outcomes` (aligned with `steps`), a
    member that diverged counts as not solved, whatever it reached before."""
    if outcomes is not None:
        steps = [None if diverged(o) else step for step, o in zip(steps, outcomes)]
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


def _with_counts(row: dict) -> dict:
    """The markdown row: a mean or interval over fewer members than `members` says how many."""
    out = dict(row)
    for key in row:
        if key.endswith("_n") and "members" in row and row[key] < row["members"]:
            metric, count = key[:-2], f"({row[key]} of {row['members']})"
            for column in (f"{metric}_mean", f"{metric}_ci95", f"{metric}_median"):
                if column in out:
                    out[column] = f"{results.table_cell(out[column])} {count}"
    return out


def count_columns(rows: list[dict], columns: list[str]) -> list[str]:
    """`columns` with `members` and `diverged`: `diverged` right after `members` where the
    experiment placed it, else both before the first result column (a rate, count or
    statistic); unchanged when no row has them."""
    if not any("members" in r for r in rows):
        return list(columns)
    columns = [c for c in columns if c != "diverged"]
    if "members" in columns:
        at = columns.index("members") + 1
        return columns[:at] + ["diverged"] + columns[at:]
    first = next((i for i, c in enumerate(columns) if c in ("solved", "beat", "success_rate")
                  or c.endswith(("_mean", "_ci95", "_median"))), len(columns))
    return columns[:first] + ["members", "diverged"] + columns[first:]


def write_table(run: training.Run, name: str, rows: list[dict], columns: list[str]) -> str:
    """Writes `<name>.csv` and `<name>.md` into the run directory; returns the markdown.
    The markdown gets the `count_columns` and the counts beside short statistics."""
    clean = [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]
    results.write_csv(run.path / f"{name}.csv", clean)
    table = results.markdown_table([_with_counts(r) for r in clean],
                                   count_columns(clean, columns))
    (run.path / f"{name}.md").write_text(table + "\n")
    return table


def plot_curves(run: training.Run, name: str, done: list, metric: str,
                fields: Sequence[str], title: str) -> Path | None:
    data = curves(done, metric, fields)
    return population_plots.plot_population_curves(run.path / name, data, metric, title) \
        if data else None


def copy_figures(figures: Sequence[Path | None], figures_dir: str, prefix: str,
                 run_dir: Path | None = None) -> None:
    """Copies the written figures to `figures_dir` as `<prefix>_<name>` (no-op when empty);
    the prefix names the experiment and the run, e.g. 'parity_lstm_hidden16_seq_len20_seeds20'.
    A figure inside a population's directory of `run_dir` keeps that directory in its name
    (`<prefix>_<population>_<name>`), so each population's copy has its own."""
    if not figures_dir:
        return
    Path(figures_dir).mkdir(parents=True, exist_ok=True)
    for figure in figures:
        if figure is None:
            continue
        figure = Path(figure)
        inside = run_dir is not None and figure.is_relative_to(run_dir)
        name = "_".join(figure.relative_to(run_dir).parts) if inside else figure.name
        shutil.copyfile(figure, Path(figures_dir) / f"{prefix}_{name}")
