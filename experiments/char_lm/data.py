"""char_lm's data and models: the train / validation split, the truncated-BPTT batches as a
traced function of the step, the recurrent and fixed-window language models, n-gram baselines.
"""

import contextlib
import functools
import hashlib
import math
import re
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import template
from rnn_jax import get_cell, language_model, ngram
from rnn_jax.data import streams, text


@contextlib.contextmanager
def flag_errors(flag: str):
    """Re-raises a ValueError of the block as FlagError('--flag: ...'): for values checked only
    by using them (a file to read, a text to encode), whose library message already says what
    was expected and what was received."""
    try:
        yield
    except template.FlagError:
        raise
    except ValueError as error:
        raise template.FlagError(f"--{flag}: {error}") from error


class Split(NamedTuple):
    vocab: text.Vocabulary
    train_ids: np.ndarray  # [train tokens] int32
    valid_ids: np.ndarray  # [validation tokens] int32, the end of the text


def load_split(config) -> Split:
    """The vocabulary and the train / validation ids (the end of the text is validation).

    Characters: the vocabulary of the whole text, so that a character seen only in the
    validation part (or a prime drawn from it) is known. Words: the `vocab_cap` most frequent
    words of the training part (others are <unk>), so the validation text chooses nothing.
    Problems of the text itself raise FlagError naming --data_path (or --data)."""
    data, data_path, level = config.data, config.data_path, config.level
    if data == "hello" and not data_path:
        vocab = text.Vocabulary(tuple("helo"))  # the notes' order [h, e, l, o]
        ids = text.encode(vocab, "hello")
        return Split(vocab, ids, ids)  # the toy is its own validation set
    with flag_errors("data_path" if data_path else "data"):
        corpus = text.load_corpus(data, data_path, cache_dir=config.cache_dir or None)
        corpus = corpus[:config.text_chars] if config.text_chars else corpus
        if level == "char":
            vocab = text.build_vocabulary(corpus, "char")
            return Split(vocab, *text.split_train_validation(text.encode(vocab, corpus),
                                                             config.valid_fraction))
        train_text, valid_text = text.split_train_validation(corpus, config.valid_fraction)
        vocab = text.build_vocabulary(train_text, level, config.vocab_cap)
        return Split(vocab, text.encode(vocab, train_text), text.encode(vocab, valid_text))


def data_id(config) -> str:
    """The corpus name, or for `--data_path` the file's stem and the first 8 hex digits of the
    text's sha256 (e.g. 'tinyshakespeare-86c4e6aa'): the same text gives the same run name
    wherever it lies, another text another name. FlagError naming --data_path when the file
    cannot be read as text."""
    if not config.data_path:
        return config.data
    with flag_errors("data_path"):
        digest = hashlib.sha256(text.read_text_file(config.data_path).encode("utf-8"))
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "-", Path(config.data_path).stem)[:40] or "text"
    return f"{stem}-{digest.hexdigest()[:8]}"


def check_split(config, split: Split) -> None:
    """FlagErrors for a text too short for the split or for --batch streams."""
    n_train, n_valid = len(split.train_ids), len(split.valid_ids)
    template.check(min(n_train, n_valid) >= 2, "data_path" if config.data_path else "data",
                   f"a text of at least 2 training and 2 validation {config.level}s",
                   f"{n_train} and {n_valid}")
    template.check(n_train > config.batch, "batch", f"at most {n_train - 1} streams (one fewer "
                   f"than the {n_train} training {config.level}s)", config.batch)


def check_prime(vocab: text.Vocabulary, prime: str) -> str:
    """`prime` if the vocabulary encodes it as at least one token; FlagError naming --prime."""
    with flag_errors("prime"):
        ids = text.encode(vocab, prime)
    template.check(len(ids) >= 1, "prime", f"a text of at least one {vocab.level}", prime)
    return prime


def chunk_sampler(data: streams.Streams) -> Callable:
    """`(key, step) -> batch`: `streams.get_chunk(data, step)` as a traceable function of the
    step (the driver vmaps and jits it); the key is unused, every member reads the same text."""
    grid = {name: jnp.asarray(getattr(data, name)) for name in ("inputs", "targets", "mask")}
    k = data.chunk_length

    def sample(key, step):
        j = jnp.asarray(step) % data.num_chunks
        batch = {name: jax.lax.dynamic_slice_in_dim(a, j * k, k, axis=1)
                 for name, a in grid.items()}
        return {**batch, "reset": j == 0}

    return sample


class Model(NamedTuple):
    """A language model as functions (rnn_jax.language_model's interface)."""

    init: Callable  # key -> params
    apply: Callable  # (params, tokens [batch, time], stream, key) -> (logits, stream)
    step: Callable  # (params, stream, token [batch]) -> (stream, logits [batch, vocab])
    initial_stream: Callable  # (params, batch) -> the stream at the start of every row


def build_model(config, vocab_size: int) -> Model:
    """The recurrent LM (`--layers` x `--cell`, embedding `--embed`, dropout) or the
    fixed-window LM (`--model=window`) over a vocabulary of `vocab_size` tokens."""
    if config.model == "window":
        return Model(lambda key: language_model.init_window(
            key, vocab_size, config.window, config.embed, config.hidden),
            language_model.window_apply, language_model.window_step,
            language_model.window_initial_stream)
    cells = (get_cell(config.cell),) * config.layers
    return Model(
        lambda key: language_model.init(key, cells, vocab_size, [config.hidden] * config.layers,
                                        embed_size=config.embed),
        functools.partial(language_model.apply, cells, dropout_rate=config.dropout),
        functools.partial(language_model.step, cells),
        functools.partial(language_model.initial_stream, cells))


def unknown_rate(split: Split) -> float:
    """The fraction of validation tokens that are the vocabulary's unknown token (0 for a
    vocabulary without one: characters)."""
    if split.vocab.unknown is None:
        return 0.0
    return float(np.mean(split.valid_ids == split.vocab.tokens.index(split.vocab.unknown)))


def ngram_table(split: Split, max_order: int) -> dict[str, float]:
    """Validation nats/token of n-gram models n = 1..max_order (add-k 0.1 / Kneser-Ney)."""
    table = {}
    for n in range(1, max_order + 1):
        for smoothing in ngram.SMOOTHINGS:
            model = ngram.fit(split.train_ids, n, split.vocab.size, smoothing=smoothing, k=0.1)
            table[f"{n}-gram {smoothing}"] = ngram.nats_per_token(model, split.valid_ids)
    return table


def ngram_rows(table: dict[str, float]) -> list[dict]:
    """`[{n, add_k, kneser_ney (nats/token), ..._bits}]` from `ngram_table`'s dict."""
    orders = sorted({int(name.split("-")[0]) for name in table})
    return [{"n": n, **{s: table[f"{n}-gram {s}"] for s in ngram.SMOOTHINGS},
             **{f"{s}_bits": table[f"{n}-gram {s}"] / math.log(2) for s in ngram.SMOOTHINGS}}
            for n in orders]
