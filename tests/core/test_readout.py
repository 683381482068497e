"""Readouts: linear, many-to-one at the last valid step, one-to-many generation."""

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import get_cell, readout, unroll


def test_last_valid_picks_each_sequences_last_real_step(key):
    ys = jax.random.normal(key, (3, 5, 2))
    lengths = jnp.array([5, 2, 0])
    last = readout.last_valid(ys, lengths)
    np.testing.assert_array_equal(last[0], ys[0, 4])
    np.testing.assert_array_equal(last[1], ys[1, 1])
    np.testing.assert_array_equal(last[2], jnp.zeros(2))
    np.testing.assert_array_equal(readout.last_valid(ys), ys[:, -1])


def test_many_to_one_equals_final_hidden_state(key):
    cell = get_cell("gru")
    params = cell.init(key, 3, 4)
    xs = jax.random.normal(key, (2, 6, 3))
    lengths = jnp.array([6, 3])
    ys, h = unroll(cell, params, xs, lengths=lengths)
    np.testing.assert_allclose(readout.last_valid(ys, lengths), h, rtol=1e-6)


def test_linear_readout_is_c_plus_V_s(key):
    params = readout.init_linear(key, 4, 3)
    params = params._replace(c=jnp.arange(3.0))
    hs = jax.random.normal(key, (2, 5, 4))
    np.testing.assert_allclose(
        readout.linear(params, hs), np.asarray(hs) @ np.asarray(params.V) + np.arange(3.0),
        rtol=1e-5,
    )


def test_generate_feeds_outputs_back_like_a_python_loop(key):
    cell = get_cell("vanilla")
    params = cell.init(key, 3, 3)
    out = readout.init_linear(jax.random.fold_in(key, 1), 3, 3)
    feedback = lambda h: (readout.linear(out, h), jax.nn.softmax(readout.linear(out, h)))
    carry = jax.random.normal(key, (2, 3))  # e.g. an encoded vector
    x0 = jnp.zeros((2, 3))
    ys, final = readout.generate(cell, params, carry, x0, 4, feedback)
    assert ys.shape == (2, 4, 3)
    x = x0
    for t in range(4):
        carry, h = cell.step(params, carry, cell.project_inputs(params, x))
        y, x = feedback(h)
        np.testing.assert_allclose(ys[:, t], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(final, carry, rtol=1e-5, atol=1e-6)
