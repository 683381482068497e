"""Summation and comparison data against per-step Python loops."""

import numpy as np
import pytest

from rnn_jax.data import summation


def test_running_sum_matches_a_loop(key):
    xs, ys = summation.sample_sum(key, 3, 20, scale=2.0)
    assert xs.shape == ys.shape == (3, 20, 1)
    assert float(np.max(np.abs(xs))) <= 2.0
    for x, y in zip(np.asarray(xs[..., 0], np.float64), np.asarray(ys[..., 0])):
        total, expected = 0.0, []
        for value in x:
            total += value
            expected.append(total)
        np.testing.assert_allclose(y, expected, rtol=1e-5, atol=1e-5)


def test_comparison_targets_match_a_loop(key):
    xs, ys = summation.sample_compare(key, 4, 30, max_value=3)
    assert xs.shape == (4, 30, 2) and ys.shape == (4, 30)
    values = np.asarray(xs)
    assert set(np.unique(values)) <= {0.0, 1.0, 2.0, 3.0}
    for x, y in zip(values, np.asarray(ys)):
        first = second = 0
        for t in range(30):
            first, second = first + x[t, 0], second + x[t, 1]
            assert y[t] == float(first > second)
    assert 0.2 < float(np.mean(ys)) < 0.8


def test_bad_arguments(key):
    with pytest.raises(ValueError, match="expected an integer batch_size >= 1, received 0"):
        summation.sample_sum(key, 0, 3)
    with pytest.raises(ValueError, match="expected max_value >= 1, received 0"):
        summation.sample_compare(key, 2, 3, max_value=0)
