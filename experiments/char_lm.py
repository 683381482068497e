"""Character-level (or word-level) language modelling with truncated BPTT, sampling, baselines.

Headline (see experiments/char_lm.md for the measured time, tokens/s and curve):

    python -m experiments.char_lm --data=tinyshakespeare --steps=1600 --eval_every=100

one LSTM layer of 512 units, embedding 64, 64 streams x 64-step chunks, Adam 2e-3, clip 1:
validation 1.551 nats/char after 1,000 steps (927 s at 4,420 tokens/s on a 2-core CPU shared
with other jobs, load 10-20), 1.540 after 1,100 steps (1,027 s), best 1.522 at step 1,400.
Defaults: --data=pydoc (built in, no download) --cell=lstm --layers=1 --hidden=512 --embed=64
--batch=64 --seq_len=64 (the truncated-BPTT chunk) --lr=2e-3 --clip=1 --steps=2000.
Other modes:
    --data=hello --quick            the notes' toy: vocabulary [h, e, l, o], learns "hello"
    --model=window --window=8       the fixed-window neural LM baseline (same loop)
    --baselines                     n-gram table (n = 1..--ngram_max, add-k and Kneser-Ney)
    --sample_only --checkpoint=DIR  sample from a finished run directory
"""

import dataclasses
import functools
import json
import math
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging

from experiments import flags as shared
from rnn_jax import get_cell, language_model, ngram, sampling, train
from rnn_jax.checkpoint import Checkpointer
from rnn_jax.data import streams, text

# Data.
flags.DEFINE_string("data", "pydoc", "Corpus: pydoc (built in), tinyshakespeare, hello (toy).")
flags.DEFINE_string("data_path", "", "A UTF-8 text file to model instead of --data.")
flags.DEFINE_string("cache_dir", "", "Download cache (default ~/.cache/rnn_jax).")
flags.DEFINE_enum("level", "char", ["char", "word"], "Model characters or words.")
flags.DEFINE_integer("vocab_cap", 10000, "Word level: most frequent words kept; others <unk>.")
flags.DEFINE_float("valid_fraction", 0.1, "The last this fraction of the text is validation.")
# Model.
flags.DEFINE_enum("model", "rnn", ["rnn", "window"], "Recurrent LM or fixed-window neural LM.")
flags.DEFINE_integer("layers", 1, "Recurrent layers.")
flags.DEFINE_integer("embed", 64, "Embedding size (0: one-hot inputs).")
flags.DEFINE_float("dropout", 0.0, "Dropout rate between layers (and before the readout).")
flags.DEFINE_integer("window", 8, "--model=window: the previous K tokens it sees.")
# Sampling and baselines.
flags.DEFINE_integer("sample_len", 500, "Tokens sampled at the end (and with --sample_only).")
flags.DEFINE_float("temperature", 0.8, "Sampling temperature (> 0).")
flags.DEFINE_integer("top_k", 0, "Sample among the k most likely tokens (0: all).")
flags.DEFINE_bool("greedy", False, "Greedy decoding (most likely token every step).")
flags.DEFINE_string("prime", "", "Priming text (default: the first token of the corpus).")
flags.DEFINE_bool("sample_only", False, "Only sample from --checkpoint (a run directory).")
flags.DEFINE_string("checkpoint", "", "Run directory to sample from with --sample_only.")
flags.DEFINE_bool("baselines", False, "Also fit the n-gram baselines on the same split.")
flags.DEFINE_integer("ngram_max", 8, "--baselines: n-gram orders 1..ngram_max.")
FLAGS = flags.FLAGS
DATA = (*text.CORPORA, "hello")

DEFAULTS = dict(steps=2000, lr=2e-3, clip=1.0, batch=64, cell="lstm", hidden=512, seq_len=64,
                log_every=50, eval_every=200, checkpoint_every=500)
QUICK = dict(steps=30, batch=8, hidden=32, seq_len=16, log_every=10, eval_every=0,
             checkpoint_every=0)
HELLO = dict(steps=150, lr=0.05, batch=1, hidden=16, seq_len=4, log_every=50, eval_every=50)


