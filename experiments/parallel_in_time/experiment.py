"""RNNs in parallel over time: Newton iterations as a GRU learns, and wall time against T.

Headlines (numbers in experiments/parallel_in_time/README.md):

    python -m experiments.parallel_in_time --seeds=3
    python -m experiments.parallel_in_time --mode=timing

trains a GRU (16 units) on running parity (sequences of 20 bits, many-to-many targets; the
same task as experiments/parity/experiment.py) with the ordinary sequential unroll, and every
`--eval_every` steps evaluates the network in parallel over time on `--newton_len` bits by
DEER (`jacobian="full"`) and quasi-DEER (`jacobian="diagonal"`, `rnn_jax.parallel.deer`),
recording the Newton iterations each needs to reach the tolerance, whether it converged, and
the largest difference from the sequential outputs, beside the largest Lyapunov exponent of
each evaluation sequence's trajectory (`rnn_jax.lyapunov`; logged as its mean and maximum over
the sequences). Gonzalez et al. (NeurIPS 2025, arXiv 2508.16817) predict few iterations where
the exponent is negative and many where it is positive; the report tabulates the iterations
by the exponent's sign and plots them against it.

`--mode=timing` trains nothing: for every cell of `--timing_cells`, hidden size of
`--hidden_sizes` and length of `--lengths`, the wall time of the sequential scan against the
associative scans (minGRU, minLSTM, LRU) or DEER and quasi-DEER (the other cells), forward and
forward + backward, with Newton's iterations and final residual
(`experiments.parallel_in_time.timing`, which `benchmarks/deer.py` and `benchmarks/linear_scan.py`
also run). Each measured (cell, hidden, T) is added to `timing.json` in the population's
directory as soon as it is measured, so a stopped run resumes at the next one; the report
writes `table_timing.md` and `.csv` into the run directory (both in `timing_mode.py`).
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Measurement, Report, Task
from experiments.parallel_in_time import timing as parallel_timing
from experiments.parallel_in_time import timing_mode
from rnn_jax import losses, sequence_model, stats, training
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import parity
from rnn_jax.lyapunov import largest_lyapunov
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.unroll import unroll

NAME = "parallel_in_time"
EVAL_BATCH = 8
METHODS = ("full", "diagonal")
MODES = ("training", "timing")


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    mode: str = template.field("training", "training: Newton iterations counted while a "
                               "network learns parity; timing: wall time against T and hidden "
                               "size, nothing trained.", choices=MODES)
    cell: str = template.field("gru", "Recurrent cell (rnn_jax.cells.CELLS).",
                               choices=("vanilla", "gru", "lstm"))
    hidden: int = template.field(16, "Hidden units.")
    steps: int = template.field(300, "Training steps (updates) per member.")
    log_every: int = template.field(10, "Log and record metrics every this many steps.")
    eval_every: int = template.field(10, "Count Newton iterations every this many steps.")
    newton_len: int = template.field(256, "Sequence length on which the Newton iterations are "
                                     "counted.")
    tol: float = template.field(1e-4, "Newton tolerance on max_t |f(s(t-1), x(t)) - s(t)| "
                                "(float32).")
    max_iterations: int = template.field(256, "Newton iterations at most (T always suffices "
                                         "in exact arithmetic).")
    # --mode=timing
    timing_cells: tuple[str, ...] = template.field(
        ("mingru", "minlstm", "lru", "gru"), "--mode=timing: cells to time (linear ones "
        "against their associative scans, others against DEER and quasi-DEER).")
    hidden_sizes: tuple[int, ...] = template.field((16, 64), "--mode=timing: hidden sizes.")
    lengths: tuple[int, ...] = template.field((256, 4096, 65536), "--mode=timing: sequence "
                                              "lengths T.")
    timing_batch: int = template.field(4, "--mode=timing: sequences per call.")
    inputs: int = template.field(1, "--mode=timing: input features (Gaussian noise).")
    rounds: int = template.field(3, "--mode=timing: interleaved timing rounds.")
    calls: int = template.field(1, "--mode=timing: timed calls of each program per round.")
    full_max: float = template.field(1e7, "--mode=timing: skip DEER where its Jacobians would "
                                     "hold more numbers than this (T * batch * D^2).")

    def validate(self):
        template.check(self.newton_len > 0, "newton_len", "a positive integer", self.newton_len)
        template.check(self.tol > 0, "tol", "a number > 0", self.tol)
        template.check(self.max_iterations > 0, "max_iterations", "a positive integer",
                       self.max_iterations)
        template.check(self.eval_every > 0, "eval_every", "a positive interval (the "
                       "iterations are measured at evaluations)", self.eval_every)
        if self.mode == "timing":
            self.validate_timing()

    def validate_timing(self):
        check = template.check
        for name in self.timing_cells:
            check(name in CELLS, "timing_cells", f"cells of {sorted(CELLS)}", name)
            check(parallel_timing.timeable(get_cell(name)), "timing_cells", "cells with a "
                  "parallel path (linear, or a real carry for DEER)", name)
        check(bool(self.timing_cells), "timing_cells", "at least one cell", self.timing_cells)
        for name in ("hidden_sizes", "lengths"):
            values = getattr(self, name)
            check(bool(values) and min(values) > 0, name, "positive integers", values)
        for name in ("timing_batch", "inputs", "rounds", "calls"):
            check(getattr(self, name) > 0, name, "a positive integer", getattr(self, name))
        check(self.full_max > 0, "full_max", "a number > 0", self.full_max)
        check(len(template.seeds_of(self)) == 1, "seeds", "one seed with --mode=timing (it "
              "picks the params and inputs; timings are not a population)", self.seeds)
        check(not self.grid, "grid", "no --grid with --mode=timing (list the sizes in "
              "--hidden_sizes and --lengths)", list(self.grid))


QUICK = dict(hidden=4, seq_len=6, newton_len=12, max_iterations=12, batch=8, steps=6,
             log_every=3, eval_every=3, hidden_sizes=(4,), lengths=(8, 12), timing_batch=2,
             rounds=1, calls=1)


def nan_max(x: jax.Array) -> jax.Array:
    """max(x), NaN if any entry is NaN: XLA's CPU max reduction can skip NaNs (a NaN array
    of a few thousand entries reduces to -inf), which would hide a diverged member."""
    return jnp.where(jnp.any(jnp.isnan(x)), jnp.nan, jnp.max(x))


def task(config: Config) -> Task | Measurement:
    """Training: one member, cell -> linear readout -> one parity logit per step; Newton at
    evaluation. Timing: a measurement (`timing_mode.measure`)."""
    if config.mode == "timing":
        return Measurement(lambda members, run: timing_mode.measure(config, members, run))
    cell = get_cell(config.cell)

    def logits(params, xs):
        return sequence_model.apply(cell, params, xs)[..., 0]

    def loss_fn(params, batch, key, stream):
        out = logits(params, batch[0])
        accuracy = jnp.mean((out > 0) == (batch[1] > 0.5))
        return losses.binary_cross_entropy(out, batch[1]), ({"accuracy": accuracy}, stream)

    def sample(key, step):
        return parity.sample(jax.random.fold_in(key, step), config.batch, config.seq_len)

    def evaluate(params, key):
        xs, ys = parity.sample(key, EVAL_BATCH, config.newton_len)
        sequential = sequence_model.apply(cell, params, xs)
        hs_sequential = unroll(cell, params.cell, xs)[0]
        out = {"eval_accuracy": jnp.mean((sequential[..., 0] > 0) == (ys > 0.5))}
        exponents = largest_lyapunov(cell, params.cell, xs, key=jax.random.fold_in(key, 1))
        out["lyapunov"] = jnp.mean(exponents)  # over the EVAL_BATCH sequences
        out["lyapunov_max"] = nan_max(exponents)
        for method in METHODS:
            hs, _, info = deer_unroll(cell, params.cell, xs, jacobian=method, tol=config.tol,
                                      max_iterations=config.max_iterations, on_failure="return")
            out[f"{method}_error"] = nan_max(jnp.abs(hs - hs_sequential))
            out[f"{method}_iterations"] = info.iterations.astype(jnp.float32)
            out[f"{method}_converged"] = info.converged.astype(jnp.float32)
            out[f"{method}_residual"] = info.residual
        return out

    return Task(
        init=lambda key: sequence_model.init(key, cell, 1, config.hidden, 1),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def run_name(config: Config) -> str:
    """Training: `driver.run_name`'s; timing: e.g. 'timing_mingru-gru_hidden16-64_T256-
    4096_batch4_seed0'."""
    if config.mode == "training" or config.run_name:
        return driver.run_name(config)
    lists = {"": config.timing_cells, "hidden": config.hidden_sizes, "T": config.lengths}
    name = "_".join(["timing", *(k + "-".join(map(str, v)) for k, v in lists.items()),
                     f"batch{config.timing_batch}", f"seed{template.seeds_of(config)[0]}"])
    return ("quick_" if config.quick else "") + name


