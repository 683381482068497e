"""Hand-built networks: exact parity at length 10,000, exact running sums and comparisons."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import handbuilt, readout
from rnn_jax.data import parity, summation
from rnn_jax.unroll import unroll


def test_parity_truth_table_from_the_notes():
    cell = handbuilt.parity_cell()
    params = cell.init(None)
    for y_prev in (0.0, 1.0):
        for x in (0.0, 1.0):
            carry, y = cell.step(params, jnp.array([y_prev]), cell.project_inputs(params,
                                                                                   jnp.array([x])))
            assert float(y[0]) == float(int(y_prev) ^ int(x)) and carry == y


def test_parity_network_is_exact_at_length_10000(key):
    cell = handbuilt.parity_cell()
    params = cell.init(key)
    xs, ys = parity.sample(key, 4, 10_000)
    out, final = jax.jit(lambda p, x: unroll(cell, p, x))(params, xs)
    expected = np.cumsum(np.asarray(xs[..., 0], np.int64), axis=1) % 2  # independent count
    np.testing.assert_array_equal(np.asarray(out[..., 0]), expected)
    np.testing.assert_array_equal(np.asarray(final[:, 0]), expected[:, -1])
    np.testing.assert_array_equal(np.asarray(ys), expected)


def test_parity_cell_rejects_other_sizes(key):
    with pytest.raises(ValueError, match="1 input and 2 hidden units, received input_size=1, "
                                         "hidden_size=3"):
        handbuilt.parity_cell().init(key, 1, 3)


def test_summation_network_is_exact(key):
    """Bit for bit equal to a sequential float32 running sum (the same additions in order)."""
    cell_params, out_params = handbuilt.summation_params()
    xs, _ = summation.sample_sum(key, 3, 500)
    hs, _ = unroll(handbuilt.linear_cell(), cell_params, xs)
    ys = readout.linear(out_params, hs)
    values = np.asarray(xs[..., 0])
    expected = np.zeros_like(values)
    total = np.zeros(3, np.float32)
    for t in range(values.shape[1]):
        total = (total + values[:, t]).astype(np.float32)
        expected[:, t] = total
    np.testing.assert_array_equal(np.asarray(ys[..., 0]), expected)


def test_comparison_network_is_exact(key):
    cell_params, out_params = handbuilt.comparison_params()
    xs, ys = summation.sample_compare(key, 8, 2000)
    hs, _ = jax.jit(lambda p, x: unroll(handbuilt.linear_cell(), p, x))(cell_params, xs)
    logits = readout.linear(out_params, hs)[..., 0]
    sums = np.cumsum(np.asarray(xs, np.int64), axis=1)
    np.testing.assert_array_equal(np.asarray(logits), sums[..., 0] - sums[..., 1])
    np.testing.assert_array_equal(np.asarray(logits > 0, np.float32), np.asarray(ys))
