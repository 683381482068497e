"""Summation and comparison networks: hand-set weights (exact) against learned ones.

    python -m experiments.summation

1. sum: a linear RNN with one unit, s(t) = W s(t-1) + U x(t) + b, y(t) = V s(t) + c, trained
   on running sums of U[-1, 1] inputs (MSE). The hand-set answer is W = U = V = 1, b = c = 0;
   the learned W, U*V (the input-to-output gain) and b*V + c are reported next to it.
2. compare: two streams of integers in [0, --max_value]; output whether the running sum of
   the first exceeds that of the second. Hand-built: two running sums and o = s1 - s2
   (exact); learned: --cell with --hidden units and a logistic readout (cross-entropy).
Both are tested at --test_seq_len, longer than training. Results: experiments/summation.md.
Defaults: --cell=vanilla --hidden=8 --seq_len=10 --test_seq_len=100 --batch=32 --steps=1000
--lr=1e-2 --clip=1. Run dirs: <out_dir>/summation/<run_name>/{sum,compare}/.
"""

import dataclasses
import functools
from pathlib import Path

import jax
import jax.numpy as jnp
from absl import flags

from experiments import flags as shared
from rnn_jax import handbuilt, losses, readout, results, train
from rnn_jax.cells import get_cell
from rnn_jax.data import summation
from rnn_jax.unroll import output_size, unroll

flags.DEFINE_enum("sum_task", "both", ["sum", "compare", "both"], "Which network(s) to train.")
flags.DEFINE_integer("max_value", 9, "compare: stream values are integers in [0, max_value].")
FLAGS = flags.FLAGS

DEFAULTS = dict(cell="vanilla", hidden=8, seq_len=10, test_seq_len=100, batch=32, steps=1000,
                lr=1e-2, clip=1.0, log_every=100, eval_every=100, checkpoint_every=0)
QUICK = dict(hidden=4, seq_len=5, test_seq_len=20, batch=8, steps=20, log_every=10,
             eval_every=10)
EVAL_BATCH = 256
EXACT_SUM = 2**24  # float32 holds every integer up to this exactly


@dataclasses.dataclass(frozen=True)
class Config:
    train: shared.TrainConfig
    sum_task: str
    max_value: int
    test_seq_len: int


def read_config() -> Config:
    """The flags as a validated Config (raises shared.FlagError before any compile)."""
    config = Config(shared.train_config(DEFAULTS, QUICK), FLAGS.sum_task, FLAGS.max_value,
                    shared.resolve("test_seq_len", DEFAULTS, QUICK))
    shared.check(config.max_value >= 1, "max_value", "an integer >= 1", config.max_value)
    shared.check(config.test_seq_len > 0, "test_seq_len", "a positive integer",
                 config.test_seq_len)
    longest = max(config.train.seq_len, config.test_seq_len)
    shared.check(config.max_value <= EXACT_SUM // longest, "max_value", f"an integer <= "
                 f"{EXACT_SUM // longest} (sums of {longest} values exact in float32)",
                 config.max_value)
    return config


def make_task(task: str, config: Config):
    """`(init(key), predict(params, xs), sample(key, batch, T), metrics(predictions, ys))`."""
    if task == "sum":
        cell, hidden, inputs = handbuilt.linear_cell(), 1, 1
        sample = functools.partial(summation.sample_sum)

        def metrics(predictions, ys):
            return {"loss": losses.squared_error(predictions, ys),
                    "max_abs_error": jnp.max(jnp.abs(predictions - ys))}
    else:
        cell, hidden, inputs = get_cell(config.train.cell), config.train.hidden, 2
        sample = functools.partial(summation.sample_compare, max_value=config.max_value)

        def metrics(logits, ys):
            return {"loss": losses.binary_cross_entropy(logits[..., 0], ys),
                    "accuracy": jnp.mean((logits[..., 0] > 0) == (ys > 0.5))}

    def init(key):
        key_cell, key_out = jax.random.split(key)
        cell_params = cell.init(key_cell, inputs, hidden)
        return cell_params, readout.init_linear(key_out, output_size(cell, cell_params), 1)

    scale = 1.0 if task == "sum" else float(config.max_value)  # learned nets see x / max_value
    return init, functools.partial(predict, cell, scale=scale), sample, metrics