def training_rows(config: Config, run: training.Run) -> list[dict]:
    """Per evaluation step: the members, how many had a non-finite evaluation value (counted,
    never dropped: stats.describe), and the mean over members of each evaluation metric with
    its 95 % t-interval (none for the fraction converged)."""
    metrics = ("eval_accuracy", "lyapunov", "lyapunov_max",
               *(f"{k}_{s}" for k in METHODS for s in ("iterations", "converged")))
    records = [r for r in run.metrics() if "full_iterations" in r]
    finite = lambda value: value is not None and math.isfinite(value)  # noqa: E731
    rows = []
    for step in sorted({r["step"] for r in records}):
        at = [r for r in records if r["step"] == step]
        row = {"cell": config.cell, "step": step, "members": len(at),
               "diverged": sum(not all(finite(r[m]) for m in metrics if m in r) for r in at)}
        for metric in metrics:
            if any(metric in r for r in at):  # not in a run from before the exponent
                d = stats.describe([r.get(metric) for r in at])
                row.update({f"{metric}_mean": d["mean"], f"{metric}_n": d["n"]})
                if not metric.endswith("converged"):
                    row[f"{metric}_ci95"] = f"[{d['ci95_low']:.3g}, {d['ci95_high']:.3g}]"
        rows.append(row)
    return rows


