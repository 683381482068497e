"""Losses against hand-computed values; masks exclude padded steps."""

import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import losses


def test_softmax_cross_entropy_hand_computed():
    logits = jnp.array([[[0.0, 0.0], [2.0, 0.0]]])  # [batch=1, time=2, vocab=2]
    labels = jnp.array([[1, 0]])
    # -log(1/2) and -log(e^2 / (e^2 + 1)), averaged over the two tokens
    expected = (np.log(2.0) + np.log1p(np.exp(-2.0))) / 2
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, labels), expected, rtol=1e-6)


def test_softmax_cross_entropy_is_stable_for_huge_logits():
    logits = jnp.array([[1000.0, -1000.0]])
    assert losses.softmax_cross_entropy(logits, jnp.array([0])) == 0.0
    np.testing.assert_allclose(losses.softmax_cross_entropy(logits, jnp.array([1])), 2000.0)


def test_mask_excludes_padded_steps():
    logits = jnp.array([[[0.0, 0.0], [5.0, -3.0], [1.0, 2.0]]])
    labels = jnp.array([[1, 1, 0]])
    mask = jnp.array([[1, 0, 0]])
    changed = logits.at[0, 1:].set(123.0)
    value = losses.softmax_cross_entropy(logits, labels, mask)
    np.testing.assert_allclose(value, np.log(2.0), rtol=1e-6)
    assert losses.softmax_cross_entropy(changed, labels, mask) == value
    predictions = jnp.array([[[1.0], [9.0]]])
    targets = jnp.array([[[3.0], [0.0]]])
    np.testing.assert_allclose(
        losses.squared_error(predictions, targets, jnp.array([[1, 0]])), 2.0
    )


def test_squared_error_is_half_sum_over_features_mean_over_positions():
    predictions = jnp.array([[1.0, 2.0], [0.0, 0.0]])
    targets = jnp.array([[0.0, 0.0], [0.0, 3.0]])
    # position 0: 1/2 (1 + 4) = 2.5; position 1: 1/2 * 9 = 4.5; mean 3.5
    np.testing.assert_allclose(losses.squared_error(predictions, targets), 3.5)


def test_binary_cross_entropy_matches_closed_form_and_is_stable():
    z = jnp.array([-2.0, 0.5, 3.0])
    y = jnp.array([0.0, 1.0, 1.0])
    p = 1 / (1 + np.exp(-np.asarray(z)))
    expected = -np.mean(np.asarray(y) * np.log(p) + (1 - np.asarray(y)) * np.log(1 - p))
    np.testing.assert_allclose(losses.binary_cross_entropy(z, y), expected, rtol=1e-6)
    np.testing.assert_allclose(
        losses.binary_cross_entropy(jnp.array([-500.0]), jnp.array([1.0])), 500.0
    )


def test_bad_input_errors():
    with pytest.raises(ValueError, match="expected integer labels, received dtype float32"):
        losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2,)))
    with pytest.raises(ValueError, match=r"expected labels of shape \(2,\).*received \(3,\)"):
        losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match=r"expected mask of shape \(2,\), received \(3,\)"):
        losses.softmax_cross_entropy(jnp.zeros((2, 3)), jnp.zeros((2,), jnp.int32), jnp.ones(3))
    with pytest.raises(ValueError, match=r"expected targets of shape \(2, 1\)"):
        losses.squared_error(jnp.zeros((2, 1)), jnp.zeros((2,)))
