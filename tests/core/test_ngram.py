"""n-gram models: normalisation for every context, and agreement with plain-Python references."""

import collections
import itertools
import math

import numpy as np
import pytest

from rnn_jax import ngram

CORPUS = "abracadabra alakazam cabbage a bad cab"


def _ids(text):
    vocab = sorted(set(CORPUS))
    return np.array([vocab.index(c) for c in text]), len(vocab)


@pytest.mark.parametrize("smoothing", ngram.SMOOTHINGS)
@pytest.mark.parametrize("order", [1, 2, 3])
def test_conditional_probabilities_sum_to_one_for_every_context(smoothing, order):
    ids, V = _ids(CORPUS)
    model = ngram.fit(ids, order, V, smoothing=smoothing, k=0.5)
    for length in range(order):  # every context of every usable length, seen or not
        for context in itertools.product(range(V), repeat=length):
            p = ngram.distribution(model, np.array(context, np.int64))
            assert p.shape == (V,) and np.all(p > 0)
            np.testing.assert_allclose(p.sum(), 1.0, rtol=1e-12)


def _counts(ids, m):
    return collections.Counter(tuple(ids[t : t + m]) for t in range(len(ids) - m + 1))


def test_add_k_matches_the_counting_formula():
    ids, V = _ids(CORPUS)
    k = 0.5
    model = ngram.fit(ids, 3, V, smoothing="add_k", k=k)
    trigrams, bigrams = _counts(ids, 3), _counts(ids, 2)
    unigrams, total = _counts(ids, 1), len(ids)
    p = ngram.probabilities(model, ids)
    for t, w in enumerate(ids):
        if t == 0:  # no context yet: unigram
            want = (unigrams[(w,)] + k) / (total + k * V)
        elif t == 1:  # one token of context: bigram
            h = tuple(ids[:1])
            context = sum(c for g, c in bigrams.items() if g[:1] == h)
            want = (bigrams[h + (w,)] + k) / (context + k * V)
        else:
            h = tuple(ids[t - 2 : t])
            context = sum(c for g, c in trigrams.items() if g[:2] == h)
            want = (trigrams[h + (w,)] + k) / (context + k * V)
        assert p[t] == pytest.approx(want, rel=1e-12)


def _kneser_ney_reference(ids, order, V, context, w):
    """Interpolated Kneser-Ney written directly from the equations, with dicts."""
    raw = {m: _counts(ids, m) for m in range(1, order + 1)}

    def counts(m):
        if m == order:
            return raw[m]
        continuation = collections.Counter(g[1:] for g in raw[m + 1])  # N1+(. g)
        return continuation

    def discount(c):
        n1 = sum(1 for v in c.values() if v == 1)
        n2 = sum(1 for v in c.values() if v == 2)
        return n1 / (n1 + 2 * n2) if n1 else 0.5

    def p(m, h, w):
        if m == 0:
            return 1.0 / V
        c = counts(m)
        h = h[len(h) - (m - 1) :] if m > 1 else ()
        total = sum(v for g, v in c.items() if g[:-1] == h)
        lower = p(m - 1, h[1:] if h else (), w)
        if total == 0:
            return lower
        types = sum(1 for g, v in c.items() if g[:-1] == h and v > 0)
        D = discount(c)
        return (max(c.get(h + (w,), 0) - D, 0) + D * types * lower) / total

    return p(min(order, len(context) + 1), tuple(context), w)


@pytest.mark.parametrize("order", [2, 3, 4])
def test_kneser_ney_matches_a_direct_implementation(order):
    ids, V = _ids(CORPUS)
    held_out, _ = _ids("cadabra bag zeal")
    model = ngram.fit(ids, order, V, smoothing="kneser_ney")
    p = ngram.probabilities(model, held_out)
    for t, w in enumerate(held_out):
        context = held_out[max(0, t - order + 1) : t]
        assert p[t] == pytest.approx(_kneser_ney_reference(ids, order, V, context, w), rel=1e-12)
    want = -np.mean(np.log(p))
    assert ngram.nats_per_token(model, held_out) == pytest.approx(want, rel=1e-12)


def test_higher_orders_fit_the_training_text_better():
    ids, V = _ids(CORPUS * 3)
    nats = [ngram.nats_per_token(ngram.fit(ids, n, V), ids) for n in range(1, 5)]
    assert all(a > b for a, b in zip(nats, nats[1:]))
    assert nats[0] < math.log(V)  # the unigram already beats the uniform model


def test_bad_input_raises():
    ids, V = _ids(CORPUS)
    with pytest.raises(ValueError, match="unknown smoothing"):
        ngram.fit(ids, 2, V, smoothing="witten_bell")
    with pytest.raises(ValueError, match="order >= 1"):
        ngram.fit(ids, 0, V)
    with pytest.raises(ValueError, match=r"ids in \[0, 3\)"):
        ngram.fit(ids, 2, 3)
    with pytest.raises(ValueError, match="k > 0"):
        ngram.fit(ids, 2, V, smoothing="add_k", k=0.0)
