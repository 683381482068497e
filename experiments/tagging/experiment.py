"""Bidirectional tagging: a per-step label that depends on the inputs after the step.

    python -m experiments.tagging --seeds=5 --grid=direction=uni,bi

tags every symbol of a padded batch of variable-length sequences with "does it occur again
within the next --window steps?" (`rnn_jax/data/tagging.py`). A left-to-right RNN cannot see
the answer; a bidirectional one (Schuster & Paliwal 1997; the notes' "output at time t may
depend on the whole input sequence") can. With `--match_params` (default) the unidirectional
model gets the hidden size whose parameter count is closest to the bidirectional model's, so
the comparison is at (about) equal parameters. The report gives accuracy over valid steps per
direction with 95 % intervals over seeds and the best accuracy any causal predictor can reach
(`tagging.causal_bound`). Measured results and commands: experiments/tagging/README.md.
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import losses, sequence_model
from rnn_jax.cells import get_cell
from rnn_jax.data import tagging

NAME = "tagging"
DIRECTIONS = ("uni", "bi")


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    direction: str = template.field("bi", "Left-to-right (uni) or bidirectional (bi) RNN.",
                                    choices=DIRECTIONS)
    hidden: int = template.field(16, "Hidden units per direction of the bidirectional model "
                                 "(with --match_params the unidirectional model's size is "
                                 "derived from it).")
    match_params: bool = template.field(True, "Give the unidirectional model the hidden size "
                                        "whose parameter count is closest to the bidirectional "
                                        "model's with --hidden; off: --hidden for both.")
    seq_len: int = template.field(20, "Padded length: the longest sequence.")
    min_len: int = template.field(5, "Shortest sequence; lengths are uniform in "
                                  "[min_len, seq_len].")
    num_symbols: int = template.field(6, "Alphabet size.")
    window: int = template.field(4, "Look-ahead k: the tag is 1 when the symbol occurs again "
                                 "within the next k steps.")
    lr: float = template.field(3e-3, "Learning rate.")
    log_every: int = template.field(50, "Log and record metrics every this many steps.")
    eval_every: int = template.field(50, "Evaluate every this many steps (0: only at the end).")
    eval_batch: int = template.field(512, "Held-out sequences per evaluation (fixed per "
                                     "member).")

    def validate(self):
        template.check(1 <= self.min_len <= self.seq_len, "min_len",
                       f"an integer in [1, seq_len={self.seq_len}]", self.min_len)
        template.check(self.num_symbols >= 2, "num_symbols", "an integer >= 2",
                       self.num_symbols)
        template.check(1 <= self.window < self.seq_len, "window",
                       f"an integer in [1, seq_len={self.seq_len}) (a look-ahead inside the "
                       "sequence)", self.window)
        template.check(self.eval_batch >= 1, "eval_batch", "an integer >= 1", self.eval_batch)


QUICK = dict(hidden=4, seq_len=8, min_len=2, window=2, batch=8, steps=20, log_every=10,
             eval_every=10, eval_batch=16)


def num_params(config: Config, hidden: int, bidirectional: bool) -> int:
    shapes = jax.eval_shape(lambda k: sequence_model.init(
        k, get_cell(config.cell), config.num_symbols, hidden, 1, bidirectional=bidirectional),
        jax.random.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def hidden_of(config: Config) -> int:
    """The member's hidden size: --hidden, or for `uni` with --match_params the size whose
    parameter count is closest to the bidirectional model's (ties: the smaller)."""
    if config.direction == "bi" or not config.match_params:
        return config.hidden
    target, hidden = num_params(config, config.hidden, True), config.hidden
    below = num_params(config, hidden, False)  # the count grows with the size: walk up to it
    while (above := num_params(config, hidden + 1, False)) < target:
        hidden, below = hidden + 1, above
    return hidden if target - below <= above - target else hidden + 1


def metrics(logits: jax.Array, ys: jax.Array, lengths: jax.Array) -> dict:
    """Binary cross-entropy and accuracy over the valid steps only (padding masked out)."""
    mask = jnp.arange(ys.shape[1])[None, :] < lengths[:, None]
    correct = ((logits > 0) == (ys > 0.5)).astype(jnp.float32)
    return {"loss": losses.binary_cross_entropy(logits, ys, mask),
            "accuracy": jnp.sum(correct * mask) / jnp.maximum(jnp.sum(mask), 1)}


def task(config: Config) -> Task:
    """One member: (bidirectional) cell -> linear readout -> one logit per step."""
    cell, bidirectional = get_cell(config.cell), config.direction == "bi"
    options = dict(num_symbols=config.num_symbols, window=config.window,
                   min_len=config.min_len)

    def member_metrics(params, batch):
        xs, ys, lengths = batch
        logits = sequence_model.apply(cell, params, xs, lengths=lengths)[..., 0]
        return metrics(logits, ys, lengths)

    def loss_fn(params, batch, key, stream):
        m = member_metrics(params, batch)
        return m["loss"], ({"accuracy": m["accuracy"]}, stream)

    def sample(key, step):
        return tagging.sample(jax.random.fold_in(key, step), config.batch, config.seq_len,
                              **options)

    def evaluate(params, key):
        batch = tagging.sample(key, config.eval_batch, config.seq_len, **options)
        return {f"eval_{k}": v for k, v in member_metrics(params, batch).items()}

    return Task(
        init=lambda key: sequence_model.init(
            key, cell, config.num_symbols, hidden_of(config), 1, bidirectional=bidirectional),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def run_name(config: Config) -> str:
    """E.g. 'lstm_hidden16_seq_len20_grid-direction_seeds5' or 'directionbi_lstm_hidden16_...'."""
    return driver.run_name(config, ("direction", "cell", "hidden", "seq_len"))


def report(run, config: Config, done: list) -> Report:
    """Per (direction, cell): parameters, final held-out accuracy over members (95 % t-interval)
    and the causal bound; the accuracy curves."""
    rows = []
    for pop_config, members, pop_run in done:
        outcomes = reporting.finals(pop_run)
        hidden = hidden_of(pop_config)
        rows.append({
            "direction": pop_config.direction, "cell": pop_config.cell, "hidden": hidden,
            "params": num_params(pop_config, hidden, pop_config.direction == "bi"),
            "seq_len": pop_config.seq_len, "window": pop_config.window,
            "members": len(outcomes),
            "causal_bound": tagging.causal_bound(pop_config.seq_len, pop_config.num_symbols,
                                                 pop_config.window, pop_config.min_len),
            **reporting.metric_row(outcomes, "eval_accuracy"),
            **reporting.metric_row(outcomes, "eval_loss")})
    columns = ["direction", "cell", "hidden", "params", "seq_len", "window", "members",
               "causal_bound", "eval_accuracy_mean", "eval_accuracy_ci95",
               "eval_accuracy_median", "eval_loss_mean", "eval_loss_ci95"]
    table = reporting.write_table(run, "table", rows, columns)
    fields = [f for f in ("direction", "cell", "hidden", "window", "lr")
              if f in template.grid_of(config)] or ["direction"]
    figure = reporting.plot_curves(
        run, "curves.png", done, "eval_accuracy", fields,
        f"tagging: held-out accuracy over valid steps (causal bound "
        f"{rows[0]['causal_bound']:.3f})")
    return Report({"table": rows}, {"table": table}, (figure,))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
