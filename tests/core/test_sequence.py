"""The ground floor shared by every layer: masks, padding-aware reversal, per-example select,
resetting carried state, and the front end of every unroll (prologue, time_major, epilogue)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import rnn_jax
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


@pytest.mark.parametrize("reverse", [False, True])
def test_prologue_lays_out_each_valid_prefix_time_major_and_epilogue_undoes_it(key, reverse):
    """Element by element from the rule: frame.inputs[t, b] = xs[b, t] (or xs[b, n_b - 1 - t]
    reversed) on valid steps, zero on padded ones whatever they held (NaN here)."""
    cell = rnn_jax.get_cell("gru")
    params = cell.init(key, 3, 4)
    lengths = np.array([5, 2, 0])
    xs = np.array(jax.random.normal(key, (3, 5, 3)))
    xs[1, 2:] = np.nan
    frame = sequence.prologue(cell, params, jnp.asarray(xs), lengths=lengths, reverse=reverse)
    assert frame.inputs.shape == (5, 3, 3)
    for b, n in enumerate(lengths):
        for t in range(5):
            expected = (xs[b, n - 1 - t] if reverse else xs[b, t]) if t < n else np.zeros(3)
            np.testing.assert_array_equal(frame.inputs[t, b], expected)
    np.testing.assert_array_equal(frame.mask, np.arange(5)[:, None] < lengths[None, :])
    np.testing.assert_array_equal(frame.carry, np.zeros((3, 4)))
    ys, carry = sequence.epilogue(frame, frame.inputs, frame.carry)
    np.testing.assert_array_equal(ys, np.where(frame.mask.T[..., None], np.nan_to_num(xs), 0.0))
    one = sequence.prologue(cell, params, jnp.asarray(xs[0]), carry=jnp.ones(4), lengths=4,
                            reverse=reverse)
    assert one.unbatched and one.inputs.shape == (5, 1, 3) and one.carry.shape == (1, 4)
    ys, carry = sequence.epilogue(one, one.inputs, one.carry)
    assert ys.shape == (5, 3) and carry.shape == (4,)
    np.testing.assert_array_equal(ys[:4], xs[0, :4])
    np.testing.assert_array_equal(ys[4], np.zeros(3))
