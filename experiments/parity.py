"""Running parity: learned RNNs against the notes' hand-built threshold network.

Headline (the README's main job; numbers and timing in experiments/parity.md):

    python -m experiments.parity --cell=lstm

trains an LSTM (16 units, sequences of 20 bits, many-to-many targets) to output the parity of
the bits seen so far, and tests it on sequences of 400 bits (length generalisation). The
hand-built binary-threshold network is exact at every length.
Defaults: --cell=lstm --hidden=16 --seq_len=20 --test_seq_len=400 --batch=32 --steps=1000
--lr=1e-2 --clip=1 --eval_every=100 --checkpoint_every=500.

    python -m experiments.parity --sweep      success rate vs length for vanilla, GRU, LSTM

runs every (cell, length, seed) with --steps=1500 --sweep_lengths=10,25,50,100 --sweep_seeds=3,
each stopping at --success_accuracy=0.99, and writes sweep.csv, sweep.md and sweep.png
(see experiments/parity.md for the command, the table and the plot).
"""

import dataclasses
import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from absl import flags

from experiments import flags as shared
from experiments import parity_sweep
from rnn_jax import handbuilt, losses, readout, train
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import parity
from rnn_jax.unroll import output_size, unroll

# Task.
flags.DEFINE_enum("target", "many_to_many", list(parity.TARGETS),
                  "Parity at every step (many_to_many) or only at the end (many_to_one).")
flags.DEFINE_float("success_accuracy", 0.99, "Accuracy at --seq_len that counts as solved.")
flags.DEFINE_bool("stop_at_success", False, "Stop training once --success_accuracy is reached.")
# Sweep.
flags.DEFINE_bool("sweep", False, "Success rate vs sequence length over cells and seeds.")
flags.DEFINE_list("sweep_cells", ["vanilla", "gru", "lstm"], "Cells in the sweep.")
flags.DEFINE_list("sweep_lengths", None, "Training lengths in the sweep (default 10,25,50,100).")
flags.DEFINE_integer("sweep_seeds", None, "Seeds per (cell, length) in the sweep (default 3).")
FLAGS = flags.FLAGS

DEFAULTS = dict(cell="lstm", hidden=16, seq_len=20, test_seq_len=400, batch=32, steps=1000,
                lr=1e-2, clip=1.0, log_every=100, eval_every=100, checkpoint_every=500,
                sweep_lengths=["10", "25", "50", "100"], sweep_seeds=3)
SWEEP = dict(steps=1500)  # --sweep: a larger budget per run (each stops at success)
QUICK = dict(hidden=8, seq_len=8, test_seq_len=16, batch=16, steps=30, log_every=10,
             eval_every=10, checkpoint_every=0, sweep_lengths=["4", "8"], sweep_seeds=2)
EVAL_BATCH = 256


@dataclasses.dataclass(frozen=True)
class Config:
    train: shared.TrainConfig
    target: str
    test_seq_len: int
    success_accuracy: float
    stop_at_success: bool
    sweep: bool
    sweep_cells: tuple[str, ...]
    sweep_lengths: tuple[int, ...]
    sweep_seeds: int


def read_config() -> Config:
    """The flags as a validated Config (raises shared.FlagError before any compile)."""
    defaults = {**DEFAULTS, **SWEEP} if FLAGS.sweep else DEFAULTS
    value = functools.partial(shared.resolve, defaults=defaults, quick=QUICK)
    lengths = value("sweep_lengths")
    shared.check(all(s.strip().isdigit() and int(s) > 0 for s in lengths), "sweep_lengths",
                 "comma-separated positive integers", ",".join(lengths))
    config = Config(
        shared.train_config(defaults, QUICK), FLAGS.target, value("test_seq_len"),
        FLAGS.success_accuracy, FLAGS.stop_at_success or FLAGS.sweep, FLAGS.sweep,
        tuple(value("sweep_cells")), tuple(int(s) for s in lengths), value("sweep_seeds"),
    )
    shared.check(config.test_seq_len > 0, "test_seq_len", "a positive integer", config.test_seq_len)
    shared.check(0.5 < config.success_accuracy <= 1, "success_accuracy", "a value in (0.5, 1]",
                 config.success_accuracy)
    shared.check(config.sweep_seeds > 0, "sweep_seeds", "a positive integer", config.sweep_seeds)
    unknown = [c for c in config.sweep_cells if c not in CELLS]
    shared.check(not unknown, "sweep_cells", f"cells from {sorted(CELLS)}", unknown)
    shared.check_distinct(config.sweep_cells, "sweep_cells")
    shared.check_distinct(config.sweep_lengths, "sweep_lengths")
    shared.check(config.train.eval_every > 0 or not config.stop_at_success, "eval_every",
                 "a positive interval with --stop_at_success or --sweep (success is measured "
                 "at evaluations)", config.train.eval_every)
    return config


class Model(NamedTuple):
    init: Callable  # key -> params
    logits: Callable  # (params, xs [batch, T, 1]) -> [batch, T] or [batch]
    loss_fn: Callable  # the train loop's loss_fn(params, batch, key, stream)
    evaluate: Callable  # jitted (params, {name: (xs, ys)}) -> {name_loss, name_accuracy}


