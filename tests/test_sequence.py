"""The ground floor shared by every layer: masks, padding-aware reversal, per-example select,
resetting carried state."""

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import sequence

close = lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_reverse_padded_is_its_own_inverse_on_the_valid_prefix(key):
    xs = jax.random.normal(key, (2, 5, 3))
    lengths = jnp.array([5, 3])
    once = sequence.reverse_padded(xs, lengths)
    close(once[1, :3], xs[1, :3][::-1])
    assert not jnp.any(once[1, 3:])
    close(sequence.reverse_padded(once, lengths)[1, :3], xs[1, :3])


def test_sequence_mask_marks_the_steps_before_each_length():
    mask = sequence.sequence_mask(jnp.array([0, 2, 4]), 4)
    np.testing.assert_array_equal(mask, [[0, 0, 0, 0], [1, 1, 0, 0], [1, 1, 1, 1]])


def test_select_valid_picks_per_example_on_every_leaf():
    new = (jnp.ones((3, 2)), jnp.full((3, 2, 4), 2.0))
    old = (jnp.zeros((3, 2)), jnp.full((3, 2, 4), -1.0))
    out = sequence.select_valid(jnp.array([True, False, True]), new, old)
    np.testing.assert_array_equal(out[0][:, 0], [1.0, 0.0, 1.0])
    np.testing.assert_array_equal(out[1][:, 1, 3], [2.0, -1.0, 2.0])


def test_reset_state_zeros_selected_rows():
    stream = (jnp.ones((3, 2)), jnp.full((3, 2, 4), 2.0))
    out = sequence.reset_state(stream, jnp.array([True, False, True]))
    np.testing.assert_array_equal(out[0][:, 0], [0.0, 1.0, 0.0])
    np.testing.assert_array_equal(out[1][:, 0, 0], [0.0, 2.0, 0.0])
    assert not np.asarray(sequence.reset_state(stream, True)[1]).any()
    np.testing.assert_array_equal(sequence.reset_state(stream, False)[1], stream[1])
