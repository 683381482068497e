"""Vanishing and exploding gradients, measured: the notes' bound, clipping, and how far back.

    python -m experiments.vanishing_gradients --part=gradients --seeds=10 --batch=8
    python -m experiments.vanishing_gradients --part=recall --seeds=10 \
        --grid=cell=gru,irnn,lstm,output_feedback,urnn,vanilla --grid=delay=2,8,16,32
    python -m experiments.vanishing_gradients --part=clipping --seeds=10 --optimizer=sgd \
        --lr=0.1 --spectral_radius=1.5 --delay=29 --grid=clip=0,1 --log_every=1

Three parts (--part; commands and results in experiments/vanishing_gradients/README.md):

1. gradients (no training, experiments/vanishing_gradients/norms.py): at init, for every
   registered cell (vanilla tanh per spectral radius in --radii, the LSTM at forget-gate bias
   0 and 1), ||dL(T)/dh(t)|| and ||dh(T)/dh(t)|| against T - t, with the vanilla cells'
   bound (lambda_W lambda_phi)^(T-t) (Pascanu, Mikolov & Bengio 2013); per-step decay rates
   over seeds.
2. clipping: a vanilla tanh RNN (--spectral_radius) trained on delayed recall at --delay
   without and with clipping (--grid=clip=0,<norm>: one population), the global gradient norm
   before clipping recorded at every step (--log_every=1).
3. recall: held-out accuracy on delayed recall (rnn_jax/data/recall.py) against the delay D
   (--grid=delay=...) for each cell (--grid=cell=...; vanilla at --spectral_radius, the LSTM
   at --forget_bias).
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Measurement, Report, Task
from experiments.vanishing_gradients import norms
from rnn_jax import losses, population_plots, sequence_model, stats
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import recall

NAME = "vanishing_gradients"
PARTS = ("gradients", "clipping", "recall")


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    part: str = template.field("gradients", "Part of the study: gradient norms at init (no "
                               "training), training with and without clipping, or recall "
                               "accuracy against the delay.", choices=PARTS)
    cell: str = template.field("vanilla", "clipping, recall: recurrent cell.",
                               choices=sorted(CELLS))
    steps: int = template.field(600, "Training steps (updates) per member.")
    seq_len: int = template.field(100, "gradients: sequence length T of the measurement "
                                  "(clipping and recall train on --delay + 1 steps).")
    log_every: int = template.field(50, "Log and record metrics every this many steps.")
    radii: tuple[float, ...] = template.field((0.5, 0.9, 1.0, 1.1, 1.5), "gradients: "
                                              "spectral radii of the vanilla tanh RNN.")
    spectral_radius: float = template.field(1.0, "clipping, recall: spectral radius of the "
                                            "vanilla cell's orthogonal recurrent init.")
    forget_bias: float = template.field(1.0, "recall: the LSTM's forget-gate bias at init.")
    delay: int = template.field(8, "clipping, recall: recall the symbol seen D steps before "
                                "the last.")
    num_symbols: int = template.field(4, "Alphabet of the inputs and the recall task.")
    eval_batch: int = template.field(512, "Held-out sequences per recall accuracy.")
    success_accuracy: float = template.field(0.99, "Held-out recall accuracy that counts as "
                                             "solved.")

    def validate(self):
        template.check(len(self.radii) > 0 and len(set(self.radii)) == len(self.radii) and
                       all(0 < r < math.inf for r in self.radii), "radii",
                       "distinct positive finite radii", ",".join(map(str, self.radii)))
        template.check(0 < self.spectral_radius < math.inf, "spectral_radius",
                       "a positive finite radius", self.spectral_radius)
        template.check(math.isfinite(self.forget_bias), "forget_bias", "a finite bias",
                       self.forget_bias)
        template.check(self.delay >= 0, "delay", "an integer delay >= 0", self.delay)
        template.check(self.num_symbols >= 2, "num_symbols", "an integer >= 2",
                       self.num_symbols)
        template.check(self.eval_batch >= 1, "eval_batch", "an integer >= 1", self.eval_batch)
        template.check(1 / self.num_symbols < self.success_accuracy <= 1, "success_accuracy",
                       "a value in (1 / num_symbols, 1]", self.success_accuracy)
        if self.part == "clipping":
            clips = template.grid_of(self).get("clip", [])
            template.check(0.0 in clips and any(c > 0 for c in clips), "grid", "clip=0,<norm> "
                           "with --part=clipping (it compares training without and with "
                           "clipping)", list(self.grid))
            template.check(self.log_every == 1, "log_every", "1 with --part=clipping (the "
                           "gradient norm of every step is the measurement)", self.log_every)


QUICK = dict(steps=6, batch=4, hidden=6, seq_len=8, log_every=2, radii=(1.5,), eval_batch=8,
             delay=2)


def init_options(config: Config) -> dict:
    """The cell's init options: the vanilla cell's spectral radius, the LSTM's forget bias."""
    return {"vanilla": {"spectral_radius": config.spectral_radius},
            "lstm": {"forget_bias": config.forget_bias}}.get(config.cell, {})