@dataclasses.dataclass(frozen=True)
class Config:
    train: shared.TrainConfig
    data: str
    data_path: str
    level: str
    vocab_cap: int
    valid_fraction: float
    model: str
    layers: int
    embed: int
    dropout: float
    window: int
    quick_text_chars: int  # --quick keeps only this many characters of the corpus (0: all)


def read_config() -> Config:
    defaults = {**DEFAULTS, **(HELLO if FLAGS.data == "hello" else {})}
    quick = {} if FLAGS.data == "hello" else QUICK
    config = Config(
        shared.train_config(defaults, quick), FLAGS.data, FLAGS.data_path, FLAGS.level,
        FLAGS.vocab_cap, FLAGS.valid_fraction, FLAGS.model, FLAGS.layers, FLAGS.embed,
        FLAGS.dropout, FLAGS.window, 20000 if FLAGS.quick else 0,
    )
    shared.check(config.layers >= 1, "layers", "at least 1 layer", config.layers)
    shared.check(0 <= config.dropout < 1, "dropout", "a rate in [0, 1)", config.dropout)
    shared.check(config.embed >= 0, "embed", "a size >= 0", config.embed)
    shared.check(not (config.model == "window" and config.embed == 0), "embed",
                 "an embedding size > 0 for --model=window", config.embed)
    shared.check(config.data in DATA, "data", f"a corpus among {DATA}", config.data)
    shared.check(0 < config.valid_fraction < 1, "valid_fraction", "a fraction in (0, 1)",
                 config.valid_fraction)
    shared.check(config.vocab_cap >= 2, "vocab_cap", "an integer >= 2 (<unk> and one word)",
                 config.vocab_cap)
    shared.check(config.window >= 1, "window", "an integer >= 1 (tokens seen)", config.window)
    shared.check(FLAGS.ngram_max >= 1, "ngram_max", "an integer >= 1", FLAGS.ngram_max)
    shared.check(not FLAGS.checkpoint, "checkpoint", "no value without --sample_only (a run "
                 "resumes from its own run directory)", FLAGS.checkpoint)
    cache = Path(FLAGS.cache_dir).expanduser()
    shared.check(not FLAGS.cache_dir or cache.is_dir() or not cache.exists(), "cache_dir",
                 "a directory (made if absent)", FLAGS.cache_dir)
    check_sampling_flags()
    return config


def check_sampling_flags() -> None:
    """The flags only used after training (sampling), checked before it."""
    shared.check(FLAGS.sample_len >= 1, "sample_len", "an integer >= 1", FLAGS.sample_len)
    shared.check(math.isfinite(FLAGS.temperature) and FLAGS.temperature > 0, "temperature",
                 "a finite temperature > 0", FLAGS.temperature)
    shared.check(FLAGS.top_k >= 0, "top_k", "an integer >= 0 (0: all tokens)", FLAGS.top_k)


def check_prime(vocab: text.Vocabulary, prime: str) -> str:
    """`prime` if the vocabulary encodes it as at least one token; FlagError naming --prime."""
    with shared.flag_errors("prime"):
        ids = text.encode(vocab, prime)
    shared.check(len(ids) >= 1, "prime", f"a text of at least one {vocab.level}", prime)
    return prime


def load_split(config: Config) -> tuple[text.Vocabulary, np.ndarray, np.ndarray]:
    """The vocabulary and the train / validation ids (the end of the text is validation).

    Characters: the vocabulary of the whole text, so that a character seen only in the
    validation part (or a prime drawn from it) is known. Words: the `vocab_cap` most frequent
    words of the training part (others are <unk>), so the validation text chooses nothing.
    Problems of the text itself (unreadable, empty, too short) raise FlagError naming
    --data_path (or --data)."""
    if config.data == "hello" and not config.data_path:
        vocab = text.Vocabulary(tuple("helo"))  # the notes' order [h, e, l, o]
        ids = text.encode(vocab, "hello")
        return vocab, ids, ids  # the toy is its own validation set
    with shared.flag_errors("data_path" if config.data_path else "data"):
        corpus = text.load_corpus(config.data, config.data_path,
                                  cache_dir=FLAGS.cache_dir or None)
        if config.quick_text_chars:
            corpus = corpus[: config.quick_text_chars]
        if config.level == "char":
            vocab = text.build_vocabulary(corpus, "char")
            train_ids, valid_ids = text.split_train_validation(
                text.encode(vocab, corpus), config.valid_fraction)
            return vocab, train_ids, valid_ids
        train_text, valid_text = text.split_train_validation(corpus, config.valid_fraction)
        vocab = text.build_vocabulary(train_text, config.level, config.vocab_cap)
        return vocab, text.encode(vocab, train_text), text.encode(vocab, valid_text)


