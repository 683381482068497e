"""Translation tasks with exact answers, for encoder-decoder models (`rnn_jax.seq2seq`).

    reversal   "31415"        -> "51413"
    sorting    "31415"        -> "11345"
    addition   "123+45"       -> "168"          (Zaremba & Sutskever 2014, "Learning to Execute")
    dates      "March 5, 2021" or "05.03.2021" or ... -> "2021-03-05"    (ISO 8601)

One character vocabulary serves every task, sources and targets: PAD, BOS, EOS first (the
ids `rnn_jax.seq2seq` uses by default), then digits, punctuation and letters. A batch is
padded to fixed shapes (`shapes`), so one compiled program serves every batch: sources
`[batch, source]` with lengths; targets `[batch, steps]` end in EOS, which their lengths count.

Source lengths are drawn uniformly from [min_len, max_len] (addition: the whole "a+b", each
operand at least one digit, no leading zeros). Dates ignore the lengths: each source is one of
`DATE_FORMATS` of a day in `DATE_YEARS`, drawn uniformly from a table built once with Python's
`datetime` (English names, written here rather than by the locale-dependent `strftime`).
Batches are pure functions of their key (`jax.random`), traceable under `jit`/`vmap`.
"""

import datetime
import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.sequence import reverse_padded

PAD, BOS, EOS = 0, 1, 2
SYMBOLS = "0123456789+-/,. abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
VOCAB = ("<pad>", "<bos>", "<eos>") + tuple(SYMBOLS)
VOCAB_SIZE = len(VOCAB)
_ID = {symbol: i for i, symbol in enumerate(VOCAB)}
ZERO, PLUS = _ID["0"], _ID["+"]
TASKS = ("reversal", "sorting", "addition", "dates")

MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
DATE_FORMATS = (
    lambda d: f"{d.day} {MONTHS[d.month - 1]} {d.year}",  # 5 March 2021
    lambda d: f"{MONTHS[d.month - 1]} {d.day}, {d.year}",  # March 5, 2021
    lambda d: f"{d.day:02d} {MONTHS[d.month - 1][:3]} {d.year}",  # 05 Mar 2021
    lambda d: f"{MONTHS[d.month - 1][:3]} {d.day}, {d.year}",  # Mar 5, 2021
    lambda d: f"{d.day:02d}.{d.month:02d}.{d.year}",  # 05.03.2021
    lambda d: f"{d.month}/{d.day}/{d.year}",  # 3/5/2021 (US order)
    # Friday, March 5, 2021
    lambda d: f"{DAYS[d.weekday()]}, {MONTHS[d.month - 1]} {d.day}, {d.year}",
    lambda d: f"{d.year}/{d.month:02d}/{d.day:02d}",  # 2021/03/05
)
DATE_YEARS = (1990, 2029)  # first and last year
DATE_SOURCE, DATE_TARGET = 30, 11  # padded widths: the longest source; "YYYY-MM-DD" + EOS


class Batch(NamedTuple):
    source: jax.Array  # [batch, source] int32 tokens, PAD after each length
    source_lengths: jax.Array  # [batch] int32
    target: jax.Array  # [batch, steps] int32 tokens, EOS at length - 1, then PAD
    target_lengths: jax.Array  # [batch] int32, EOS included


def encode(text: str) -> list[int]:
    """Characters -> token ids (a ValueError names a character outside the vocabulary)."""
    unknown = sorted(set(text) - set(SYMBOLS))
    if unknown:
        raise ValueError(f"expected characters of {SYMBOLS!r}, received {unknown}")
    return [_ID[c] for c in text]


def decode(tokens) -> str:
    """Token ids -> text, up to the first EOS or PAD (BOS skipped)."""
    out = []
    for token in np.asarray(tokens).tolist():
        if token in (EOS, PAD):
            break
        if token != BOS:
            out.append(VOCAB[token])
    return "".join(out)


def check(task: str, min_len: int, max_len: int) -> None:
    """A ValueError unless `task` is known and 1 <= min_len <= max_len (addition: max_len >= 3,
    room for "a+b")."""
    if task not in TASKS:
        raise ValueError(f"expected task in {TASKS}, received {task!r}")
    low = 3 if task == "addition" else 1
    if not (isinstance(min_len, int) and isinstance(max_len, int) and 1 <= min_len <= max_len
            and max_len >= low):
        raise ValueError(f"{task}: expected 1 <= min_len <= max_len and max_len >= {low}, "
                         f"received min_len={min_len!r}, max_len={max_len!r}")


def shapes(task: str, max_len: int) -> tuple[int, int]:
    """Padded `(source, target steps)` of a batch with sources up to `max_len`."""
    if task == "dates":
        return DATE_SOURCE, DATE_TARGET
    return max_len, max_len + (task != "addition")  # a sum has at most max_len - 1 digits