def variant(config: Config) -> str:
    """The cell and its init, as in the gradients table (e.g. 'lstm_fb1')."""
    if config.cell == "vanilla":
        return f"vanilla_tanh_rho{config.spectral_radius:g}"
    return f"lstm_fb{config.forget_bias:g}" if config.cell == "lstm" else config.cell


def task(config: Config) -> Task | Measurement:
    """gradients: a measurement; clipping, recall: one member trained on delayed recall
    (cell -> linear readout of the last output -> softmax over the symbols)."""
    if config.part == "gradients":
        return Measurement(functools.partial(norms.measure, config))
    cell, symbols = get_cell(config.cell), config.num_symbols

    def metrics(params, xs, labels):
        logits = sequence_model.apply(cell, params, xs, many_to_one=True)
        return (losses.softmax_cross_entropy(logits, labels),
                jnp.mean(jnp.argmax(logits, -1) == labels))

    def loss_fn(params, batch, key, stream):
        loss, accuracy = metrics(params, *batch)
        return loss, ({"accuracy": accuracy}, stream)

    def evaluate(params, key):
        loss, accuracy = metrics(params, *recall.sample(key, config.eval_batch, config.delay,
                                                        symbols))
        return {"eval_loss": loss, "eval_accuracy": accuracy}

    return Task(
        init=lambda key: sequence_model.init(key, cell, symbols, config.hidden,
                                                     symbols, **init_options(config)),
        loss_fn=loss_fn, evaluate=evaluate,
        sample=lambda key, step: recall.sample(jax.random.fold_in(key, step), config.batch,
                                               config.delay, symbols))


def solved(config: Config, outcomes: list[dict]) -> list[bool]:
    return [o["final"].get("eval_accuracy", 0.0) >= config.success_accuracy for o in outcomes]


def recall_report(run, config: Config, done: list) -> tuple[str, object, list[dict]]:
    """Per (cell variant, delay): success rate (Wilson) and held-out accuracy over seeds."""
    rows, points = [], {}
    for pop_config, _, pop_run in done:
        outcomes = reporting.finals(pop_run)
        row = {"cell": variant(pop_config), "delay": pop_config.delay,
               "members": len(outcomes),
               **reporting.success_row(outcomes, solved(pop_config, outcomes)),
               **reporting.metric_row(outcomes, "eval_accuracy")}
        rows.append(row)
        points.setdefault(row["cell"], []).append(
            (pop_config.delay, stats.describe([o["final"].get("eval_accuracy", np.nan)
                                               for o in outcomes]), row["_summary"]))
    columns = ["cell", "delay", "solved", "success_rate", "wilson95", "eval_accuracy_mean",
               "eval_accuracy_ci95", "eval_accuracy_median"]
    table = reporting.write_table(run, "table_recall", rows, columns)
    return table, plot_recall(run.path / "recall.png", points, config), rows


STYLES = [(marker, line) for line in ("-", "--", ":") for marker in "osD^vP"]


def dodged(delays, index: int, count: int) -> np.ndarray:
    """The delays moved by a small factor per series (`1.05^(index - (count - 1) / 2)`), so
    series with equal values sit side by side on the log axis instead of on top of each
    other."""
    return np.asarray(delays, float) * 1.05 ** (index - (count - 1) / 2)


def plot_recall(path, points: dict, config: Config):
    """`draw_recall`'s figure written as a PNG at `path` (legend included); returns the path."""
    fig = draw_recall(points, config)
    fig.savefig(path, dpi=90, bbox_inches="tight")
    population_plots.pyplot().close(fig)
    return path


