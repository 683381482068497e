"""Sequence to sequence: an encoder-decoder with and without attention, tested beyond the
source lengths it was trained on (Bahdanau et al. 2015, Fig. 2).

Tasks with exact answers (`rnn_jax/data/translation.py`): reversal, sorting, decimal addition
("123+45" -> "168"), dates in many formats -> ISO 8601. Training sources have lengths in
[--min_len, --seq_len]; the evaluation decodes greedily at each of --test_lengths and counts
exact matches and correct tokens. Without attention the whole source must pass through the
bridge's fixed-size vector, so accuracy should fall with length; with attention it should hold.
The page's job (numbers in experiments/seq2seq/README.md):

    python -m experiments.seq2seq --task=reversal --seeds=3 --grid=attention=none,additive \
        --out_dir=results --figures_dir=experiments/seq2seq/figures

The lessons on decoding (same page): `--decoder_training=teacher|free|scheduled` sets what the
decoder is fed in training (teacher forcing, its own argmax, scheduled sampling;
`decoder_training.py`), and `--beam_widths=1,2,4,8` decodes the trained members with beam
search (`beam.py`).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.population_state import load_member
from experiments.harness.records import Experiment, Report, Task
from experiments.seq2seq import decoder_training
from rnn_jax import population_plots, stats, training
from rnn_jax.cells import get_cell
from rnn_jax.data import translation
from rnn_jax.seq2seq import Decoder, Encoder, Seq2Seq, attention, decode, model
from rnn_jax.seq2seq import decoder as decoder_lib

NAME = "seq2seq"
EVAL_BATCH = 256
DECODER_TRAINING = ("teacher", "free", "scheduled")


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    task: str = template.field("reversal", "Translation task.", choices=translation.TASKS)
    attention: str = template.field("additive", "Attention over the encoder outputs.",
                                    choices=attention.KINDS)
    cell: str = template.field("gru", "Encoder and decoder cell (rnn_jax.cells.CELLS).",
                               choices=["vanilla", "irnn", "gru", "lstm"])
    bidirectional: bool = template.field(False, "Bidirectional encoder.")
    hidden: int = template.field(32, "Hidden units of the encoder and the decoder.")
    embed: int = template.field(16, "Token embedding width.")
    seq_len: int = template.field(16, "Longest training source (the task's length L).")
    min_len: int = template.field(1, "Shortest training source.")
    test_lengths: tuple[int, ...] = template.field((4, 8, 12, 16, 20, 24), "Source lengths of the "
                                                   "evaluation (beyond --seq_len: length "
                                                   "generalisation); dates ignore them.")
    steps: int = template.field(3000, "Training steps (updates) per member.")
    lr: float = template.field(3e-3, "Learning rate (peak rate under a schedule).")
    eval_every: int = template.field(500, "Evaluate every this many steps (0: only at the end).")
    checkpoint_every: int = template.field(1000, "Checkpoint every this many steps and at the "
                                           "end (0: never; the attention figure and "
                                           "--beam_widths need one).")
    decoder_training: str = template.field(
        "teacher", "What the decoder is fed in training: the true previous token (teacher), "
        "its own argmax (free: free running, as greedy decoding feeds it) or the true one "
        "with probability eps_i decaying by --sampling_schedule (scheduled: Bengio et al. "
        "2015).", choices=DECODER_TRAINING)
    sampling_schedule: str = template.field(
        "inverse_sigmoid", "Scheduled sampling's eps_i at update i: linear max(min, 1 - i/k), "
        "exponential k**i, inverse_sigmoid k/(k + exp(i/k)) (rnn_jax.seq2seq.decoder."
        "teacher_forcing_probability).", choices=decoder_lib.SCHEDULES)
    sampling_k: float = template.field(300.0, "The schedule's k: updates (linear, "
                                       "inverse_sigmoid) or the decay per update (exponential).")
    sampling_min: float = template.field(0.0, "The smallest eps_i (probability of the true "
                                         "token) of the schedule.")
    sampling_draw: str = template.field("sample", "Scheduled sampling feeds a token drawn from "
                                        "the decoder's softmax (the paper) or its argmax.",
                                        choices=("sample", "argmax"))
    beam_widths: tuple[int, ...] = template.field(
        (), "After training (or with --report_only): decode every test length with beam "
        "search of each width (1: greedy) from the members' last checkpoint; beam.md, "
        "beam.png.")
    beam_alpha: float = template.field(0.6, "Beam search's length normalisation alpha "
                                       "(Wu et al. 2016, eq. 14; 0: none).")

    def validate(self):
        low = 3 if self.task == "addition" else 1  # "a+b"; shorter --min_len count as 3
        template.check(1 <= self.min_len <= self.seq_len, "min_len",
                       f"1 <= min_len <= --seq_len={self.seq_len}", self.min_len)
        template.check(self.seq_len >= low, "seq_len", f"a length >= {low} for {self.task}",
                       self.seq_len)
        template.check(len(self.test_lengths) > 0 and min(self.test_lengths) >= low, "test_lengths",
                       f"source lengths >= {low}", self.test_lengths)
        template.check(self.embed > 0, "embed", "a positive integer", self.embed)
        self.validate_decoding()

    def validate_decoding(self):
        """--decoder_training's schedule and --beam_widths, before any compile."""
        if self.decoder_training == "scheduled":
            expected = {"linear": ("k > 0", self.sampling_k > 0),
                        "exponential": ("0 < k < 1", 0 < self.sampling_k < 1),
                        "inverse_sigmoid": ("k >= 1", self.sampling_k >= 1)}
            text, ok = expected[self.sampling_schedule]
            template.check(ok, "sampling_k", f"{text} for --sampling_schedule="
                           f"{self.sampling_schedule}", self.sampling_k)
            template.check(0 <= self.sampling_min <= 1, "sampling_min", "a probability in "
                           "[0, 1]", self.sampling_min)
        widths = self.beam_widths
        template.check(all(w >= 1 for w in widths) and len(set(widths)) == len(widths),
                       "beam_widths", "distinct beam widths >= 1, e.g. 1,2,4,8", widths)
        template.check(not widths or self.checkpoint_every > 0, "checkpoint_every",
                       "a positive interval with --beam_widths (the beams decode the "
                       "checkpointed members)", self.checkpoint_every)
        template.check(self.beam_alpha >= 0, "beam_alpha", "a value >= 0", self.beam_alpha)