def build_model(config: Config, vocab_size: int, key: jax.Array):
    """`(params, apply_fn, step_fn(params, stream, token), initial_stream(params, batch))`."""
    if config.model == "window":
        params = language_model.init_window(
            key, vocab_size, config.window, config.embed, config.train.hidden)
        return (params, language_model.window_apply, language_model.window_step,
                language_model.window_initial_stream)
    cells = (get_cell(config.train.cell),) * config.layers
    params = language_model.init(key, cells, vocab_size, [config.train.hidden] * config.layers,
                                 embed_size=config.embed)
    apply_fn = functools.partial(language_model.apply, cells, dropout_rate=config.dropout)
    return (params, apply_fn, functools.partial(language_model.step, cells),
            functools.partial(language_model.initial_stream, cells))


def sample_text(config: Config, vocab: text.Vocabulary, params, step_fn, initial_stream,
                prime: str) -> str:
    """Samples --sample_len tokens after `prime` (jitted once, one lax.scan)."""
    prime_ids = jnp.asarray(text.encode(vocab, prime))
    run = jax.jit(functools.partial(
        sampling.sample, functools.partial(step_fn, params), length=FLAGS.sample_len,
        temperature=FLAGS.temperature, top_k=FLAGS.top_k, greedy=FLAGS.greedy))
    key = jax.random.fold_in(jax.random.key(config.train.seed), 1)
    separator = " " if vocab.level == "word" else ""
    return prime + separator + text.decode(vocab, run(initial_stream(params, 1), prime_ids, key))


def ngram_table(vocab_size: int, train_ids, valid_ids, max_order: int) -> dict:
    """Validation nats/token of n-gram models n = 1..max_order (add-k 0.1 / Kneser-Ney)."""
    table = {}
    for n in range(1, max_order + 1):
        for smoothing in ngram.SMOOTHINGS:
            model = ngram.fit(train_ids, n, vocab_size, smoothing=smoothing, k=0.1)
            table[f"{n}-gram {smoothing}"] = ngram.nats_per_token(model, valid_ids)
    return table


def make_state(config: Config, vocab: text.Vocabulary):
    key_init, key_train = jax.random.split(jax.random.key(config.train.seed))
    params, apply_fn, step_fn, initial_stream = build_model(config, vocab.size, key_init)
    optimizer = shared.make_optimizer(config.train)
    state = train.init_state(params, optimizer, key_train,
                             initial_stream(params, config.train.batch))
    return state, optimizer, apply_fn, step_fn, initial_stream


def read_saved_run(run_dir: Path) -> tuple[Config, text.Vocabulary, str]:
    """A char_lm run directory's config, vocabulary and prime; FlagError naming --checkpoint
    when it is not one or holds no checkpoint."""
    def fail(received: str):
        return shared.FlagError(f"--checkpoint: expected a char_lm run directory (config.json, "
                                f"vocab.json, prime.txt, checkpoints/), received '{run_dir}'"
                                f"{received}")

    files = [run_dir / name for name in ("config.json", "vocab.json", "prime.txt")]
    missing = [path.name for path in files if not path.is_file()]
    if missing:
        raise fail(f" without {', '.join(missing)}" if run_dir.is_dir() else ", not a directory")
    try:
        saved = json.loads(files[0].read_text("utf-8"))
        config = Config(**{**saved, "train": shared.TrainConfig(**saved["train"])})
        vocab = text.load_vocabulary(files[1])
        prime = files[2].read_text("utf-8")
    except (ValueError, TypeError, KeyError) as error:  # JSON, or another experiment's config
        raise fail(f" ({type(error).__name__}: {error})") from error
    return config, vocab, prime