def draw_recall(points: dict, config: Config):
    """Held-out accuracy (mean, 95 % t-interval) and success rate (Wilson) against delay:
    `points[label] = [(delay, accuracy description, success summary), ...]`. A log delay axis
    ticked at the delays run; each series its own marker and line style, dodged sideways;
    one legend right of both panels. Returns the matplotlib figure."""
    plt = population_plots.pyplot()
    fig, (accuracy_ax, rate_ax) = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    all_delays = sorted({d for entries in points.values() for d, _, _ in entries})
    for index, (label, entries) in enumerate(points.items()):
        entries = sorted(entries, key=lambda e: e[0])
        xs = dodged([d for d, _, _ in entries], index, len(points))
        marker, line = STYLES[index % len(STYLES)]
        style = dict(marker=marker, ls=line, capsize=3, color=f"C{index % 10}", label=label)
        means, lows, highs = (np.array([a[k] for _, a, _ in entries], float)
                              for k in ("mean", "ci95_low", "ci95_high"))
        accuracy_ax.errorbar(xs, means, yerr=[np.nan_to_num(means - lows),
                                              np.nan_to_num(highs - means)], **style)
        rates, lows, highs = (np.array([s[k] for _, _, s in entries], float)
                              for k in ("rate", "wilson_low", "wilson_high"))
        rate_ax.errorbar(xs, rates, yerr=[rates - lows, highs - rates], **style)
    accuracy_ax.axhline(1 / config.num_symbols, color="k", ls="--", lw=1, label="chance")
    accuracy_ax.set_ylabel("held-out accuracy (mean, 95 % CI)")
    rate_ax.set_ylabel(f"solved: accuracy >= {config.success_accuracy} (Wilson 95 %)")
    rate_ax.set_ylim(-0.05, 1.05)
    for ax in (accuracy_ax, rate_ax):
        ax.set_xscale("log")
        ax.set_xticks(all_delays, [str(d) for d in all_delays])
        ax.minorticks_off()
        ax.set_xlabel("delay D (log scale; series offset sideways)")
        ax.grid(alpha=0.3)
    handles, labels = accuracy_ax.get_legend_handles_labels()
    fig.legend(handles, labels, loc="center left", bbox_to_anchor=(1.0, 0.5), fontsize=8)
    fig.suptitle(f"delayed recall after {config.steps} steps (hidden {config.hidden})")
    fig.tight_layout()
    return fig


def clipping_report(run, config: Config, done: list) -> tuple[str, object, list[dict]]:
    """Per clip value: gradient-norm statistics per member (median, 99th percentile, max,
    steps above the norm), final loss and accuracy, success rate, over seeds."""
    rows, curves = [], {}
    for pop_config, members, pop_run in done:
        outcomes, records = reporting.finals(pop_run), pop_run.metrics()
        norm = max(m["clip"] for m in members)
        for clip in sorted({m["clip"] for m in members}):
            group = [i for i, m in enumerate(members) if m["clip"] == clip]
            series = [[r for r in records if r["member"] == i] for i in group]
            grad = [np.array([r["grad_norm"] for r in s]) for s in series]
            chosen = [outcomes[i] for i in group]
            label = f"clip {clip:g}" if clip else "no clipping"
            row = {"clip": label, "members": len(group),
                   **reporting.success_row(chosen, solved(pop_config, chosen))}
            per_member = {"median_grad_norm": [np.median(g) for g in grad],
                          "p99_grad_norm": [np.percentile(g, 99) for g in grad],
                          "max_grad_norm": [g.max() for g in grad],
                          f"steps_norm_above_{norm:g}": [float(np.sum(g > norm)) for g in grad]}
            for name, values in per_member.items():
                d = stats.describe(values)
                row[f"{name}_mean"] = d["mean"]
                row[f"{name}_ci95"] = f"[{d['ci95_low']:.4g}, {d['ci95_high']:.4g}]"
            row.update(reporting.metric_row(chosen, "loss"))
            row.update(reporting.metric_row(chosen, "eval_accuracy"))
            rows.append(row)
            curves[label] = stats.curve_quantiles([[r["step"] for r in s] for s in series],
                                                  [list(g) for g in grad])
    columns = [c for c in rows[0] if not c.startswith(("_", "median_steps")) and
               not c.endswith(("_std", "_median", "_nonfinite"))]
    table = reporting.write_table(run, "table_clipping", rows, columns)
    figure = population_plots.plot_population_curves(
        run.path / "clipping.png", curves, "grad_norm",
        f"vanilla tanh rho {config.spectral_radius:g}, recall D={config.delay}, "
        f"{config.optimizer} lr {config.lr:g}")
    return table, figure, rows


def report(run, config: Config, done: list) -> Report:
    """Each part's table and figure from its populations' run dirs."""
    out, figures = {}, []
    gradient_pops = [d for d in done if d[0].part == "gradients"]
    for pop_config, _, pop_run in gradient_pops:
        table, figure = norms.report(run, pop_run, pop_config)
        out["gradients"] = table
        figures.append(figure)
    for part, make in (("recall", recall_report), ("clipping", clipping_report)):
        selected = [d for d in done if d[0].part == part]
        if selected:
            out[part], figure, rows = make(run, config, selected)
            out[f"table_{part}"] = [{k: v for k, v in r.items() if not k.startswith("_")}
                                    for r in rows]
            figures.append(figure)
    prefix = f"{NAME}_{config.run_name}" if config.run_name else NAME  # named runs keep it
    return Report(out, {part: out[part] for part in PARTS if part in out}, tuple(figures),
                  figure_prefix=prefix)


def run_name(config: Config) -> str:
    parts = {"gradients": ("part", "hidden", "seq_len"),
             "clipping": ("part", "cell", "spectral_radius", "delay")}
    return driver.run_name(config, parts.get(config.part, ("part", "cell", "hidden",
                                                                "delay")))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
