"""Long-memory benchmarks of the uRNN paper (Arjovsky, Shah & Bengio 2016): copying and adding.

    python -m experiments.long_memory --task=copying --T=100     # all four cells, then the table
    python -m experiments.long_memory --task=adding --T=200 --cell=urnn --steps=3000

Each cell trains in its own run directory `<out_dir>/long_memory/<task>_T<T>_<cell>_h<hidden>_
seed<seed>/`; after every run the comparison (`<task>_T<T>_seed<seed>.png`: evaluation loss vs
iteration for every cell found, baseline dashed; `.md`: final loss, steps to beat the baseline,
parameters, wall time) is redrawn from the run directories, so cells run as separate jobs
combine. Measured results and commands: experiments/long_memory.md.

Paper defaults: RMSProp (lr 1e-3, decay 0.9), batch 20; hidden sizes copying tanh-RNN 80,
IRNN 80, LSTM 40, uRNN 128; adding 128 / 128 / 128 / 512 (`--hidden` overrides all). Gradient
clipping for the non-unitary cells only, elementwise at `--clip` = 1 as in the authors' code
(`--clip_kind=global` for optax.clip_by_global_norm instead); the uRNN is never clipped.
Copying: cross-entropy at every step (baseline 10 log 8 / (T + 20)); adding: MSE of the final
prediction (baseline 0.167). Losses in the table are on a fixed held-out batch (--eval_batch).
`--quick` runs every cell end to end in seconds.
"""

import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import optax
from absl import flags

from experiments import flags as shared
from rnn_jax import get_cell, losses, optimizers, readout, results, train, unroll
from rnn_jax.data import adding, copying
from rnn_jax.unroll import output_size

flags.DEFINE_enum("task", "copying", ["copying", "adding"], "Long-memory task.")
flags.DEFINE_integer("T", 100, "Copying: the delay (inputs are T + 20 long); adding: the length.")
flags.DEFINE_list("cells", ["vanilla", "irnn", "lstm", "urnn"], "Cells to train in turn "
                  "(--cell picks a single one).")
flags.DEFINE_enum("clip_kind", "elementwise", ["elementwise", "global"],
                  "Clipping of the non-unitary cells' gradients at --clip (0: none).")
flags.DEFINE_integer("eval_batch", 500, "Held-out sequences the evaluation loss is measured on.")
flags.DEFINE_bool("report_only", False, "Only redraw the comparison from existing run dirs.")
FLAGS = flags.FLAGS

TASKS = {"copying": copying, "adding": adding}
HIDDEN = {  # the paper's sizes (about 6.5K parameters each on copying)
    "copying": {"vanilla": 80, "irnn": 80, "lstm": 40, "urnn": 128},
    "adding": {"vanilla": 128, "irnn": 128, "lstm": 128, "urnn": 512},
}
BEAT_FRACTION = 0.95  # "beats the baseline": evaluation loss <= 0.95 x baseline
DEFAULTS = dict(steps=2000, lr=1e-3, optimizer="rmsprop", clip=1.0, batch=20, log_every=50,
                eval_every=50)
QUICK = dict(steps=20, batch=4, hidden=8, log_every=10, eval_every=10)
QUICK_T, QUICK_EVAL_BATCH = 8, 8


@dataclasses.dataclass(frozen=True)
class Config:
    train: shared.TrainConfig  # its `cell` and `hidden` are this run's
    task: str
    T: int
    clip_kind: str
    eval_batch: int