def sample_from_checkpoint(run_dir: Path) -> str:
    """Rebuilds the model from a run directory's config.json and vocab.json and samples."""
    config, vocab, saved_prime = read_saved_run(run_dir)
    prime = check_prime(vocab, FLAGS.prime or saved_prime)
    checkpointer = Checkpointer(run_dir / "checkpoints") if (run_dir / "checkpoints").is_dir() \
        else None
    if checkpointer is None or checkpointer.latest_step() is None:
        raise shared.FlagError(f"--checkpoint: expected a run directory with a saved checkpoint "
                               f"(trained with --checkpoint_every > 0), received '{run_dir}', "
                               "which has none")
    state, _, _, step_fn, initial_stream = make_state(config, vocab)
    with shared.flag_errors("checkpoint"):
        state = checkpointer.restore(state)
    checkpointer.close()
    return sample_text(config, vocab, state.params, step_fn, initial_stream, prime)


def main(argv):
    shared.check_no_positional(argv)
    if FLAGS.sample_only:
        shared.check(bool(FLAGS.checkpoint), "checkpoint", "a run directory", FLAGS.checkpoint)
        check_sampling_flags()
        sample = sample_from_checkpoint(Path(FLAGS.checkpoint).expanduser())
        print(sample)
        return
    config = read_config()
    vocab, train_ids, valid_ids = load_split(config)
    cfg = config.train
    shared.check(min(len(train_ids), len(valid_ids)) >= 2, "data_path" if config.data_path
                 else "data", f"a text of at least 2 training and 2 validation {config.level}s",
                 f"{len(train_ids)} and {len(valid_ids)}")
    prime = check_prime(vocab, FLAGS.prime or vocab.tokens[train_ids[0]])
    shared.check(len(train_ids) > cfg.batch, "batch", f"at most {len(train_ids) - 1} streams "
                 f"(one fewer than the {len(train_ids)} training {config.level}s)", cfg.batch)
    data = streams.make_streams(train_ids, cfg.batch, cfg.seq_len)
    eval_rows = max(1, min(64, (len(valid_ids) - 1) // cfg.seq_len))
    valid = streams.make_streams(valid_ids, eval_rows, cfg.seq_len)
    state, optimizer, apply_fn, step_fn, initial_stream = make_state(config, vocab)
    eval_fn = jax.jit(language_model.make_eval_fn(
        apply_fn, streams.all_chunks(valid), initial_stream(state.params, eval_rows)))
    level = {"level": config.level} if config.level != "char" else {}
    run = shared.make_run(cfg, "char_lm", config, data=config.data, model=config.model, **level)
    text.save_vocabulary(vocab, run.path / "vocab.json")
    (run.path / "prime.txt").write_text(prime, "utf-8")
    logging.info("%d train / %d validation tokens, vocabulary %d, %d chunks per epoch",
                 len(train_ids), len(valid_ids), vocab.size, data.num_chunks)
    if FLAGS.baselines:  # before training, so they are on disk even if training is stopped
        table = ngram_table(vocab.size, train_ids, valid_ids, FLAGS.ngram_max)
        (run.path / "ngram.json").write_text(json.dumps(table, indent=1))
        for name, nats in table.items():
            logging.info("%s: %.4f nats/token (%.4f bits)", name, nats, nats / math.log(2))
    train_step = train.make_train_step(language_model.make_loss_fn(apply_fn), optimizer)
    state, history = train.fit(state, train_step, functools.partial(streams.get_chunk, data),
                               eval_fn=eval_fn, run=run, **shared.fit_options(cfg))
    sample = sample_text(config, vocab, state.params, step_fn, initial_stream, prime)
    (run.path / "sample.txt").write_text(sample, "utf-8")
    final = history[-1]
    summary = {"val_nats": final["val_nats"], "val_bits": final["val_bits"],
               "val_perplexity": final["val_perplexity"], "train_tokens": len(train_ids),
               "valid_tokens": len(valid_ids), "tokens_per_step": cfg.batch * cfg.seq_len,
               "vocab_size": vocab.size}
    run.update_summary(summary)
    logging.info("validation %.4f nats/token; sample:\n%s", final["val_nats"], sample)
    print(sample)


if __name__ == "__main__":
    shared.run(main)
