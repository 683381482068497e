"""Summation and comparison networks: hand-set weights (exact) against learned ones.

    python -m experiments.summation --seeds=10 --grid=task=sum,compare

1. sum: a linear RNN with one unit, s(t) = W s(t-1) + U x(t) + b, y(t) = V s(t) + c, trained
   on running sums of U[-1, 1] inputs (squared error). The hand-set answer is W = U = V = 1,
   b = c = 0; the learned W, U*V (the input-to-output gain) and b*V + c are reported next to
   it (--cell and --hidden do not apply: the network is the notes' one-unit linear RNN).
2. compare: two streams of integers in [0, --max_value]; output whether the running sum of
   the first exceeds that of the second. Hand-built: two running sums and o = s1 - s2
   (exact); learned: --cell with --hidden units (inputs divided by --max_value) and a
   logistic readout (cross-entropy).
Both are tested at --test_seq_len, longer than training; a member counts as solved when its
test max |error| is <= --success_error (sum) or its test accuracy >= --success_accuracy
(compare). Results and commands: experiments/summation/README.md.
"""

import dataclasses

import jax
import jax.numpy as jnp

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import handbuilt, losses, sequence_model
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import summation

NAME = "summation"
TASKS = ("sum", "compare")
EXACT_SUM = 2**24  # float32 holds every integer up to this exactly
# The sum network's weights, recorded at every evaluation: name -> f(cell params, readout).
WEIGHTS = {"W": lambda p, o: p.W[0, 0], "U": lambda p, o: p.U[0, 0], "V": lambda p, o: o.V[0, 0],
           "U*V": lambda p, o: p.U[0, 0] * o.V[0, 0],
           "b*V+c": lambda p, o: p.b[0] * o.V[0, 0] + o.c[0]}


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    task: str = template.field("sum", "Which network to train: the one-unit running sum, or "
                               "the comparison of two running sums.", choices=TASKS)
    cell: str = template.field("vanilla", "compare: recurrent cell of the learned network.",
                               choices=sorted(CELLS))
    hidden: int = template.field(8, "compare: hidden units of the learned network.")
    seq_len: int = template.field(10, "Training sequence length.")
    log_every: int = template.field(100, "Log and record metrics every this many steps.")
    eval_every: int = template.field(100, "Evaluate every this many steps (0: only at the end).")
    max_value: int = template.field(9, "compare: stream values are integers in [0, max_value].")
    test_seq_len: int = template.field(100, "Test sequence length (length generalisation).")
    eval_batch: int = template.field(256, "Held-out sequences per evaluation set.")
    success_error: float = template.field(1e-3, "sum: test max |error| that counts as solved.")
    success_accuracy: float = template.field(0.99, "compare: test accuracy that counts as "
                                             "solved.")

    def validate(self):
        for name in ("test_seq_len", "eval_batch", "max_value"):
            template.check(getattr(self, name) > 0, name, "a positive integer",
                           getattr(self, name))
        longest = max(self.seq_len, self.test_seq_len)
        template.check(self.max_value <= EXACT_SUM // longest, "max_value", f"an integer <= "
                       f"{EXACT_SUM // longest} (sums of {longest} values exact in float32)",
                       self.max_value)
        template.check(0 < self.success_error < float("inf"), "success_error",
                       "a positive, finite error", self.success_error)
        template.check(0.5 < self.success_accuracy <= 1, "success_accuracy",
                       "a value in (0.5, 1]", self.success_accuracy)


QUICK = dict(hidden=4, seq_len=5, test_seq_len=20, batch=8, steps=20, log_every=10,
             eval_every=10, eval_batch=32)


def network(config: Config):
    """`(cell, input size, hidden size, input scale, sample(key, batch, T), metrics)` of the
    learned network of `config.task`."""
    if config.task == "sum":
        def metrics(outputs, ys):
            return {"loss": losses.squared_error(outputs, ys),
                    "max_abs_error": jnp.max(jnp.abs(outputs - ys))}

        return handbuilt.linear_cell(), 1, 1, 1.0, summation.sample_sum, metrics

    def metrics(logits, ys):
        return {"loss": losses.binary_cross_entropy(logits[..., 0], ys),
                "accuracy": jnp.mean((logits[..., 0] > 0) == (ys > 0.5))}

    def sample(key, batch, length):
        return summation.sample_compare(key, batch, length, max_value=config.max_value)

    return (get_cell(config.cell), 2, config.hidden, float(config.max_value), sample, metrics)


def eval_sets(config: Config, key: jax.Array, sample) -> dict:
    """{'eval': at --seq_len, 'test': at --test_seq_len}, each `(xs, ys)` from `key`."""
    return {name: sample(jax.random.fold_in(key, i), config.eval_batch, length)
            for i, (name, length) in enumerate([("eval", config.seq_len),
                                                ("test", config.test_seq_len)])}


