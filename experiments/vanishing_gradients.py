"""Vanishing and exploding gradients, measured: the notes' bound, clipping, and how far back.

    python -m experiments.vanishing_gradients                # all three parts (minutes on 2 cores)
    python -m experiments.vanishing_gradients --parts=gradients --gradient_len=200

Cells: every entry of `rnn_jax.cells.CELLS`, with the vanilla tanh RNN swept over recurrent
spectral radii (`--radii`) and the LSTM at forget-gate bias 0 and 1; a cell registered later
(e.g. "urnn") joins automatically. Parts, written to `<out_dir>/vanishing_gradients/`:

1. gradients (no training): at init, on random one-hot inputs of length T (`--gradient_len`),
   L(T) = cross-entropy of a random readout of the last output. `rnn_jax.diagnostics` gives ||dL(T)/dh(t)||
   for all t in one backward pass and ||dh(T)/dh(k)||; plotted (log10, geometric mean over the
   batch) against T - t with the bound ||dL/dh(T)|| (lambda_W lambda_phi)^(T-t) dashed for the
   vanilla cells; table of fitted per-step decay rates -> `gradients_seed<seed>.{png,md,json}`.
2. clipping: vanilla tanh at the largest radius trained on delayed recall (D = --seq_len - 1)
   with `--clip_optimizer`/`--clip_lr`, without clipping and with --clip; grad_norm (before
   clipping) every step -> `clipping_seed<seed>.{png,md}` plus the two run dirs.
3. recall: accuracy on held-out sequences vs delay D (`--delays`) for every cell (or
   `--recall_cells`) after `--steps` updates (vanilla only at `--recall_radii`)
   -> `recall_seed<seed>.{png,md}` plus run dirs.

Defaults: hidden 32, batch 32, T 100, 600 steps of Adam (lr 1e-2, clip 1) per recall run; the
whole study took about 20 min wall on 2 shared cores (recall: 42 trainings, 659 s of summed training time). Headline:
gradient decay per step at init from 0.47 (tanh, radius 0.5) to 0.999 (uRNN); only the uRNN and
the LSTM with forget bias 1 recall at D = 32. `--quick` shrinks everything to run end to end in
seconds. Results and commands: experiments/vanishing_gradients.md.
"""

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import flags

from experiments import flags as shared
from rnn_jax import diagnostics, losses, optimizers, readout, results, train, unroll
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import recall
from rnn_jax.unroll import output_size

flags.DEFINE_list("parts", ["gradients", "clipping", "recall"], "Parts of the study to run.")
flags.DEFINE_list("radii", ["0.5", "0.9", "1.0", "1.1", "1.5"], "Vanilla tanh spectral radii.")
flags.DEFINE_list("recall_radii", ["1.0"], "Vanilla tanh radii trained in the recall part.")
flags.DEFINE_list("recall_cells", [], "Cells (CELLS names) of the recall part; empty: all.")
flags.DEFINE_list("delays", ["1", "2", "4", "8", "16", "32"], "Recall delays D.")
flags.DEFINE_integer("gradient_len", 100, "Sequence length T of the gradient measurements.")
flags.DEFINE_integer("num_symbols", 4, "Alphabet of the inputs and the recall task.")
flags.DEFINE_integer("recall_eval_batch", 512, "Held-out sequences per recall accuracy.")
flags.DEFINE_enum("clip_optimizer", "sgd", sorted(optimizers.OPTIMIZERS), "Optimiser of part 2.")
flags.DEFINE_float("clip_lr", 0.1, "Learning rate of part 2.")
FLAGS = flags.FLAGS

EXPERIMENT = "vanishing_gradients"
PARTS = ("gradients", "clipping", "recall")
DEFAULTS = dict(steps=600, lr=1e-2, optimizer="adam", clip=1.0, batch=32, hidden=32, seq_len=30,
                log_every=50, cell="vanilla")
QUICK = dict(steps=6, batch=4, hidden=6, seq_len=5, log_every=2)
QUICK_OWN = dict(gradient_len=8, delays=[2], radii=[1.5], recall_eval_batch=8,
                 recall_cells=["gru"])


@dataclasses.dataclass(frozen=True)
class Config:
    train: shared.TrainConfig
    parts: tuple[str, ...]
    radii: tuple[float, ...]
    recall_radii: tuple[float, ...]
    recall_cells: tuple[str, ...]
    delays: tuple[int, ...]
    T: int
    num_symbols: int
    eval_batch: int
    clip_optimizer: str
    clip_lr: float