def make_loss(task: str, cell):
    """`(params, (xs, targets)) -> (loss, metrics)` for the task."""

    def forward(params, xs):
        ys, _ = unroll(cell, params["cell"], xs)
        return ys

    def loss(params, batch):
        xs, targets = batch
        ys = forward(params, xs)
        if task == "copying":  # cross-entropy at every step; accuracy on the 10 recalled steps
            logits = readout.linear(params["readout"], ys)  # [batch, T + 20, 9]
            recalled = jnp.argmax(logits[:, -copying.SEQUENCE_LENGTH :], -1)
            accuracy = jnp.mean(recalled == targets[:, -copying.SEQUENCE_LENGTH :])
            return losses.softmax_cross_entropy(logits, targets), {"recall_accuracy": accuracy}
        prediction = readout.linear(params["readout"], ys[:, -1])  # [batch, 1]
        return jnp.mean((prediction - targets) ** 2), {}  # the paper's MSE (no 1/2)

    return loss


def as_loss_fn(loss):
    """Adapts `loss(params, batch)` to the loop's `(params, batch, key, stream)` signature."""

    def loss_fn(params, batch, key, stream):
        value, metrics = loss(params, batch)
        return value, (metrics, stream)

    return loss_fn


def make_optimizer(config: Config) -> optax.GradientTransformation:
    """RMSProp (decay 0.9) by default; clipping for the non-unitary cells only."""
    cfg = config.train
    options = {"decay": 0.9} if cfg.optimizer == "rmsprop" else {}
    clip = cfg.clip if cfg.cell != "urnn" else 0.0
    if config.clip_kind == "global":
        return optimizers.make_optimizer(cfg.optimizer, cfg.lr, clip_norm=clip, **options)
    optimizer = optimizers.make_optimizer(cfg.optimizer, cfg.lr, **options)
    return optax.chain(optax.clip(clip), optimizer) if clip > 0 else optimizer


def run_cell(config: Config) -> Path:
    """Trains one cell on the task; returns its run directory."""
    cfg, data = config.train, TASKS[config.task]
    cell = get_cell(cfg.cell)
    key_init, key_readout, key_data, key_eval, key_train = jax.random.split(
        jax.random.key(cfg.seed), 5
    )
    num_inputs, num_outputs = (copying.NUM_TOKENS, copying.NUM_CLASSES) if config.task == \
        "copying" else (2, 1)
    cell_params = cell.init(key_init, num_inputs, cfg.hidden)
    params = {
        "cell": cell_params,
        "readout": readout.init_linear(key_readout, output_size(cell, cell_params), num_outputs),
    }
    loss = make_loss(config.task, cell)
    eval_data = data.sample(key_eval, config.eval_batch, config.T)
    eval_step = jax.jit(lambda p, b: dict(zip(("eval_loss", "m"), loss(p, b))))
    baseline = data.baseline(config.T)

    def eval_fn(params):
        metrics = eval_step(params, eval_data)
        return {"eval_loss": metrics["eval_loss"], "baseline": baseline,
                **{f"eval_{k}": v for k, v in metrics["m"].items()}}

    name = f"{config.task}_T{config.T}_{cfg.cell}_h{cfg.hidden}_seed{cfg.seed}"
    run = results.Run.create(cfg.out_dir, "long_memory", prefix(cfg) + name, config,
                             overwrite=cfg.overwrite)
    optimizer = make_optimizer(config)
    state = train.init_state(params, optimizer, key_train)
    train.fit(state, train.make_train_step(as_loss_fn(loss), optimizer),
              lambda step: data.sample(jax.random.fold_in(key_data, step), cfg.batch, config.T),
              eval_fn=eval_fn, run=run, plot=not cfg.quick, **shared.fit_options(cfg))
    return run.path


def prefix(cfg: shared.TrainConfig) -> str:
    return ("quick_" if cfg.quick else "") + (f"{cfg.run_name}_" if cfg.run_name else "")


def finished_runs(out_dir: str, task: str, T: int, seed: int, name_prefix: str) -> list[Path]:
    """The run directories of (task, T, seed) with a summary (runs still going are left out)."""
    root = Path(out_dir) / "long_memory"
    return [path for path in sorted(root.glob(f"{name_prefix}{task}_T{T}_*_seed{seed}"))
            if (path / results.SUMMARY).exists()]