def task(config: Config) -> Task:
    """One member: the cell and a linear readout, o(t) = c + V s(t), on `x / scale`."""
    cell, inputs, hidden, scale, sample, metrics = network(config)

    def predict(params, xs):
        return sequence_model.apply(cell, params, xs / scale)

    def loss_fn(params, batch, key, stream):
        m = metrics(predict(params, batch[0]), batch[1])
        return m["loss"], ({k: v for k, v in m.items() if k != "loss"}, stream)

    def evaluate(params, key):
        out = {f"{name}_{k}": v for name, (xs, ys) in eval_sets(config, key, sample).items()
               for k, v in metrics(predict(params, xs), ys).items()}
        if config.task == "sum":
            out.update({name: f(params.cell, params.readout) for name, f in WEIGHTS.items()})
        return out

    return Task(
        init=lambda key: sequence_model.init(key, cell, inputs, hidden, 1),
        loss_fn=loss_fn, evaluate=evaluate,
        sample=lambda key, step: sample(jax.random.fold_in(key, step), config.batch,
                                        config.seq_len))


def handbuilt_test(config: Config) -> dict:
    """The hand-set network's test metrics (float32, the learned networks' test length)."""
    _, _, _, _, sample, metrics = network(config)
    hand = handbuilt.summation_params() if config.task == "sum" else \
        handbuilt.comparison_params()
    xs, ys = eval_sets(config, jax.random.key(config.seed), sample)["test"]
    outputs = sequence_model.apply(handbuilt.linear_cell(), sequence_model.ModelParams(*hand), xs)
    return {k: float(v) for k, v in metrics(outputs, ys).items()}


def solved(config: Config, final: dict) -> bool:
    if config.task == "sum":
        return final.get("test_max_abs_error", float("inf")) <= config.success_error
    return final.get("test_accuracy", 0.0) >= config.success_accuracy


COLUMNS = {
    "sum": ["test_max_abs_error", "W", "U*V", "b*V+c"],
    "compare": ["eval_accuracy", "test_accuracy"],
}


def report(run, config: Config, done: list) -> Report:
    """Per (task, cell, hidden): success rate (Wilson), metrics over members, the hand-set
    network's test value; one table and one curve figure per task."""
    rows = {t: [] for t in TASKS}
    for pop_config, _, pop_run in done:
        outcomes = reporting.finals(pop_run)
        hand = handbuilt_test(pop_config)
        metric = "max_abs_error" if pop_config.task == "sum" else "accuracy"
        row = {"task": pop_config.task,
               "network": "linear, 1 unit" if pop_config.task == "sum" else
               f"{pop_config.cell}, {pop_config.hidden} units",
               "members": len(outcomes),
               **reporting.success_row(outcomes, [solved(pop_config, o["final"])
                                                  for o in outcomes]),
               f"handbuilt_test_{metric}": hand[metric]}
        for name in COLUMNS[pop_config.task]:
            row.update(reporting.metric_row(outcomes, name))
        rows[pop_config.task].append(row)
    tables, figures = {}, []
    for name, task_rows in rows.items():
        if not task_rows:
            continue
        metric = "max_abs_error" if name == "sum" else "accuracy"
        columns = ["network", "solved", "success_rate", "wilson95"] + [
            c for m in COLUMNS[name] for c in (f"{m}_mean", f"{m}_ci95")] + [
            f"handbuilt_test_{metric}"]
        shown = [{k: _number(v) if k in columns[4:] else v for k, v in r.items()}
                 for r in task_rows]
        tables[name] = reporting.write_table(run, f"table_{name}", shown, columns)
        task_done = [d for d in done if d[0].task == name]
        curve = "loss" if name == "sum" else metric  # the squared error on a log axis
        figures.append(reporting.plot_curves(
            run, f"{name}_curves.png", task_done, f"test_{curve}",
            ["cell", "hidden"] if name == "compare" else [],
            f"{name}: test {curve} at T={config.test_seq_len} (trained at T={config.seq_len})"))
    summary = {f"table_{name}": [{k: v for k, v in r.items() if not k.startswith("_")}
                                 for r in task_rows]
               for name, task_rows in rows.items() if task_rows}
    # a named run's figures keep its name, so two commands of one page do not overwrite
    return Report(summary, tables, tuple(figures), figure_prefix=f"{NAME}_{config.run_name}"
                  if config.run_name else NAME)


def _number(value):
    """4 decimals, or 4 significant digits for small values (errors of 1e-6 stay visible)."""
    if not isinstance(value, float):
        return value
    return f"{value:.3e}" if 0 < abs(value) < 1e-3 else f"{value:.4f}"


def run_name(config: Config) -> str:
    return driver.run_name(config, ("task", "cell", "hidden", "seq_len"))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