QUICK = dict(hidden=8, embed=4, seq_len=4, test_lengths=(3, 6), batch=8, steps=20,
             log_every=10, eval_every=10, checkpoint_every=10)


def lengths_of(config: Config) -> list[int | None]:
    """The evaluated source lengths (None: the task's own mix, for dates)."""
    return [None] if config.task == "dates" else list(config.test_lengths)


def suffix(length: int | None) -> str:
    return "all" if length is None else f"L{length}"


def run_name(config: Config) -> str:
    """The template's run name with the task first, e.g. 'reversal_gru_hidden32_seq_len16_...'
    (tasks share the other fields, so runs of two tasks must not share a directory)."""
    name = driver.run_name(config)
    if config.run_name or "task" in template.grid_of(config):
        return name
    prefix = "quick_" if config.quick else ""
    return f"{prefix}{config.task}_{name[len(prefix):]}"


def build(config: Config) -> Seq2Seq:
    cell = get_cell(config.cell)
    return Seq2Seq(Encoder(cell, 1, config.bidirectional), Decoder(cell, config.attention))


def evaluation_batch(config: Config, key: jax.Array, length: int | None) -> translation.Batch:
    n = length or 1
    return translation.sample(config.task, key, EVAL_BATCH, n, n)


def translate(config: Config, params, batch: translation.Batch) -> decode.Decoded:
    """Greedy decoding of a batch, as long as its padded targets."""
    net = build(config)
    carry, memory = model.start(net, params, batch.source, batch.source_lengths)
    return decode.greedy(net.decoder, params.decoder, carry, memory, batch.target.shape[1])