def metrics(logits, ys) -> dict:
    """Binary cross-entropy and accuracy (every target bit counts)."""
    return {"loss": losses.binary_cross_entropy(logits, ys),
            "accuracy": jnp.mean((logits > 0) == (ys > 0.5))}


@functools.lru_cache(maxsize=None)
def make_model(cell_name: str, hidden: int, target: str) -> Model:
    """Cell -> linear readout -> one logit per step; cached so that runs share compilations."""
    cell = get_cell(cell_name)

    def init(key):
        key_cell, key_out = jax.random.split(key)
        cell_params = cell.init(key_cell, 1, hidden)
        return cell_params, readout.init_linear(key_out, output_size(cell, cell_params), 1)

    def logits(params, xs):
        hs, _ = unroll(cell, params[0], xs)
        out = readout.linear(params[1], hs)[..., 0]  # o(t) = c + V h(t), [batch, T]
        return out if target == "many_to_many" else out[:, -1]

    def loss_fn(params, batch, key, stream):
        m = metrics(logits(params, batch[0]), batch[1])
        return m["loss"], ({"accuracy": m["accuracy"]}, stream)

    @jax.jit
    def evaluate(params, eval_sets):
        return {f"{name}_{k}": v for name, (xs, ys) in eval_sets.items()
                for k, v in metrics(logits(params, xs), ys).items()}

    return Model(init, logits, loss_fn, evaluate)


@functools.partial(jax.jit, static_argnames=("batch_size", "seq_len", "target"))
def sample_batch(key, step, batch_size: int, seq_len: int, target: str):
    """Training batch number `step`: a pure function of (key, step)."""
    return parity.sample(jax.random.fold_in(key, step), batch_size, seq_len, target=target)


def train_one(config: Config, cell: str, seq_len: int, seed: int, *, run=None, step_cache=None):
    """Trains one network; returns `(history, final record)`. `step_cache` (a dict) shares the
    compiled train step between runs with the same (cell, length)."""
    cfg = dataclasses.replace(config.train, cell=cell, seq_len=seq_len, seed=seed)
    model = make_model(cell, cfg.hidden, config.target)
    key_init, key_data, key_eval, key_train = jax.random.split(jax.random.key(seed), 4)
    optimizer = shared.make_optimizer(cfg)
    cache = {} if step_cache is None else step_cache
    if (cell, seq_len) not in cache:
        cache[(cell, seq_len)] = train.make_train_step(model.loss_fn, optimizer)
    eval_sets = {
        name: parity.sample(jax.random.fold_in(key_eval, i), EVAL_BATCH, length,
                            target=config.target)
        for i, (name, length) in enumerate([("eval", seq_len), ("test", config.test_seq_len)])
    }
    target = ("eval_accuracy", config.success_accuracy) if config.stop_at_success else None
    state = train.init_state(model.init(key_init), optimizer, key_train)
    _, history = train.fit(
        state, cache[(cell, seq_len)],
        functools.partial(sample_batch, key_data, batch_size=cfg.batch, seq_len=seq_len,
                          target=config.target),
        eval_fn=functools.partial(model.evaluate, eval_sets=eval_sets), target=target, run=run,
        **shared.fit_options(cfg),
    )
    return history, history[-1]


def handbuilt_accuracy(config: Config) -> float:
    """Accuracy of the hand-built threshold network on the test set (it should be 1.0)."""
    xs, ys = parity.sample(jax.random.key(config.train.seed), EVAL_BATCH, config.test_seq_len,
                           target=config.target)
    out, _ = jax.jit(lambda x: unroll(handbuilt.parity_cell(), handbuilt.parity_params(), x))(xs)
    predicted = out[..., 0] if config.target == "many_to_many" else out[:, -1, 0]
    return float(jnp.mean(predicted == ys))


def main(argv):
    shared.check_no_positional(argv)
    run_experiment(read_config())


def run_experiment(config: Config) -> dict:
    """Runs the configured experiment (or sweep); returns its summary.json contents."""
    if config.sweep:
        return parity_sweep.run_sweep(config, train_one)
    cfg = config.train
    run = shared.make_run(cfg, "parity", config, test=config.test_seq_len, target=config.target)
    history, final = train_one(config, cfg.cell, cfg.seq_len, cfg.seed, run=run)
    hand = handbuilt_accuracy(config)
    run.update_summary({"handbuilt_test_accuracy": hand})
    summary = run.summary()
    print(f"parity {cfg.cell} h{cfg.hidden}: accuracy {final['eval_accuracy']:.4f} at T="
          f"{cfg.seq_len}, {final['test_accuracy']:.4f} at T={config.test_seq_len} (hand-built "
          f"{hand:.4f}) after {summary['steps']} steps in {summary['wall_time_s']:.1f}s"
          + (f" (resumed from step {summary['resumed_from_step']})"
             if summary["resumed_from_step"] else "") + f"; run dir {run.path}")
    return summary


if __name__ == "__main__":
    shared.run(main)