def variants(radii) -> list[tuple[str, str, dict]]:
    """(label, cell name, init options) for every registered cell; vanilla per radius, LSTM per
    forget bias."""
    rows = []
    for name in sorted(CELLS):
        if name == "vanilla":
            rows += [(f"vanilla_tanh_rho{r:g}", name, {"spectral_radius": r}) for r in radii]
        elif name == "lstm":
            rows += [(f"lstm_fb{b:g}", name, {"forget_bias": b}) for b in (0.0, 1.0)]
        else:
            rows.append((name, name, {}))
    return rows


def init_model(cell, key, options, config: Config):
    key_cell, key_readout = jax.random.split(key)
    params = cell.init(key_cell, config.num_symbols, config.train.hidden, **options)
    head = readout.init_linear(key_readout, output_size(cell, params), config.num_symbols)
    return {"cell": params, "readout": head}


def vanilla_activation(cell) -> str | None:
    """'tanh'/'relu'/... for vanilla cells (the bound applies), None otherwise."""
    return cell.name.split("_", 1)[1] if cell.name.startswith("vanilla_") else None


@jax.jit(static_argnums=0)
def measure(cell, model, xs, labels):
    """Geometric means over the batch of ||dL(T)/dh(t)|| and ||dh(T)/dh(t)||, t = 0..T."""

    def loss_fn(output):  # L(T): cross-entropy of the readout of the last output
        logits = readout.linear(model["readout"], output)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels)

    grads = diagnostics.gradient_norms(cell, model["cell"], xs, loss_fn)
    jacobians = diagnostics.jacobian_norms(cell, model["cell"], xs, final_only=True)
    geo_mean = lambda a: jnp.exp(jnp.mean(jnp.log(jnp.maximum(a, jnp.finfo(a.dtype).tiny)), 0))
    return geo_mean(grads), geo_mean(jacobians)


def gradient_study(config: Config, out: Path) -> str:
    """Part 1: gradient and Jacobian norms at init vs distance, with the bound; returns the table.

    Measured in float64, so that norms of 1e-40 and below stay representable (the float32 init
    is converted on the host: no per-shape float64 compiles)."""
    key_data, key_labels, key_model = jax.random.split(jax.random.key(config.train.seed), 3)
    xs, _ = recall.sample(key_data, config.train.batch, config.T - 1, config.num_symbols)
    labels = jax.random.randint(key_labels, (config.train.batch,), 0, config.num_symbols)
    to_float64 = lambda tree: jax.tree.map(lambda a: np.asarray(a, np.float64), tree)
    curves, rows = {}, []
    with jax.enable_x64(True):
        for i, (label, name, options) in enumerate(variants(config.radii)):
            cell = get_cell(name)
            model = to_float64(init_model(cell, jax.random.fold_in(key_model, i), options, config))
            grads, jacobians = measure(cell, model, to_float64(xs), labels)
            activation = vanilla_activation(cell)
            factor = diagnostics.bound_factor(model["cell"].W, activation) if activation else None
            curves[label] = {"grad": grads, "jacobian": jacobians, "bound_factor": factor}
            rows.append({"cell": label, "bound factor": factor,
                         "fitted rate dL/dh": diagnostics.decay_rate(grads),
                         "fitted rate dh(T)/dh(k)": diagnostics.decay_rate(jacobians),
                         f"dL/dh(0) / dL/dh(T), T={config.T}": f"{grads[0] / grads[-1]:.1e}"})
    curves, rows = results.to_jsonable(curves), results.to_jsonable(rows)
    stem = out / f"gradients_seed{config.train.seed}"
    stem.with_suffix(".json").write_text(json.dumps(curves))
    return save(plot_gradients(curves, config.T), stem, rows)


def figure(*grid, figsize=(7, 4), **options):
    """A matplotlib (Agg) figure: `(pyplot, fig, axes)`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return (plt, *plt.subplots(*grid, figsize=figsize, **options))


def save(fig, stem: Path, rows: list[dict] | None = None) -> str:
    """Writes `stem.png` (and the table `stem.md` from `rows`); returns the table."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=90)
    plt.close(fig)
    table = results.markdown_table(rows or [])
    if rows:
        stem.with_suffix(".md").write_text(table + "\n")
    return table


