"""Parity data: running parity against a per-step XOR loop."""

import jax
import numpy as np
import pytest

from rnn_jax.data import parity


def xor_loop(bits):
    """The notes' recurrence p(t) = p(t-1) XOR x(t), p(0) = 0, one step at a time."""
    out, p = [], 0
    for x in bits:
        p ^= int(x)
        out.append(p)
    return out


def test_many_to_many_targets_are_the_running_xor(key):
    xs, ys = parity.sample(key, 5, 37)
    assert xs.shape == (5, 37, 1) and ys.shape == (5, 37)
    assert xs.dtype == ys.dtype == np.float32
    for bits, targets in zip(np.asarray(xs[..., 0]), np.asarray(ys)):
        assert set(np.unique(bits)) <= {0.0, 1.0}
        assert targets.tolist() == xor_loop(bits)


def test_many_to_one_is_the_last_parity_and_same_key_same_batch(key):
    xs, ys = parity.sample(key, 64, 11, target="many_to_one")
    assert ys.shape == (64,)
    np.testing.assert_array_equal(ys, np.sum(np.asarray(xs[..., 0]), axis=1) % 2)
    np.testing.assert_array_equal(xs, parity.sample(key, 64, 11, target="many_to_one")[0])
    other = parity.sample(jax.random.key(1), 64, 11)[0]
    assert not np.array_equal(xs, other)
    assert 0.3 < float(np.mean(ys)) < 0.7  # both classes occur


def test_bad_arguments(key):
    with pytest.raises(ValueError, match="unknown parity target 'last'; expected one of"):
        parity.sample(key, 2, 3, target="last")
    with pytest.raises(ValueError, match="expected an integer seq_len >= 1, received 0"):
        parity.sample(key, 2, 0)
