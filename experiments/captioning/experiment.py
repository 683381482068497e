"""Captioning in miniature (one-to-many): an 8x8 digit image -> its English name, letter by
letter ("seven"), as the notes' image-captioning picture does with a CNN and a sentence.

    python -m experiments.captioning --seeds=3 --grid=cell=vanilla,gru,lstm
    python -m experiments.captioning --seeds=3 --cell=gru --grid=beam_width=1,4

Encoder: a linear map of the 64 pixels, `tanh(B x + b)`, split into the decoder cell's initial
carry (`rnn_jax.seq2seq.model.bridge`, the same bridge an encoder RNN's summary goes through).
Decoder: `rnn_jax.seq2seq`'s decoder (any cell with a real carry, no attention: there is one
image vector), trained with teacher forcing on the name followed by EOS and searched greedily
(or with `--beam_width` > 1, beam search) on held-out images. The data are scikit-learn's 8x8 digits
(`pip install scikit-learn`), split once by --split_seed. The report gives exact-match and
per-letter accuracy and the rate of outputs that spell one of the ten names, with 95 %
intervals over seeds, and greedy samples of member 0 on the first test images (from its last
checkpoint). Measured results and commands: experiments/captioning/README.md.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.population_state import load_member
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import losses, population_plots, readout
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.data import digits
from rnn_jax.seq2seq import decode
from rnn_jax.seq2seq import decoder as decoder_lib
from rnn_jax.seq2seq import model as seq2seq_model

NAME = "captioning"
NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
LETTERS = tuple(sorted(set("".join(NAMES))))
VOCAB = ("<pad>", "<bos>", "<eos>", *LETTERS)  # PAD, BOS, EOS first, as rnn_jax.seq2seq expects
MAX_LEN = max(map(len, NAMES)) + 1  # the longest name and its EOS
SAMPLES = 12
# Cells whose carry is complex: the bridge's real `tanh(B x + b)` cannot start them
# (rnn_jax.seq2seq.model.bridge), so --cell does not offer them.
COMPLEX_CARRY = ("lru", "urnn")
CELL_CHOICES = tuple(c for c in sorted(CELLS) if c not in COMPLEX_CARRY)


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    cell: str = template.field("gru", "Decoder cell (rnn_jax.cells.CELLS, less the "
                               "complex-carry cells lru and urnn, which the real bridge "
                               "cannot start).", choices=CELL_CHOICES)
    hidden: int = template.field(32, "Decoder hidden units.")
    embed: int = template.field(8, "Letter embedding size.")
    beam_width: int = template.field(1, "Evaluation search: 1 greedy, k > 1 beam search of "
                                     "width k.")
    split_seed: int = template.field(0, "Seed of the digits' train/test split (the same for "
                                     "every member).")
    test_fraction: float = template.field(0.2, "Fraction of the images held out.")
    lr: float = template.field(3e-3, "Learning rate.")
    steps: int = template.field(1000, "Training steps (updates) per member.")
    eval_every: int = template.field(100, "Evaluate every this many steps (0: only at the "
                                     "end).")
    checkpoint_every: int = template.field(1000, "Checkpoint every this many steps and at the "
                                           "end (the report's samples read the last one); 0: "
                                           "never, and no samples.")

    def validate(self):
        if not digits.sklearn_available():
            raise template.FlagError(f"scikit-learn: expected it installed for the 8x8 digits "
                                     f"({digits.INSTALL}), received not installed")
        template.check(self.embed >= 1, "embed", "an integer >= 1", self.embed)
        template.check(self.beam_width >= 1, "beam_width", "an integer >= 1", self.beam_width)
        template.check(0 < self.test_fraction < 1, "test_fraction", "a value in (0, 1)",
                       self.test_fraction)


QUICK = dict(hidden=8, batch=16, steps=20, log_every=10, eval_every=10, checkpoint_every=20)


class CaptionParams(NamedTuple):
    bridge: readout.LinearParams  # B: [pixels, decoder carry width], b
    decoder: decoder_lib.DecoderParams


def captions() -> tuple[np.ndarray, np.ndarray]:
    """Per digit, its name's tokens then EOS, PAD after: `([10, MAX_LEN] int32, lengths [10])`."""
    tokens = np.full((len(NAMES), MAX_LEN), decoder_lib.PAD, np.int32)
    for digit, name in enumerate(NAMES):
        tokens[digit, :len(name) + 1] = [VOCAB.index(c) for c in name] + [decoder_lib.EOS]
    return tokens, np.array([len(name) + 1 for name in NAMES], np.int32)