def task(config: Config) -> Task:
    """One member: encoder-decoder, teacher-forced cross-entropy, greedy evaluation."""
    net = build(config)

    def init(key):
        return model.init(key, net, translation.VOCAB_SIZE, embed_size=config.embed,
                          hidden_size=config.hidden)

    def loss_fn(params, batch, key, stream):
        loss, metrics = decoder_training.training_loss(config, net, params, *batch, key)
        return loss, (metrics, stream)

    def sample(key, step):  # the update travels with its batch, for the sampling schedule
        return (translation.sample(config.task, jax.random.fold_in(key, step), config.batch,
                                   config.min_len, config.seq_len),
                jnp.full((config.batch,), step, jnp.int32))

    def evaluate(params, key):
        out = {}
        for i, length in enumerate(lengths_of(config)):
            batch = evaluation_batch(config, jax.random.fold_in(key, i), length)
            accuracy = decode.accuracy(translate(config, params, batch), batch.target,
                                       batch.target_lengths)
            out[f"exact_{suffix(length)}"] = accuracy["exact_match"]
            out[f"token_{suffix(length)}"] = accuracy["token_accuracy"]
        return out

    return Task(init=init, loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def report(run, config: Config, done: list) -> Report:
    """Per population and source length: exact match and token accuracy over the members
    (mean, 95 % t-interval); the curve against length; one attention matrix."""
    rows, curves = [], {}
    for pop_config, members, pop_run in done:
        outcomes = reporting.finals(pop_run)
        label = population_label(pop_config, config)
        for length in lengths_of(pop_config):
            name = suffix(length)
            row = {"population": label, "source_length": name, "members": len(outcomes)}
            for metric in ("exact", "token"):
                d = stats.describe([o["final"].get(f"{metric}_{name}", np.nan) for o in outcomes])
                row[f"{metric}_mean"] = d["mean"]
                row[f"{metric}_ci95"] = f"[{d['ci95_low']:.3f}, {d['ci95_high']:.3f}]"
                row[f"_{metric}"] = d
            rows.append(row)
            curves.setdefault(label, []).append((length, row))
    columns = ["population", "source_length", "members", "exact_mean", "exact_ci95",
               "token_mean", "token_ci95"]
    table = reporting.write_table(run, "table", rows, columns)
    figures = [plot_accuracy(run, curves, config)]
    figures.append(plot_attention(run, config, done))
    from experiments.seq2seq import beam  # it imports this module

    tables = {"table": table}
    summary = {"table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows]}
    if config.beam_widths:
        result = beam.report(run, config, done)
        figures.append(result["figure"])
        tables["beam"] = result["markdown"]
        summary["beam"] = result["table"]
    return Report(summary, tables, tuple(figures))


def population_label(pop_config: Config, config: Config) -> str:
    grid = [n for n in template.grid_of(config) if n not in Config.MEMBER_FIELDS]
    return reporting.label(pop_config, grid or ["attention"])


def plot_accuracy(run: training.Run, curves: dict, config: Config):
    """accuracy_vs_length.png: exact match and token accuracy against source length, the mean
    over members with its 95 % t-interval; dotted: the longest training source."""
    if config.task == "dates":
        return None
    plt = population_plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, metric, title in zip(axes, ("exact", "token"), ("exact match", "token accuracy")):
        for label, points in curves.items():
            xs = [length for length, _ in points]
            d = [row[f"_{metric}"] for _, row in points]
            mean = np.array([x["mean"] for x in d])
            low = np.nan_to_num(mean - np.array([x["ci95_low"] for x in d]))
            high = np.nan_to_num(np.array([x["ci95_high"] for x in d]) - mean)
            ax.errorbar(xs, mean, yerr=[low, high], marker="o", capsize=3,
                        label=f"{label} (n={d[0]['n']})")
        ax.axvline(config.seq_len, color="k", linestyle=":", linewidth=1)
        ax.set(xlabel="source length", ylabel=f"{title} (mean, 95 % t-interval)",
               ylim=(-0.05, 1.05), title=f"{config.task}: {title}, trained on lengths <= "
               f"{config.seq_len}")
        ax.legend(fontsize=7)
    return population_plots.save(fig, run.path / "accuracy_vs_length.png")


def population_params(pop_config: Config, members: list[dict], pop_run: training.Run):
    """Every member's parameters (leaves `[members, ...]`) from the population's latest
    checkpoint (None: none)."""
    return load_member(task(pop_config), pop_config, members, pop_run.path, None)


def plot_attention(run: training.Run, config: Config, done: list):
    """attention.png: member 0's attention weights on one source at the longest test length
    within training (left) and at the longest test length (right), from the first population
    with attention and a checkpoint."""
    for pop_config, members, pop_run in done:
        if pop_config.attention == "none":
            continue
        params = load_member(task(pop_config), pop_config, members, pop_run.path, 0)
        if params is None:
            print(f"{pop_run.path.name}: no checkpoint, so no attention figure "
                  "(--checkpoint_every > 0 keeps one)")
            continue
        lengths = lengths_of(pop_config)
        within = [n for n in lengths if n is None or n <= pop_config.seq_len] or lengths[:1]
        shown = list(dict.fromkeys([within[-1], lengths[-1]]))
        plt = population_plots.pyplot()
        fig, axes = plt.subplots(1, len(shown), figsize=(8 * len(shown), 7), squeeze=False)
        for ax, length in zip(axes[0], shown):
            source, output, weights = attention_example(pop_config, params, length)
            ax.imshow(weights, cmap="gray_r", vmin=0, vmax=1)
            ax.set_xticks(range(len(source)), list(source))
            ax.set_yticks(range(len(output)), output)
            ax.set(xlabel="source", ylabel="greedy output", title=f"{pop_config.task}, "
                   f"{pop_config.attention} attention, source length {len(source)}")
        return population_plots.save(fig, run.path / "attention.png")
    return None


def attention_example(config: Config, params, length: int | None):
    """(source text, greedy output tokens as text, weights [output, source]) of one example."""

    @jax.jit
    def one(params, key):
        batch = jax.tree.map(lambda a: a[:1], evaluation_batch(config, key, length))
        return batch, translate(config, params, batch)

    batch, decoded = one(params, jax.random.key(config.seed))
    source = translation.decode(batch.source[0, :batch.source_lengths[0]])
    n_out = int(decoded.lengths[0])
    output = [translation.VOCAB[t] for t in np.asarray(decoded.tokens[0, :n_out])]
    return source, output, np.asarray(decoded.weights[0, :n_out, :len(source)])


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
