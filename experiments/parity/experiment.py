"""Running parity: learned RNNs against the notes' hand-built threshold network.

Headline (the README's main job; numbers in experiments/parity/README.md):

    python -m experiments.parity --cell=lstm

trains an LSTM (16 units, sequences of 20 bits, many-to-many targets) to output the parity of
the bits seen so far, and tests it on sequences of 400 bits (length generalisation). The
hand-built binary-threshold network is exact at every length. The success rate against
training length (Bengio, Simard & Frasconi 1994: it falls with length) over cells and seeds:

    python -m experiments.parity --seeds=20 --grid=cell=vanilla,irnn,gru,lstm \
        --grid=seq_len=10,25,50,100,200 --stop_at_success --steps=1500
"""

import dataclasses

import jax
import jax.numpy as jnp

from experiments.harness import cell_flags, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import handbuilt, losses, population_plots, sequence_model
from rnn_jax.data import parity
from rnn_jax.unroll import unroll

NAME = "parity"
EVAL_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Config(template.Base, cell_flags.CellOptions):
    hidden: int = template.field(16, "Hidden units.")
    log_every: int = template.field(100, "Log and record metrics every this many steps.")
    eval_every: int = template.field(100, "Evaluate every this many steps (0: only at the end).")
    checkpoint_every: int = template.field(500, "Checkpoint every this many steps (0: never).")
    target: str = template.field("many_to_many", "Parity at every step (many_to_many) or only "
                                 "at the end (many_to_one).", choices=parity.TARGETS)
    test_seq_len: int = template.field(400, "Test sequence length (length generalisation).")
    success_accuracy: float = template.field(0.99, "Accuracy at --seq_len that counts as "
                                             "solved.")
    stop_at_success: bool = template.field(False, "Stop a member once it reaches "
                                           "--success_accuracy.")

    def validate(self):
        cell_flags.check(self)
        template.check(self.test_seq_len > 0, "test_seq_len", "a positive integer",
                       self.test_seq_len)
        template.check(0.5 < self.success_accuracy <= 1, "success_accuracy",
                       "a value in (0.5, 1]", self.success_accuracy)
        template.check(self.eval_every > 0 or not self.stop_at_success, "eval_every",
                       "a positive interval with --stop_at_success (success is measured at "
                       "evaluations)", self.eval_every)


QUICK = dict(hidden=8, seq_len=8, test_seq_len=16, batch=16, steps=30, log_every=10,
             eval_every=10, checkpoint_every=0)


def metrics(logits, ys) -> dict:
    """Binary cross-entropy and accuracy (every target bit counts)."""
    return {"loss": losses.binary_cross_entropy(logits, ys),
            "accuracy": jnp.mean((logits > 0) == (ys > 0.5))}


def task(config: Config) -> Task:
    """One member: cell -> linear readout -> one logit per step (or at the end)."""
    cell = cell_flags.cell_of(config)
    many_to_one = config.target == "many_to_one"

    def logits(params, xs):
        return sequence_model.apply(cell, params, xs, many_to_one=many_to_one)[..., 0]

    def loss_fn(params, batch, key, stream):
        m = metrics(logits(params, batch[0]), batch[1])
        return m["loss"], ({"accuracy": m["accuracy"]}, stream)

    def sample(key, step):
        return parity.sample(jax.random.fold_in(key, step), config.batch, config.seq_len,
                             target=config.target)

    def evaluate(params, key):
        out = {}
        for i, (name, length) in enumerate([("eval", config.seq_len),
                                            ("test", config.test_seq_len)]):
            xs, ys = parity.sample(jax.random.fold_in(key, i), EVAL_BATCH, length,
                                   target=config.target)
            out.update({f"{name}_{k}": v for k, v in metrics(logits(params, xs), ys).items()})
        return out

    return Task(
        init=lambda key: sequence_model.init(key, cell, 1, config.hidden, 1),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate,
        target=("eval_accuracy", config.success_accuracy) if config.stop_at_success else None)


def handbuilt_accuracy(config: Config) -> float:
    """Accuracy of the hand-built threshold network on a test set (it should be 1.0)."""
    xs, ys = parity.sample(jax.random.key(config.seed), EVAL_BATCH, config.test_seq_len,
                           target=config.target)
    out, _ = jax.jit(lambda x: unroll(handbuilt.parity_cell(), handbuilt.parity_params(), x))(xs)
    predicted = out[..., 0] if config.target == "many_to_many" else out[:, -1, 0]
    return float(jnp.mean(predicted == ys))


def plot_panels(run, done: list, config: Config):
    """curves.png: eval accuracy at the training length, one panel per cell (and option), one
    curve per length in a sequential colour (longer: lighter), shared y."""
    panels = {}
    for pop_config, members, pop_run in done:
        curve = reporting.curves([(pop_config, members, pop_run)], "eval_accuracy", [])
        if curve:
            panels.setdefault(cell_flags.describe(pop_config), {})[
                f"T={pop_config.seq_len}"] = curve["all"]
    if not panels:
        return None
    return population_plots.plot_population_panels(
        run.path / "curves.png", panels, "accuracy at the training length",
        f"parity ({config.target}): evaluation accuracy", colors="viridis")


def report(run, config: Config, done: list) -> Report:
    """Per (cell, length): success rate (Wilson), steps to success, accuracies over members.

    A member has solved the task when an evaluation at the training length reached
    `--success_accuracy` (its steps to success: the first such step)."""
    rows, by_cell = [], {}
    varied = [f for f in Config.MEMBER_FIELDS if f in template.grid_of(config)]
    for pop_config, members, pop_run in done:
        reached = reporting.steps_to_reach(pop_run, "eval_accuracy", config.success_accuracy)
        for values, outcomes in reporting.by_member_values(
                members, reporting.finals(pop_run), varied).items():
            row = {"cell": cell_flags.describe(pop_config), "seq_len": pop_config.seq_len,
                   **dict(zip(varied, values)), "members": len(outcomes),
                   **reporting.reached_row([reached.get(o["member"]) for o in outcomes],
                                           outcomes),
                   **reporting.metric_row(outcomes, "eval_accuracy"),
                   **reporting.metric_row(outcomes, "test_accuracy")}
            rows.append(row)
            label = " ".join([row["cell"], *(f"{f}={v:g}" for f, v in zip(varied, values))])
            by_cell.setdefault(label, []).append((pop_config.seq_len, row["_summary"]))
    columns = ["cell", "seq_len", *varied, "solved", "success_rate", "wilson95",
               "median_steps_to_success", "eval_accuracy_mean", "eval_accuracy_ci95",
               "test_accuracy_mean", "test_accuracy_ci95"]
    table = reporting.write_table(run, "table", rows, columns)
    figures = [plot_panels(run, done, config)]
    if len({r["seq_len"] for r in rows}) > 1:
        figures.append(population_plots.plot_success_vs_length(
            run.path / "success_vs_length.png", by_cell,
            f"parity: solved (eval accuracy >= {config.success_accuracy}) within "
            f"{config.steps} steps, {rows[0]['members']} seeds"))
    hand = handbuilt_accuracy(config)
    return Report(
        {"table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
         "handbuilt_test_accuracy": hand}, {"table": table}, tuple(figures),
        (f"hand-built network: accuracy {hand:.4f} at T={config.test_seq_len}",))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report)
