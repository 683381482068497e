"""Newton iterations of DEER / quasi-DEER as a GRU learns: training makes them grow.

Headline (numbers in experiments/parallel_in_time.md):

    python -m experiments.parallel_in_time --seeds=3

trains a GRU (16 units) on running parity (sequences of 20 bits, many-to-many targets; the
same task as experiments/parity.py) with the ordinary sequential unroll, and every
`--eval_every` steps evaluates the network in parallel over time on `--newton_len` bits by
DEER (`jacobian="full"`) and quasi-DEER (`jacobian="diagonal"`, `rnn_jax.parallel.deer`),
recording the Newton iterations each needs to reach the tolerance, whether it converged, and
the largest difference from the sequential outputs. A network that remembers (parity needs
its state to carry a bit for ever) is less contractive than a fresh one, so Newton's
linearisation holds over shorter stretches and more iterations are needed (Lim et al. 2024;
Gonzalez et al. 2024). The wall time of both methods against the sequential scan is
`benchmarks/deer.py`'s table (experiments/parallel_in_time.md shows it).
"""

import dataclasses
import sys

import jax
import jax.numpy as jnp

from experiments import populations, reporting, template
from rnn_jax import losses, results, sequence_model, stats
from rnn_jax.cells import get_cell
from rnn_jax.data import parity
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.unroll import unroll

NAME = "parallel_in_time"
EVAL_BATCH = 8
METHODS = ("full", "diagonal")


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
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

    def validate(self):
        template.check(self.newton_len > 0, "newton_len", "a positive integer", self.newton_len)
        template.check(self.tol > 0, "tol", "a number > 0", self.tol)
        template.check(self.max_iterations > 0, "max_iterations", "a positive integer",
                       self.max_iterations)
        template.check(self.eval_every > 0, "eval_every", "a positive interval (the "
                       "iterations are measured at evaluations)", self.eval_every)


QUICK = dict(hidden=4, seq_len=6, newton_len=12, max_iterations=12, batch=8, steps=6,
             log_every=3, eval_every=3)


def task(config: Config) -> populations.Task:
    """One member: cell -> linear readout -> one parity logit per step; Newton at evaluation."""
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
        for method in METHODS:
            hs, _, info = deer_unroll(cell, params.cell, xs, jacobian=method, tol=config.tol,
                                      max_iterations=config.max_iterations, on_failure="return")
            out[f"{method}_error"] = jnp.max(jnp.abs(hs - hs_sequential))
            out[f"{method}_iterations"] = info.iterations.astype(jnp.float32)
            out[f"{method}_converged"] = info.converged.astype(jnp.float32)
            out[f"{method}_residual"] = info.residual
        return out

    return populations.Task(
        init=lambda key, values: sequence_model.init(key, cell, 1, config.hidden, 1),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def by_step(run: results.Run, metric: str) -> dict[int, list[float]]:
    """`{step: [metric of each member]}` over the evaluation records."""
    out = {}
    for row in run.metrics():
        if row.get(metric) is not None:
            out.setdefault(row["step"], []).append(row[metric])
    return out


def report(run, config: Config, done: list) -> dict:
    """Per evaluation step: Newton iterations (mean, 95 % t-interval over seeds) of DEER and
    quasi-DEER, the fraction converged, and accuracy; the iteration curves as figures."""
    rows = []
    for pop_config, members, pop_run in done:
        columns = {m: by_step(pop_run, m) for m in
                   ("eval_accuracy", *(f"{k}_{s}" for k in METHODS for s in
                                  ("iterations", "converged")))}
        for step in sorted(columns["full_iterations"]):
            row = {"cell": pop_config.cell, "step": step}
            for metric, values in columns.items():
                d = stats.describe(values[step])
                row[f"{metric}_mean"] = d["mean"]
                if metric.endswith("iterations") or metric == "eval_accuracy":
                    row[f"{metric}_ci95"] = f"[{d['ci95_low']:.3g}, {d['ci95_high']:.3g}]"
            rows.append(row)
    names = ["cell", "step", "eval_accuracy_mean", "eval_accuracy_ci95"]
    for method in METHODS:
        names += [f"{method}_iterations_mean", f"{method}_iterations_ci95",
                  f"{method}_converged_mean"]
    table = reporting.write_table(run, "table", rows, names)
    figures = [
        reporting.plot_curves(run, f"{method}_iterations.png", done, f"{method}_iterations",
                              ["cell"], f"{'DEER' if method == 'full' else 'quasi-DEER'} "
                              f"Newton iterations at T={config.newton_len} during training")
        for method in METHODS
    ]
    figures.append(reporting.plot_curves(run, "accuracy.png", done, "eval_accuracy", ["cell"],
                                         f"parity accuracy at T={config.newton_len}"))
    reporting.copy_figures(figures, config.figures_dir, f"{NAME}_{run.path.name}")
    print(table)
    return {"table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}


if __name__ == "__main__":
    populations.main(sys.modules[__name__])
