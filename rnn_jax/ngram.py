"""n-gram token models: the notes' conditional probability table, with smoothing.

An order-n model predicts w(t) from the n-1 tokens before it, p(w | h), h = w(t-n+1..t-1).
Counts are kept for every order m = 1..n (m-grams w(t-m+1..t)) as sorted integer codes
(base-vocab digits), so fitting and scoring are vectorised NumPy on the host.

Smoothing:
  * "add_k":  p(w | h) = (c(h w) + k) / (c(h) + k V).
  * "kneser_ney" (interpolated, Chen & Goodman 1998, one discount D_m = n1 / (n1 + 2 n2) per
    order, n1/n2 the number of m-grams counted once/twice):
        p_m(w | h) = max(c_m(h w) - D_m, 0) / c_m(h .) + D_m N1+(h .) / c_m(h .) p_{m-1}(w | h')
    with h' = h without its first token, p_0(w) = 1/V, c_n the raw counts at the top order and
    c_m, m < n, the continuation counts N1+(. h w) (distinct tokens seen before h w). An unseen
    context (c_m(h .) = 0) falls back to p_{m-1} entirely.
Both give conditional distributions that sum to 1 over the vocabulary for every context.
At the start of a text, where fewer than n-1 tokens precede w(t), the longest available
context is used.
"""

from typing import NamedTuple

import numpy as np

SMOOTHINGS = ("add_k", "kneser_ney")


class CountTable(NamedTuple):
    """Counts of the m-grams of one order m (host arrays)."""

    gram_keys: np.ndarray  # [grams] sorted int64 codes of w(t-m+1..t)
    gram_counts: np.ndarray  # [grams] float64 counts (raw or continuation)
    context_keys: np.ndarray  # [contexts] sorted codes of h = w(t-m+1..t-1)
    context_totals: np.ndarray  # [contexts] c(h .): sum of gram_counts over w
    context_types: np.ndarray  # [contexts] N1+(h .): number of w with a count > 0
    discount: float  # D_m (Kneser-Ney only)


class NGramModel(NamedTuple):
    tables: tuple[CountTable, ...]  # orders 1..n
    vocab_size: int
    smoothing: str
    k: float

    @property
    def order(self) -> int:
        return len(self.tables)


def _codes(windows: np.ndarray, vocab_size: int) -> np.ndarray:
    """Base-V codes of the rows of `windows [Q, m]` (int64)."""
    codes = np.zeros(windows.shape[0], np.int64)
    for column in range(windows.shape[1]):  # m <= n, not a loop over time
        codes = codes * vocab_size + windows[:, column]
    return codes


def _table(gram_keys: np.ndarray, gram_counts: np.ndarray, vocab_size: int) -> CountTable:
    contexts = gram_keys // vocab_size
    context_keys, inverse = np.unique(contexts, return_inverse=True)
    n1, n2 = np.sum(gram_counts == 1), np.sum(gram_counts == 2)
    return CountTable(
        gram_keys=gram_keys,
        gram_counts=gram_counts.astype(np.float64),
        context_keys=context_keys,
        context_totals=np.bincount(inverse, weights=gram_counts).astype(np.float64),
        context_types=np.bincount(inverse).astype(np.float64),
        discount=float(n1 / (n1 + 2 * n2)) if n1 > 0 else 0.5,
    )