def evaluation_points(run: training.Run) -> list[dict]:
    """One row per member per evaluation that logged the Lyapunov exponent: step, member, the
    largest exponent over the evaluation's sequences (Newton's count is for all of them at
    once, so the least stable one sets it) and each method's iterations."""
    keys = ("step", "member", "lyapunov_max", *(f"{m}_iterations" for m in METHODS))
    return [{k: row[k] for k in keys} for row in run.metrics() if "lyapunov_max" in row]


def sign_of(exponent) -> str:
    """'< 0', '>= 0' or 'not finite' (None: a NaN written to JSON)."""
    if exponent is None or not math.isfinite(exponent):
        return "not finite"
    return "< 0" if exponent < 0 else ">= 0"


def by_sign(points: list[dict]) -> list[dict]:
    """Per sign of the exponent: how many evaluations and members, and the median and range of
    each method's iterations over them (one member's points are not independent: no interval)."""
    rows = []
    for sign in ("< 0", ">= 0", "not finite"):
        chosen = [p for p in points if sign_of(p["lyapunov_max"]) == sign]
        row = {"exponent": sign, "evaluations": len(chosen),
               "seeds": len({p["member"] for p in chosen}),
               "exponent_range": "-" if not chosen or sign == "not finite" else
               f"{min(p['lyapunov_max'] for p in chosen):.3g} to "
               f"{max(p['lyapunov_max'] for p in chosen):.3g}"}
        for method in METHODS:
            d = stats.describe([p[f"{method}_iterations"] for p in chosen] or [math.nan])
            row[f"{method}_iterations_median"] = d["median"]
            row[f"{method}_iterations_range"] = f"{d['min']:.0f}-{d['max']:.0f}" if chosen else "-"
        rows.append(row)
    return rows


