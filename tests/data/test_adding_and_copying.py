"""Copying-memory and adding-problem generators: layouts, purity in the key, baselines."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import losses
from rnn_jax.data import adding, copying


@pytest.mark.parametrize("T", [1, 5, 100])
def test_copying_layout(T, key):
    xs, labels = copying.sample(key, 16, T)
    assert xs.shape == (16, T + 20, 10) and xs.dtype == jnp.float32
    assert labels.shape == (16, T + 20) and labels.dtype == jnp.int32
    np.testing.assert_array_equal(xs.sum(-1), 1.0)  # one-hot
    tokens = np.asarray(xs.argmax(-1))
    symbols = tokens[:, :10]
    assert symbols.min() >= 1 and symbols.max() <= 8
    np.testing.assert_array_equal(tokens[:, 10 : 10 + T - 1], copying.BLANK)
    np.testing.assert_array_equal(tokens[:, 10 + T - 1], copying.DELIMITER)
    np.testing.assert_array_equal(tokens[:, T + 10 :], copying.BLANK)
    np.testing.assert_array_equal(labels[:, : T + 10], copying.BLANK)
    np.testing.assert_array_equal(labels[:, T + 10 :], symbols)


def test_copying_symbols_cover_all_eight_categories(key):
    _, labels = copying.sample(key, 200, 3)
    assert set(np.unique(labels[:, -10:]).tolist()) == set(range(1, 9))


def test_copying_baseline_is_the_memoryless_cross_entropy(key):
    T = 100
    assert copying.baseline(T) == pytest.approx(10 * math.log(8) / 120)
    # Memoryless strategy: certain blank for T + 10 steps, then uniform over the 8 symbols.
    _, labels = copying.sample(key, 4, T)
    logits = np.full((4, T + 20, copying.NUM_CLASSES), -1e9, np.float32)
    logits[:, : T + 10, copying.BLANK] = 0.0
    logits[:, T + 10 :, 1:] = 0.0
    got = losses.softmax_cross_entropy(jnp.asarray(logits), labels)
    np.testing.assert_allclose(got, copying.baseline(T), rtol=1e-5)


def test_adding_layout(key):
    T = 50
    xs, ys = adding.sample(key, 64, T)
    assert xs.shape == (64, T, 2) and ys.shape == (64, 1) and xs.dtype == jnp.float32
    values, markers = np.asarray(xs[..., 0]), np.asarray(xs[..., 1])
    assert values.min() >= 0 and values.max() < 1
    assert set(np.unique(markers).tolist()) == {0.0, 1.0}
    np.testing.assert_array_equal(markers[:, : T // 2].sum(1), 1)  # one in each half
    np.testing.assert_array_equal(markers[:, T // 2 :].sum(1), 1)
    expected = [values[b][markers[b] == 1].sum() for b in range(64)]
    np.testing.assert_allclose(ys[:, 0], expected, rtol=1e-6)


def test_adding_baseline_is_predicting_one(key):
    assert adding.baseline(200) == pytest.approx(0.167, abs=5e-4)
    _, ys = adding.sample(key, 20000, 10)
    mse = float(jnp.mean((ys - 1.0) ** 2))
    assert mse == pytest.approx(adding.BASELINE_MSE, abs=0.01)  # ~10 standard errors


@pytest.mark.parametrize("sample", [copying.sample, adding.sample])
def test_same_key_same_batch_different_key_differs(sample):
    a, b, c = (sample(jax.random.key(k), 4, 10) for k in (1, 1, 2))
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert not np.array_equal(a[0], c[0])


@pytest.mark.parametrize(
    "sample,T,match",
    [(copying.sample, 0, "T >= 1"), (adding.sample, 1, "T >= 2"), (adding.sample, 2.5, "T >= 2")],
)
def test_bad_length_raises(sample, T, match, key):
    with pytest.raises(ValueError, match=match):
        sample(key, 4, T)


@pytest.mark.parametrize("sample", [copying.sample, adding.sample])
def test_bad_batch_raises(sample, key):
    with pytest.raises(ValueError, match="batch_size >= 1"):
        sample(key, 0, 10)