def text(tokens) -> str:
    """Tokens up to the first EOS as letters (other specials shown as <...>)."""
    out = []
    for token in np.asarray(tokens).tolist():
        if token == decoder_lib.EOS:
            break
        out.append(VOCAB[token])
    return "".join(out)


def structure(config: Config) -> seq2seq_model.Seq2Seq:
    """The decoder and its bridge as `rnn_jax.seq2seq` sees them (the encoder is unused)."""
    cell = get_cell(config.cell)
    return seq2seq_model.Seq2Seq(seq2seq_model.Encoder(cell), decoder_lib.Decoder(cell))


def init(key: jax.Array, config: Config, pixels: int) -> CaptionParams:
    model = structure(config)
    key_bridge, key_decoder = jax.random.split(key)
    params = decoder_lib.init(key_decoder, model.decoder, len(VOCAB), config.embed,
                              config.hidden)
    width = sum(leaf.shape[-1] for leaf in jax.tree.leaves(
        model.decoder.cell.initial_carry(params.cell, (1,))))
    return CaptionParams(readout.init_linear(key_bridge, pixels, width), params)


def start(config: Config, params: CaptionParams, images: jax.Array):
    """`images [batch, pixels]` -> the decoder's initial carry, `tanh(B x + b)` split."""
    view = seq2seq_model.Seq2SeqParams(None, (), params.bridge, params.decoder)
    return seq2seq_model.bridge(structure(config), view, images)


def search(config: Config, params: CaptionParams, images: jax.Array) -> decode.Decoded:
    decoder, carry = structure(config).decoder, start(config, params, images)
    if config.beam_width == 1:
        return decode.greedy(decoder, params.decoder, carry, None, MAX_LEN)
    return decode.beam_search(decoder, params.decoder, carry, None, MAX_LEN, config.beam_width)


def data(config: Config):
    """Flattened images `[n, 64]` and labels, train and test."""
    d = digits.load_digits(jax.random.key(config.split_seed), config.test_fraction)
    flat = lambda images: jnp.asarray(images.reshape(len(images), -1))  # noqa: E731
    return flat(d.train_images), jnp.asarray(d.train_labels), flat(d.test_images), \
        jnp.asarray(d.test_labels)


