"""The tagging generator against plain Python loops: labels, padding, and the causal bound by
exhaustive enumeration."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.data import tagging


def python_labels(symbols, length, window):
    """y(t) = 1 iff symbols[t] == symbols[t + d] for some 1 <= d <= window, t + d < length."""
    return [float(t < length and any(symbols[t] == symbols[t + d]
                                     for d in range(1, window + 1) if t + d < length))
            for t in range(len(symbols))]


@pytest.mark.parametrize("window", [1, 3, 7])
def test_labels_equal_a_python_loop(window, key):
    symbols = np.asarray(jax.random.randint(key, (40, 9), 0, 3))
    lengths = np.asarray(jax.random.randint(jax.random.fold_in(key, 1), (40,), 0, 10))
    got = np.asarray(tagging.labels(jnp.asarray(symbols), jnp.asarray(lengths), window))
    expected = [python_labels(list(s), n, window) for s, n in zip(symbols, lengths)]
    np.testing.assert_array_equal(got, expected)


def test_sample_pads_after_each_length_and_tags_the_symbols(key):
    xs, ys, lengths = tagging.sample(key, 64, 12, num_symbols=5, window=3, min_len=4)
    assert xs.shape == (64, 12, 5) and ys.shape == (64, 12) and lengths.shape == (64,)
    assert xs.dtype == ys.dtype == jnp.float32 and lengths.dtype == jnp.int32
    xs, ys, lengths = map(np.asarray, (xs, ys, lengths))
    assert lengths.min() >= 4 and lengths.max() <= 12 and len(set(lengths.tolist())) > 3
    valid = np.arange(12)[None, :] < lengths[:, None]
    np.testing.assert_array_equal(xs.sum(-1), valid.astype(np.float32))  # one-hot, zero pads
    for b in range(64):
        np.testing.assert_array_equal(ys[b], python_labels(list(xs[b].argmax(-1)), lengths[b], 3))
    again = tagging.sample(key, 64, 12, num_symbols=5, window=3, min_len=4)
    np.testing.assert_array_equal(again[0], xs)  # a pure function of the key


def test_causal_bound_equals_the_best_prefix_predictor_by_enumeration():
    """Every sequence and length of a tiny task: the best guess given the whole prefix
    s(1..t) (majority over the sequences sharing it) scores exactly the bound."""
    num_symbols, seq_len, window, min_len = 3, 4, 2, 2
    # each length equally likely, each sequence of that length equally likely
    weight = {n: 1.0 / num_symbols ** n for n in range(min_len, seq_len + 1)}
    counts = {}  # (prefix, t) -> [probability of label 0, of label 1]
    for length in range(min_len, seq_len + 1):
        for symbols in itertools.product(range(num_symbols), repeat=length):
            for t, y in enumerate(python_labels(list(symbols), length, window)[:length]):
                counts.setdefault((symbols[:t + 1], t), [0.0, 0.0])[int(y)] += weight[length]
    correct = total = 0.0
    for length in range(min_len, seq_len + 1):
        for symbols in itertools.product(range(num_symbols), repeat=length):
            for t, y in enumerate(python_labels(list(symbols), length, window)[:length]):
                zeros, ones = counts[(symbols[:t + 1], t)]
                correct += weight[length] * (int(y) == int(ones > zeros))
                total += weight[length]
    assert tagging.causal_bound(seq_len, num_symbols, window, min_len) == pytest.approx(
        correct / total, abs=1e-12)


@pytest.mark.parametrize("kwargs, match", [
    (dict(window=0), "expected an integer window >= 1, received 0"),
    (dict(num_symbols=0), "expected an integer num_symbols >= 1, received 0"),
    (dict(min_len=9), "expected min_len <= seq_len = 8, received 9"),
    (dict(batch_size=0), "expected an integer batch_size >= 1, received 0"),
    (dict(seq_len=2.5), "expected an integer seq_len >= 1, received 2.5"),
])
def test_bad_options_raise(kwargs, match, key):
    args = dict(batch_size=4, seq_len=8) | kwargs
    with pytest.raises(ValueError, match=match):
        tagging.sample(key, args.pop("batch_size"), args.pop("seq_len"), **args)