def plot_iterations_vs_exponent(path, points: list[dict], newton_len: int):
    """Newton iterations against the exponent, one point per member per evaluation coloured by
    the training step, a panel per method; a non-finite exponent is an 'x' on the left edge."""
    import matplotlib  # the backend is chosen when a figure is drawn, not at import

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharex=True, sharey=True)
    x = np.array([math.nan if p["lyapunov_max"] is None else p["lyapunov_max"] for p in points])
    finite = np.isfinite(x)
    edge = np.nanmin(np.where(finite, x, np.nan)) if finite.any() else 0.0
    for ax, method in zip(axes, METHODS):
        y = np.array([p[f"{method}_iterations"] for p in points], dtype=float)
        dots = ax.scatter(x[finite], y[finite], c=[p["step"] for p, f in zip(points, finite)
                                                   if f], cmap="viridis", s=18)
        if not finite.all():
            ax.scatter(np.full((~finite).sum(), edge), y[~finite], marker="x", color="red",
                       label="exponent not finite")
        ax.axvline(0.0, color="gray", linestyle="--", label="exponent 0")
        ax.axhline(newton_len, color="gray", linestyle=":", label=f"T = {newton_len}")
        ax.set_title("DEER" if method == "full" else "quasi-DEER")
    axes[0].set_ylabel(f"Newton iterations at T = {newton_len}")
    fig.supxlabel("largest Lyapunov exponent, max over the evaluation's sequences (nats/step)",
                  x=0.45, y=0.0)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.25, 1.0))
    fig.colorbar(dots, ax=axes, label="training step", location="right", pad=0.02)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def report(run, config: Config, done: list) -> Report:
    """Timing: `timing_mode.report`. Training: per evaluation step, Newton iterations (mean,
    95 % t-interval over seeds) of DEER and quasi-DEER, the fraction converged, the largest
    Lyapunov exponent and accuracy; the iterations by the exponent's sign; the iteration
    curves and iterations against the exponent as figures."""
    if config.mode == "timing":
        return timing_mode.report(run, done)
    rows = [row for pop_config, _, pop_run in done for row in training_rows(pop_config, pop_run)]
    points = [point for _, _, pop_run in done for point in evaluation_points(pop_run)]
    names = ["cell", "step", "members", "diverged", "eval_accuracy_mean", "eval_accuracy_ci95",
             "lyapunov_mean", "lyapunov_ci95", "lyapunov_max_mean", "lyapunov_max_ci95"]
    for method in METHODS:
        names += [f"{method}_iterations_mean", f"{method}_iterations_ci95",
                  f"{method}_converged_mean"]
    tables = {"table": reporting.write_table(run, "table", rows, names)}
    if points:
        sign_rows = by_sign(points)
        tables["table_by_sign"] = reporting.write_table(run, "table_by_sign", sign_rows,
                                                        list(sign_rows[0]))
    figures = [
        reporting.plot_curves(run, f"{method}_iterations.png", done, f"{method}_iterations",
                              ["cell"], f"{'DEER' if method == 'full' else 'quasi-DEER'} "
                              f"Newton iterations at T={config.newton_len} during training")
        for method in METHODS
    ]
    figures.append(reporting.plot_curves(run, "accuracy.png", done, "eval_accuracy", ["cell"],
                                         f"parity accuracy at T={config.newton_len}"))
    if points:
        figures.append(plot_iterations_vs_exponent(run.path / "iterations_vs_lyapunov.png",
                                                   points, config.newton_len))
    return Report({"table": [{k: v for k, v in r.items() if not k.startswith("_")}
                             for r in rows]}, tables, tuple(figures))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