def predict(cell, params, xs, scale=1.0):
    """`[batch, T, in] -> [batch, T, 1]`: the cell, then the readout o(t) = c + V s(t)."""
    hs, _ = unroll(cell, params[0], xs / scale)
    return readout.linear(params[1], hs)


def run_task(task: str, config: Config, run_name: str) -> dict:
    """Trains the learned network, evaluates it and the hand-set one; returns the summary."""
    cfg = config.train
    try:
        run = results.Run.create(Path(cfg.out_dir) / "summation", run_name, task, config,
                                 overwrite=cfg.overwrite)
    except results.RunFinished as finished:  # trained before: reported from its files
        print(finished)
        return {**finished.run.summary(), "run": finished.run}
    init, learned, sample, metrics = make_task(task, config)
    key_init, key_data, key_eval, key_train = jax.random.split(jax.random.key(cfg.seed), 4)
    eval_sets = {"eval": sample(key_eval, EVAL_BATCH, cfg.seq_len),
                 "test": sample(jax.random.fold_in(key_eval, 1), EVAL_BATCH, config.test_seq_len)}

    def loss_fn(params, batch, key, stream):
        m = metrics(learned(params, batch[0]), batch[1])
        return m["loss"], ({k: v for k, v in m.items() if k != "loss"}, stream)

    @jax.jit
    def evaluate(params):
        return {f"{name}_{k}": v for name, (xs, ys) in eval_sets.items()
                for k, v in metrics(learned(params, xs), ys).items()}

    get_batch = jax.jit(lambda step: sample(jax.random.fold_in(key_data, step), cfg.batch,
                                            cfg.seq_len))
    optimizer = shared.make_optimizer(cfg)
    state = train.init_state(init(key_init), optimizer, key_train)
    state, history = train.fit(state, train.make_train_step(loss_fn, optimizer), get_batch,
                               eval_fn=evaluate, run=run, **shared.fit_options(cfg))
    hand = handbuilt.summation_params() if task == "sum" else handbuilt.comparison_params()
    xs, ys = eval_sets["test"]
    hand_metrics = metrics(predict(handbuilt.linear_cell(), hand, xs), ys)
    extra = {f"handbuilt_test_{k}": v for k, v in hand_metrics.items()}
    if task == "sum":
        cell_p, out_p = state.params
        extra["weights"] = {
            name: {"W": p.W[0, 0], "U": p.U[0, 0], "b": p.b[0], "V": o.V[0, 0], "c": o.c[0],
                   "U*V": p.U[0, 0] * o.V[0, 0], "b*V+c": p.b[0] * o.V[0, 0] + o.c[0]}
            for name, (p, o) in (("learned", (cell_p, out_p)), ("hand_set", hand))
        }
    run.update_summary(extra)
    return {"run": run, "final": history[-1], **results.to_jsonable(extra)}


def main(argv):
    shared.check_no_positional(argv)
    run_experiment(read_config())


def run_experiment(config: Config) -> dict:
    """Runs the selected networks; prints one summary line; returns {task: summary}."""
    cfg = config.train
    run_name = cfg.run_name or ("quick_" if cfg.quick else "") + (
        f"{cfg.cell}_h{cfg.hidden}_T{cfg.seq_len}_test{config.test_seq_len}_seed{cfg.seed}")
    tasks = ["sum", "compare"] if config.sum_task == "both" else [config.sum_task]
    out = {task: run_task(task, config, run_name) for task in tasks}
    parts = []
    if "sum" in out:
        learned = out["sum"]["weights"]["learned"]
        parts.append(f"sum: test max|error| {out['sum']['final']['test_max_abs_error']:.2e} "
                     f"(hand-set {out['sum']['handbuilt_test_max_abs_error']:.0e}), learned "
                     f"W={learned['W']:.4f} U*V={learned['U*V']:.4f} "
                     f"b*V+c={learned['b*V+c']:.1e}")
    if "compare" in out:
        parts.append(f"compare ({cfg.cell}): test accuracy "
                     f"{out['compare']['final']['test_accuracy']:.4f} (hand-built "
                     f"{out['compare']['handbuilt_test_accuracy']:.4f})")
    where = Path(cfg.out_dir) / "summation" / run_name
    print(f"summation at T={config.test_seq_len}: {'; '.join(parts)}; run dir {where}")
    return out


if __name__ == "__main__":
    shared.run(main)
