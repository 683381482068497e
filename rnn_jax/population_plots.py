"""Plots of populations (many seeds per configuration), drawn from `rnn_jax.stats` summaries.

    curves = {"gru": stats.curve_quantiles(steps, accuracies), ...}
    plot_population_curves("curves.png", curves, "accuracy", "parity, length 50")
    plot_success_vs_length("success.png", {"gru": [(50, stats.success_summary(...)), ...]},
                           "parity")

Learning curves are the median with an interquartile band; success rates carry Wilson
intervals. Like `results.plot_curves`, PNGs are drawn with matplotlib's Agg backend, chosen
when a plot is drawn (not at import, which would set it for the whole process).
"""

from pathlib import Path
from typing import Sequence

import numpy as np


def pyplot():
    """matplotlib.pyplot with the Agg backend (chosen when a figure is drawn, not at import)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _columns(what: str, **columns: Sequence[float]) -> list[np.ndarray]:
    """The columns as float arrays [T]; ValueError unless all are 1-D, non-empty, equally long."""
    arrays = {name: np.asarray(c, dtype=float) for name, c in columns.items()}
    shapes = {name: a.shape for name, a in arrays.items()}
    (shape, *others) = set(shapes.values())
    if others or len(shape) != 1 or shape[0] == 0:
        raise ValueError(f"{what}: expected non-empty 1-D columns of one length, received "
                         f"shapes {shapes}")
    return list(arrays.values())


def plot_curves_band(ax, steps, median, q25, q75, label: str):
    """Draws the median learning curve [T] with its interquartile band on `ax`; returns the line."""
    steps, median, q25, q75 = _columns("plot_curves_band", steps=steps, median=median, q25=q25,
                                       q75=q75)
    (line,) = ax.plot(steps, median, label=label)
    ax.fill_between(steps, q25, q75, color=line.get_color(), alpha=0.25, linewidth=0)
    return line


def plot_rate_vs(ax, xs, rates, lows, highs, label: str):
    """Draws success rates [K] against `xs` [K] with Wilson error bars [lows, highs] on `ax`."""
    xs, rates, lows, highs = _columns("plot_rate_vs", xs=xs, rates=rates, lows=lows, highs=highs)
    if not (np.all((0 <= lows) & (lows <= rates) & (rates <= highs) & (highs <= 1))):
        raise ValueError("plot_rate_vs: expected 0 <= low <= rate <= high <= 1, received rates "
                         f"{rates.tolist()}, lows {lows.tolist()}, highs {highs.tolist()}")
    ax.errorbar(xs, rates, yerr=[rates - lows, highs - rates], label=label, marker="o",
                capsize=3)
    ax.set_ylim(-0.05, 1.05)


def save(fig, path: str | Path) -> Path:
    """Writes `fig` as a PNG at `path` (legends outside the axes included), closes it; returns
    the path."""
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100, bbox_inches="tight")  # legends outside the axes included
    pyplot().close(fig)
    return path


def _check_groups(what: str, groups: dict) -> None:
    if not isinstance(groups, dict) or not groups:
        raise ValueError(f"{what}: expected a non-empty dict of label -> data, received "
                         f"{groups!r}")


def curve_label(label: str, curve: dict) -> str:
    """'label (n=5, 1 diverged)': every member counts, as in the tables."""
    k = sum(step is not None for step in curve.get("diverged_at", []))
    n = curve.get("n_members", max(curve["n"]) if curve["n"] else 0)
    return f"{label} (n={n}" + (f", {k} diverged)" if k else ")")


def draw_curves(ax, curves: dict[str, dict], colors=None) -> None:
    """Median + IQR of each curve on `ax`, each diverged member an 'x' on the top edge at
    the step it diverged (drawn above the data, so it is never hidden or left out)."""
    for i, (label, curve) in enumerate(curves.items()):
        line = plot_curves_band(ax, curve["steps"], curve["median"], curve["q25"],
                                curve["q75"], curve_label(label, curve))
        if colors is not None:
            line.set_color(colors[i])
            ax.collections[-1].set_color(colors[i])
        steps = [s for s in curve.get("diverged_at", []) if s is not None]
        if steps:
            ax.plot(steps, [1.0] * len(steps), "x", color=line.get_color(), markersize=8,
                    transform=ax.get_xaxis_transform(), clip_on=False)


def _log_axis(metric: str, curves: dict[str, dict]) -> bool:
    q25 = np.concatenate([np.asarray(c["q25"], dtype=float) for c in curves.values()])
    return ("loss" in metric or "norm" in metric) and bool(np.all(q25[np.isfinite(q25)] > 0))


def _robust_top(curves: dict[str, dict], log: bool) -> float | None:
    """An upper y-limit that keeps one wide band from flattening the other curves: at most
    10x (log axis) or 2x the largest median; None when the bands fit under it anyway."""
    medians = np.concatenate([np.asarray(c["median"], dtype=float) for c in curves.values()])
    q75 = np.concatenate([np.asarray(c["q75"], dtype=float) for c in curves.values()])
    medians, q75 = medians[np.isfinite(medians)], q75[np.isfinite(q75)]
    if not medians.size or not q75.size:
        return None
    cap = medians.max() * (10.0 if log else 2.0) if medians.max() > 0 else None
    return cap if cap is not None and q75.max() > cap else None


def plot_population_curves(path: str | Path, curves: dict[str, dict], metric: str,
                           title: str) -> Path:
    """One panel of median + IQR learning curves, one per label; writes the PNG at `path`.

    Args:
      curves: label -> a `stats.curve_quantiles` dict; the legend gives each label's members
        and how many diverged (each marked 'x' on the top edge at the step it diverged).
      metric: the y-axis name; a loss or norm with positive values gets a log axis.
    """
    return plot_population_panels(path, {"": curves}, metric, title)


PANELS_PER_ROW = 3  # more panels wrap onto further rows, so a figure stays readable


def plot_population_panels(path: str | Path, panels: dict[str, dict[str, dict]], metric: str,
                           title: str, hlines: dict[str, float] | None = None,
                           colors: str | None = None) -> Path:
    """Panels of median + IQR learning curves sharing the y-axis (compared cells on one scale),
    the legend outside the data (under each panel); writes the PNG at `path`.

    Args:
      panels: panel title -> {label: `stats.curve_quantiles` dict}; labels in the same order
        get the same colour in every panel (a sequential colormap when a panel has > 6).
      hlines: panel title -> a reference value drawn dashed (e.g. a baseline).
      colors: a matplotlib colormap name for ordered labels (e.g. lengths); None: the
        default colour cycle, or viridis when a panel has more than 6 curves.
    """
    _check_groups("plot_population_panels", panels)
    for name, curves in panels.items():
        _check_groups(f"plot_population_panels (panel {name!r})", curves)
    plt = pyplot()
    width = max(len(c) for c in panels.values())
    if colors is not None or width > 6:
        colors = list(plt.get_cmap(colors or "viridis")(np.linspace(0, 0.9, width)))
    columns = min(len(panels), PANELS_PER_ROW)
    rows = -(-len(panels) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 4.6 * rows),
                             sharey=True, squeeze=False)
    for ax in axes.flat[len(panels):]:
        ax.set_visible(False)
    log = all(_log_axis(metric, c) for c in panels.values())
    try:
        for ax, (name, curves) in zip(axes.flat, panels.items()):
            draw_curves(ax, curves, colors)
            if hlines and name in hlines:
                ax.axhline(hlines[name], color="k", linestyle="--", linewidth=1,
                           label="baseline")
            ax.set(xlabel="step", title=name)
            ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    except BaseException:
        plt.close(fig)
        raise
    for row in axes:
        row[0].set_ylabel(f"{metric} (median, IQR)")
    if log:
        axes[0][0].set_yscale("log")
    top = _robust_top({f"{p}/{k}": c for p, cs in panels.items() for k, c in cs.items()}, log)
    if top is not None:
        axes[0][0].set_ylim(top=top)
    fig.suptitle(title + ("; x on the top edge: a member diverged" if any(
        s is not None for cs in panels.values() for c in cs.values()
        for s in c.get("diverged_at", [])) else ""), fontsize=10)
    return save(fig, path)


def plot_success_vs_length(path: str | Path, data: dict[str, list[tuple[int, dict]]],
                           title: str) -> Path:
    """Success rate (Wilson 95 % bars) and steps-to-success against sequence length, per cell.

    Args:
      data: cell -> [(length, `stats.success_summary` dict), ...]. The right panel shows each
        successful member's steps-to-success as a point and their median as a line.
    """
    _check_groups("plot_success_vs_length", data)
    plt = pyplot()
    fig, (rate_ax, steps_ax) = plt.subplots(1, 2, figsize=(10, 4))
    try:
        for cell, points in data.items():
            if not points:
                raise ValueError(f"plot_success_vs_length: expected (length, summary) pairs for "
                                 f"{cell!r}, received none")
            points = sorted(points, key=lambda point: point[0])
            lengths = [length for length, _ in points]
            plot_rate_vs(rate_ax, lengths, *([s[k] for _, s in points]
                                             for k in ("rate", "wilson_low", "wilson_high")),
                         label=cell)
            taken = [(length, step) for length, s in points
                     for step in s["steps_to_success"] if step is not None]
            medians = [(length, s["steps"]["median"]) for length, s in points
                       if s["steps"]["n"]]
            if medians:
                (line,) = steps_ax.plot(*zip(*medians), marker="o", label=cell)
                steps_ax.scatter(*zip(*taken), color=line.get_color(), alpha=0.4, s=12)
    except BaseException:
        plt.close(fig)
        raise
    rate_ax.set(xlabel="sequence length", ylabel="success rate (Wilson 95 %)")
    steps_ax.set(xlabel="sequence length", ylabel="steps to success (members, median)")
    rate_ax.legend()
    if steps_ax.lines:
        steps_ax.legend()
    fig.suptitle(title)
    return save(fig, path)