def task(config: Config) -> Task:
    """One member: linear image encoder -> decoder over letters, teacher forcing."""
    decoder = structure(config).decoder
    train_x, train_y, test_x, test_y = data(config)
    name_tokens, name_lengths = map(jnp.asarray, captions())

    def loss_fn(params, batch, key, stream):
        images, labels = batch
        targets, lengths = name_tokens[labels], name_lengths[labels]
        logits, _ = decoder_lib.forward(decoder, params.decoder, None,
                                        start(config, params, images),
                                        decoder_lib.shift_right(targets), lengths)
        mask = jnp.arange(MAX_LEN)[None, :] < lengths[:, None]
        right = (jnp.argmax(logits, -1) == targets) & mask
        return losses.softmax_cross_entropy(logits, targets, mask), (
            {"teacher_forced_letter_accuracy": jnp.sum(right) / jnp.sum(mask)}, stream)

    def sample(key, step):
        index = jax.random.randint(jax.random.fold_in(key, step), (config.batch,), 0,
                                   train_x.shape[0])
        return train_x[index], train_y[index]

    def evaluate(params, key):
        decoded = search(config, params, test_x)
        scores = decode.accuracy(decoded, name_tokens[test_y], name_lengths[test_y])
        spelled = jnp.any(jnp.all(decoded.tokens[:, None, :] == name_tokens[None], -1), -1)
        return {"test_exact_match": scores["exact_match"],
                "test_letter_accuracy": scores["token_accuracy"],
                "test_valid_name": jnp.mean(spelled)}

    return Task(init=lambda key: init(key, config, train_x.shape[1]),
                            loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def run_name(config: Config) -> str:
    """E.g. 'gru_hidden32_seeds3' (`--run_name` wins)."""
    return driver.run_name(config, ("cell", "hidden"))


def samples(config: Config, members: list[dict], pop_dir) -> list[dict] | None:
    """Member 0's captions of the first test images, from the population's last checkpoint."""
    if config.checkpoint_every == 0:
        return None
    params = load_member(task(config), config, members, pop_dir, 0)
    if params is None:
        return None
    _, _, test_x, test_y = data(config)
    decoded = jax.jit(lambda p, x: search(config, p, x))(params, test_x[:SAMPLES])
    return [{"digit": int(y), "name": NAMES[int(y)], "caption": text(tokens),
             "image": np.asarray(x).reshape(8, 8)}
            for x, y, tokens in zip(test_x[:SAMPLES], test_y[:SAMPLES], decoded.tokens)]


def plot_samples(path, rows: list[dict], title: str):
    plt = population_plots.pyplot()
    columns = (len(rows) + 1) // 2
    fig, axes = plt.subplots(2, columns, figsize=(1.3 * columns, 3.6))
    for ax, row in zip(axes.flat, rows):
        ax.imshow(row["image"], cmap="gray_r")
        ax.set_title(row["caption"] or "(empty)",
                     color="k" if row["caption"] == row["name"] else "r", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def report(run, config: Config, done: list) -> Report:
    """Per (cell, beam width): exact match, letter accuracy and valid-name rate over members
    (95 % t-intervals); the exact-match curves; member 0's samples per population."""
    rows, sample_lines, figures = [], [], []
    for pop_config, members, pop_run in done:
        outcomes = reporting.finals(pop_run)
        rows.append({"cell": pop_config.cell, "hidden": pop_config.hidden,
                     "beam_width": pop_config.beam_width, "steps": pop_config.steps,
                     "members": len(outcomes),
                     **{k: v for metric in ("test_exact_match", "test_letter_accuracy",
                                            "test_valid_name")
                        for k, v in reporting.metric_row(outcomes, metric).items()}})
        shown = samples(pop_config, members, pop_run.path)
        if shown:
            label = f"{pop_config.cell}, seed {members[0]['seed']}"
            sample_lines.append(f"{label}: " + ", ".join(
                f"{r['name']}->{r['caption'] or '(empty)'}" for r in shown))
            figure = plot_samples(pop_run.path / "samples.png", shown,
                                  f"captioning ({label}); red: wrong")
            figures.append(figure)  # copied as <experiment>_<run>_<population>_samples.png
    columns = ["cell", "hidden", "beam_width", "steps", "members", "test_exact_match_mean",
               "test_exact_match_ci95", "test_letter_accuracy_mean",
               "test_letter_accuracy_ci95", "test_valid_name_mean", "test_valid_name_ci95"]
    table = reporting.write_table(run, "table", rows, columns)
    (run.path / "samples.md").write_text("\n".join(sample_lines) + "\n")
    fields = [f for f in ("cell", "hidden", "beam_width", "lr") if f in
              template.grid_of(config)] or ["cell"]
    curves = reporting.plot_curves(run, "curves.png", done, "test_exact_match", fields,
                                   "captioning: exact match on held-out digits")
    return Report({"table": rows, "samples": sample_lines}, {"table": table},
                  (*figures, curves), tuple(sample_lines))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