def plot_gradients(curves: dict, T: int):
    """log10 of each norm relative to its value at t = T, vs T - t; the bound dashed."""
    distance = np.arange(T, -1, -1)  # T - t for t = 0..T
    plt, fig, axes = figure(1, 2, figsize=(13, 5), sharey=True)
    colors = plt.cm.tab20(np.linspace(0, 1, len(curves)))
    for ax, kind, title in ((axes[0], "grad", "||dL(T)/dh(t)|| / ||dL(T)/dh(T)||"),
                            (axes[1], "jacobian", "||dh(T)/dh(t)||_2")):
        for color, (label, curve) in zip(colors, curves.items()):
            values = np.maximum(np.asarray(curve[kind]), 1e-300)
            ax.plot(distance, np.log10(values / values[-1]), color=color, label=label)
            if curve["bound_factor"] is not None:  # the notes' bound, from the parameters
                ax.plot(distance, distance * np.log10(curve["bound_factor"]), color=color, ls="--",
                        lw=0.8)
        ax.set(xlabel="distance T - t", title=f"log10 {title} at init (dashed: bound)")
    axes[0].set_ylabel("log10 (geometric mean over the batch)")
    axes[0].set_ylim(-40, 20)
    axes[1].legend(fontsize=7, ncol=2)
    return fig


def recall_loss_fn(cell):
    """The loop's loss: cross-entropy of the readout of the last output vs the recalled symbol."""

    def loss_fn(params, batch, key, stream):
        xs, labels = batch
        ys, _ = unroll(cell, params["cell"], xs)
        logits = readout.linear(params["readout"], ys[:, -1])
        accuracy = jnp.mean(jnp.argmax(logits, -1) == labels)
        return losses.softmax_cross_entropy(logits, labels), ({"accuracy": accuracy}, stream)

    return loss_fn


def train_recall(config: Config, run_name: str, label: str, name: str, options: dict, delay: int,
                 optimizer, log_every: int) -> tuple[Path, dict]:
    """Trains one cell on recall at `delay` with the shared loop; returns (run dir, last record)."""
    cfg = config.train
    cell = get_cell(name)
    key_model, key_data, key_eval, key_train = jax.random.split(jax.random.key(cfg.seed), 4)
    params = init_model(cell, key_model, options, config)
    loss_fn = recall_loss_fn(cell)
    eval_data = recall.sample(key_eval, config.eval_batch, delay, config.num_symbols)
    evaluate = jax.jit(lambda p, b: loss_fn(p, b, None, ())[1][0])
    try:
        run = results.Run.create(cfg.out_dir, EXPERIMENT, run_name, {
            "config": config, "cell": label, "delay": delay}, overwrite=cfg.overwrite)
    except results.RunFinished as finished:  # trained before: its files are the result
        print(finished)
        return finished.run.path, finished.run.summary()["final"]
    state = train.init_state(params, optimizer, key_train)
    get_batch = lambda step: recall.sample(jax.random.fold_in(key_data, step), cfg.batch, delay,
                                           config.num_symbols)
    _, history = train.fit(
        state, train.make_train_step(loss_fn, optimizer), get_batch, num_steps=cfg.steps,
        eval_fn=lambda p: {"eval_accuracy": evaluate(p, eval_data)["accuracy"]},
        log_every=log_every, run=run, plot=False)
    return run.path, history[-1]


def clipping_study(config: Config, out: Path, prefix: str) -> str:
    """Part 2: grad_norm over training with and without clipping; returns the table."""
    radius, cfg = max(config.radii), config.train
    rows, series = [], {}
    for clip in (0.0, cfg.clip):
        optimizer = optimizers.make_optimizer(config.clip_optimizer, config.clip_lr, clip_norm=clip)
        path, last = train_recall(config, f"{prefix}clipping_clip{clip:g}_seed{cfg.seed}",
                                  "vanilla", "vanilla", {"spectral_radius": radius},
                                  cfg.seq_len - 1, optimizer, log_every=1)
        norms = np.array([r["grad_norm"] for r in results.read_metrics(path)])
        series[f"clip {clip:g}" if clip else "no clipping"] = norms
        rows.append({"clip": clip or None, "median grad norm": float(np.median(norms)),
                     "99th percentile": float(np.percentile(norms, 99)),
                     "max grad norm": float(norms.max()),
                     f"steps with norm > {cfg.clip:g}": int(np.sum(norms > cfg.clip)),
                     "final loss": last["loss"], "final eval accuracy": last["eval_accuracy"]})
    stem = out / f"clipping_seed{cfg.seed}"
    _, fig, ax = figure()
    for label, norms in series.items():
        ax.semilogy(np.arange(1, len(norms) + 1), norms, label=label, lw=0.8)
    ax.set(xlabel="step", ylabel="global grad norm (before clipping)",
           title=f"vanilla tanh, rho {radius:g}, recall D = {cfg.seq_len - 1}, "
                 f"{config.clip_optimizer} lr {config.clip_lr:g}")
    ax.legend()
    return save(fig, stem, rows)