def sample(task: str, key: jax.Array, batch_size: int, min_len: int, max_len: int) -> Batch:
    """A batch of `task` pairs, sources of lengths in [min_len, max_len] (module docstring)."""
    check(task, min_len, max_len)
    key_len, key_data = jax.random.split(key)
    if task == "dates":
        return _dates(key_data, batch_size)
    lengths = jax.random.randint(key_len, (batch_size,), max(min_len, 3 * (task == "addition")),
                                 max_len + 1)
    if task == "addition":
        return _addition(key_data, lengths, max_len)
    symbols = jax.random.randint(key_data, (batch_size, max_len), ZERO, ZERO + 10)
    valid = jnp.arange(max_len)[None, :] < lengths[:, None]
    source = jnp.where(valid, symbols, PAD)
    if task == "reversal":
        target = reverse_padded(source, lengths)
    else:  # sorting: padding sorts last
        target = jnp.where(valid, jnp.sort(jnp.where(valid, source, VOCAB_SIZE), axis=1), PAD)
    return Batch(source, lengths, _with_eos(target, lengths, max_len + 1), lengths + 1)


def _with_eos(tokens: jax.Array, lengths: jax.Array, steps: int) -> jax.Array:
    """`[batch, <= steps]` tokens valid below `lengths` -> `[batch, steps]` with EOS at length."""
    tokens = jnp.pad(tokens, ((0, 0), (0, steps - tokens.shape[1])))
    t = jnp.arange(steps)[None, :]
    return jnp.where(t < lengths[:, None], tokens, jnp.where(t == lengths[:, None], EOS, PAD)
                     ).astype(jnp.int32)


def _number(key: jax.Array, digits: jax.Array, width: int) -> jax.Array:
    """`[batch, width]` decimal digits, most significant first, valid below `digits`; no
    leading zero unless the number has one digit."""
    key_digits, key_lead = jax.random.split(key)
    values = jax.random.randint(key_digits, (digits.shape[0], width), 0, 10)
    lead = jax.random.randint(key_lead, digits.shape, 1, 10)
    return values.at[:, 0].set(jnp.where(digits > 1, lead, values[:, 0]))


def _addition(key: jax.Array, lengths: jax.Array, max_len: int) -> Batch:
    key_split, key_a, key_b = jax.random.split(key, 3)
    # "a+b" of length n: a has da in [1, n - 2] digits, b the other n - 1 - da
    draw = jax.random.uniform(key_split, lengths.shape)
    da = 1 + jnp.floor(draw * (lengths - 2)).astype(jnp.int32)
    db = lengths - 1 - da
    a, b = _number(key_a, da, max_len), _number(key_b, db, max_len)
    i = jnp.arange(max_len)[None, :]
    b_at = jnp.take_along_axis(b, jnp.clip(i - da[:, None] - 1, 0, max_len - 1), axis=1)
    source = jnp.where(i < da[:, None], ZERO + a, jnp.where(
        i == da[:, None], PLUS, jnp.where(i < lengths[:, None], ZERO + b_at, PAD)))

    def column(carry, pair):  # schoolbook addition, least significant digit first
        total = pair[0] + pair[1] + carry
        return total // 10, total % 10

    a_low = reverse_padded(a * (i < da[:, None]), da).T  # [width, batch], zeros past each number
    b_low = reverse_padded(b * (i < db[:, None]), db).T
    carry, digits = jax.lax.scan(column, jnp.zeros_like(da), (a_low, b_low))
    digits = jnp.concatenate([digits, carry[None]], axis=0).T  # [batch, width + 1]
    nonzero = digits > 0
    size = jnp.max(jnp.where(nonzero, jnp.arange(max_len + 1)[None, :] + 1, 1), axis=1)
    target = reverse_padded(digits, size)[:, :max_len] + ZERO
    return Batch(source.astype(jnp.int32), lengths.astype(jnp.int32),
                 _with_eos(target, size, max_len), (size + 1).astype(jnp.int32))


@functools.lru_cache(maxsize=1)
def date_table() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (day, format) pair: `(sources [days * formats, DATE_SOURCE], their lengths,
    targets [days, DATE_TARGET])` as token ids (row `day * formats + format`)."""
    first = datetime.date(DATE_YEARS[0], 1, 1)
    days = (datetime.date(DATE_YEARS[1] + 1, 1, 1) - first).days
    sources = np.zeros((days * len(DATE_FORMATS), DATE_SOURCE), np.int32)
    lengths = np.zeros(days * len(DATE_FORMATS), np.int32)
    targets = np.zeros((days, DATE_TARGET), np.int32)
    for day in range(days):
        date = first + datetime.timedelta(days=day)
        targets[day] = encode(date.isoformat()) + [EOS]
        for f, write in enumerate(DATE_FORMATS):
            tokens = encode(write(date))
            sources[day * len(DATE_FORMATS) + f, :len(tokens)] = tokens
            lengths[day * len(DATE_FORMATS) + f] = len(tokens)
    return sources, lengths, targets


def _dates(key: jax.Array, batch_size: int) -> Batch:
    sources, lengths, targets = date_table()
    row = jax.random.randint(key, (batch_size,), 0, sources.shape[0])
    day = row // len(DATE_FORMATS)
    return Batch(jnp.asarray(sources)[row], jnp.asarray(lengths)[row], jnp.asarray(targets)[day],
                 jnp.full((batch_size,), DATE_TARGET, jnp.int32))