def fit(
    ids: np.ndarray, order: int, vocab_size: int, *, smoothing: str = "kneser_ney", k: float = 1.0
) -> NGramModel:
    """Counts the m-grams, m = 1..order, of the training ids `[N]`."""
    ids = np.asarray(ids, np.int64)
    if smoothing not in SMOOTHINGS:
        raise ValueError(f"unknown smoothing {smoothing!r}; expected one of {SMOOTHINGS}")
    if order < 1 or vocab_size ** order >= 2**62:
        raise ValueError(
            f"expected order >= 1 with vocab_size**order < 2**62, received order {order} and "
            f"vocab_size {vocab_size}"
        )
    if ids.ndim != 1 or len(ids) < order:
        raise ValueError(f"expected a 1-D stream of >= {order} ids, received shape {ids.shape}")
    if ids.min() < 0 or ids.max() >= vocab_size:
        raise ValueError(f"expected ids in [0, {vocab_size}), received {ids.min()}..{ids.max()}")
    if smoothing == "add_k" and not k > 0:
        raise ValueError(f"expected k > 0 for add-k smoothing, received {k}")
    raw = []
    for m in range(1, order + 1):
        windows = np.lib.stride_tricks.sliding_window_view(ids, m)
        raw.append(np.unique(_codes(windows, vocab_size), return_counts=True))
    tables = []
    for m in range(1, order + 1):
        keys, counts = raw[m - 1]
        if smoothing == "kneser_ney" and m < order:
            # continuation count N1+(. g): distinct (m+1)-grams whose last m tokens are g
            keys, counts = np.unique(raw[m][0] % vocab_size**m, return_counts=True)
        tables.append(_table(keys, counts, vocab_size))
    return NGramModel(tuple(tables), vocab_size, smoothing, float(k))


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    index = np.clip(np.searchsorted(keys, queries), 0, max(len(keys) - 1, 0))
    found = keys[index] == queries if len(keys) else np.zeros(queries.shape, bool)
    return np.where(found, values[index] if len(keys) else 0.0, 0.0)


def _context_stats(table: CountTable, windows: np.ndarray, V: int):
    """Count of each row's m-gram (its last m columns), and its context's total and types."""
    grams = _codes(windows, V)
    return (
        _lookup(table.gram_keys, table.gram_counts, grams),
        _lookup(table.context_keys, table.context_totals, grams // V),
        _lookup(table.context_keys, table.context_types, grams // V),
    )


def _conditional(model: NGramModel, windows: np.ndarray, available: np.ndarray) -> np.ndarray:
    """p(w | h) for rows `windows [Q, n]` (last column w), `available [Q]` real context tokens."""
    n, V = model.order, model.vocab_size
    if model.smoothing == "add_k":  # the longest available context, m = available + 1
        p = np.zeros(windows.shape[0])
        m_row = np.minimum(available, n - 1) + 1
        for m in np.unique(m_row):
            rows = m_row == m
            count, total, _ = _context_stats(model.tables[m - 1], windows[rows, n - m :], V)
            p[rows] = (count + model.k) / (total + model.k * V)
        return p
    p = np.full(windows.shape[0], 1.0 / V)  # p_0
    for m in range(1, n + 1):
        table = model.tables[m - 1]
        count, total, types = _context_stats(table, windows[:, n - m :], V)
        D = table.discount
        smoothed = (np.maximum(count - D, 0.0) + D * types * p) / np.maximum(total, 1e-300)
        p = np.where((available >= m - 1) & (total > 0), smoothed, p)
    return p


def probabilities(model: NGramModel, ids: np.ndarray) -> np.ndarray:
    """`[N]`: p(ids[t] | the up to n-1 ids before it) for every t."""
    ids = np.asarray(ids, np.int64)
    n = model.order
    padded = np.concatenate([np.zeros(n - 1, np.int64), ids])
    windows = np.lib.stride_tricks.sliding_window_view(padded, n)
    available = np.minimum(np.arange(len(ids)), n - 1)
    return _conditional(model, windows, available)


def distribution(model: NGramModel, context: np.ndarray) -> np.ndarray:
    """`[V]`: p(w | context) for every token w (the last n-1 tokens of `context` are used)."""
    n, V = model.order, model.vocab_size
    context = np.asarray(context, np.int64)[max(len(context) - (n - 1), 0) :]
    row = np.concatenate([np.zeros(n - 1 - len(context), np.int64), context])
    windows = np.concatenate([np.tile(row, (V, 1)), np.arange(V)[:, None]], axis=1)
    return _conditional(model, windows, np.full(V, len(context)))


def nats_per_token(model: NGramModel, ids: np.ndarray) -> float:
    """Mean negative log-likelihood of `ids` (e.g. the validation split) in nats."""
    return float(-np.mean(np.log(probabilities(model, ids))))