def recall_study(config: Config, out: Path, prefix: str) -> str:
    """Part 3: held-out recall accuracy vs delay D for every cell; returns the table."""
    cfg = config.train
    optimizer = shared.make_optimizer(cfg)
    accuracy = {}
    for label, name, options in variants(config.recall_radii):
        if config.recall_cells and name not in config.recall_cells:
            continue
        accuracy[label] = [
            train_recall(config, f"{prefix}recall_{label}_D{delay}_seed{cfg.seed}", label, name,
                         options, delay, optimizer, cfg.log_every)[1]["eval_accuracy"]
            for delay in config.delays
        ]
    rows = [{"cell": label, **{f"D={d}": a for d, a in zip(config.delays, accs)}}
            for label, accs in accuracy.items()]
    stem = out / f"recall_seed{cfg.seed}"
    _, fig, ax = figure()
    for label, accs in accuracy.items():
        ax.plot(config.delays, accs, marker="o", label=label)
    ax.axhline(1 / config.num_symbols, color="k", ls="--", label="chance")
    ax.set(xscale="log", xlabel="delay D", ylabel="held-out accuracy",
           title=f"recall after {cfg.steps} steps (h = {cfg.hidden})")
    ax.legend(fontsize=7)
    return save(fig, stem, rows)


def own_flag(name: str):
    return QUICK_OWN[name] if FLAGS.quick and not FLAGS[name].present and name in QUICK_OWN \
        else FLAGS[name].value


def parse_list(name: str, kind, expected: str, least: float) -> tuple:
    """A list flag as numbers of `kind`, each finite and >= `least`; FlagError naming it."""
    values = own_flag(name)
    try:
        numbers = tuple(kind(v) for v in values)
    except ValueError:
        numbers = ()
    shared.check(len(numbers) == len(values) and all(np.isfinite(numbers))
                 and all(v >= least for v in numbers), name, expected,
                 ",".join(map(str, values)))
    return numbers


def make_config() -> Config:
    """Reads and validates every flag before any compile."""
    cfg = shared.train_config(DEFAULTS, QUICK)
    radii = parse_list("radii", float, "positive finite radii", least=np.nextafter(0, 1))
    recall_radii = parse_list("recall_radii", float, "positive finite radii (or none)",
                              least=np.nextafter(0, 1))
    delays = parse_list("delays", int, "integer delays >= 0", least=0)
    shared.check_distinct(radii, "radii")
    shared.check_distinct(delays, "delays")
    shared.check_distinct(FLAGS.parts, "parts")
    shared.check(all(p in PARTS for p in FLAGS.parts), "parts", f"parts among {PARTS}", FLAGS.parts)
    recall_cells = tuple(own_flag("recall_cells"))
    shared.check(set(recall_cells) <= set(CELLS), "recall_cells", f"cells among {sorted(CELLS)}",
                 recall_cells)
    shared.check(own_flag("gradient_len") >= 1, "gradient_len", "an integer >= 1",
                 own_flag("gradient_len"))
    shared.check(FLAGS.num_symbols >= 2, "num_symbols", "an integer >= 2", FLAGS.num_symbols)
    shared.check(own_flag("recall_eval_batch") >= 1, "recall_eval_batch", "an integer >= 1",
                 own_flag("recall_eval_batch"))
    shared.check(np.isfinite(FLAGS.clip_lr) and FLAGS.clip_lr > 0, "clip_lr",
                 "a positive finite learning rate", FLAGS.clip_lr)
    shared.check(cfg.clip > 0 or "clipping" not in FLAGS.parts, "clip", "a norm > 0 for "
                 "--parts=clipping (it compares training with and without it)", cfg.clip)
    return Config(cfg, tuple(FLAGS.parts), radii, recall_radii, recall_cells, delays,
                  own_flag("gradient_len"),
                  FLAGS.num_symbols, own_flag("recall_eval_batch"), FLAGS.clip_optimizer,
                  FLAGS.clip_lr)


def main(argv) -> Path:
    shared.check_no_positional(argv)
    config = make_config()
    prefix = ("quick_" if config.train.quick else "") + (
        f"{config.train.run_name}_" if config.train.run_name else "")
    out = Path(config.train.out_dir) / EXPERIMENT / f"{prefix}study"
    out.mkdir(parents=True, exist_ok=True)
    studies = {"gradients": lambda: gradient_study(config, out),
               "clipping": lambda: clipping_study(config, out, prefix),
               "recall": lambda: recall_study(config, out, prefix)}
    report = "\n\n".join(f"## {part}\n\n{studies[part]()}" for part in config.parts)
    path = out / f"report_seed{config.train.seed}.md"
    path.write_text(report + "\n")
    print(report)
    return path


if __name__ == "__main__":
    shared.run(main)