def compare(out_dir: str, task: str, T: int, seed: int, name_prefix: str = "") -> Path:
    """Redraws `<task>_T<T>_seed<seed>.png` and `.md` from every matching run directory."""
    root = Path(out_dir) / "long_memory"
    rows, curves = [], {}
    for path in finished_runs(out_dir, task, T, seed, name_prefix):
        config, summary = results.Run(path).config(), results.Run(path).summary()
        records = [r for r in results.read_metrics(path) if r.get("eval_loss") is not None]
        baseline = TASKS[task].baseline(T)
        beaten = [r["step"] for r in records if r["eval_loss"] <= BEAT_FRACTION * baseline]
        cell = config["train"]["cell"]
        curves[f"{cell} (h = {config['train']['hidden']})"] = [
            (r["step"], r["eval_loss"]) for r in records
        ]
        rows.append(f"| {cell} | {config['train']['hidden']} | {summary['num_params']} | "
                    f"{records[-1]['eval_loss']:.3g} | {min(r['eval_loss'] for r in records):.3g} | "
                    f"{beaten[0] if beaten else 'never'} | "
                    f"{summary['steps']} | {summary['wall_time_s']:.0f} |")
    stem = root / f"{name_prefix}{task}_T{T}_seed{seed}"
    header = (f"{task}, T = {T}, baseline {TASKS[task].baseline(T):.4f} (beaten: eval loss <= "
              f"{BEAT_FRACTION} x baseline)\n\n| cell | hidden | params | final eval loss | best eval "
              "loss | steps to beat baseline | steps | wall s |\n|---|---|---|---|---|---|---|---|\n")
    stem.with_suffix(".md").write_text(header + "\n".join(rows) + "\n")
    plot_comparison(stem.with_suffix(".png"), curves, TASKS[task].baseline(T), f"{task}, T = {T}")
    return stem.with_suffix(".md")


def plot_comparison(path: Path, curves: dict, baseline: float, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for cell, points in sorted(curves.items()):
        if points:
            ax.plot(*zip(*points), label=cell)
    ax.axhline(baseline, color="k", linestyle="--", label="baseline")
    ax.set(xlabel="iteration", ylabel="evaluation loss", title=title, yscale="log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv):
    shared.check_no_positional(argv)
    T = FLAGS.T if FLAGS["T"].present or not FLAGS.quick else QUICK_T
    eval_batch = FLAGS.eval_batch if FLAGS["eval_batch"].present or not FLAGS.quick \
        else QUICK_EVAL_BATCH
    shared.check(T >= 2, "T", "an integer >= 2", T)
    shared.check(eval_batch >= 1, "eval_batch", "an integer >= 1", eval_batch)
    cells_flag = "cell" if FLAGS.cell else "cells"
    cells = [FLAGS.cell] if FLAGS.cell else FLAGS.cells
    shared.check_distinct(cells, cells_flag)
    for cell in cells:
        shared.check(cell in HIDDEN[FLAGS.task], cells_flag,
                     f"cells among {sorted(HIDDEN['adding'])}", cell)
    configs = [
        Config(shared.train_config({**DEFAULTS, "cell": cell, "hidden": HIDDEN[FLAGS.task][cell]},
                                   {**QUICK, "cell": cell}),
               FLAGS.task, T, FLAGS.clip_kind, eval_batch)
        for cell in cells
    ]  # every config validated before any compile
    cfg = configs[0].train
    if FLAGS.report_only:
        shared.check(bool(finished_runs(cfg.out_dir, FLAGS.task, T, cfg.seed, prefix(cfg))),
                     "report_only", f"finished runs in {Path(cfg.out_dir) / 'long_memory'} to "
                     "report on", "none")
    else:
        for config in configs:
            try:
                run_cell(config)
            except results.RunFinished as finished:  # trained before: compared from its files
                print(finished)
    table = compare(cfg.out_dir, FLAGS.task, T, cfg.seed, prefix(cfg))
    print(table.read_text())
    return table


if __name__ == "__main__":
    shared.run(main)
