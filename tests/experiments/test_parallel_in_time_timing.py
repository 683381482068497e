"""experiments.parallel_in_time.timing without timing anything: which methods apply to which cell,
what each method computes, and bad input (the measured rows: test_experiment_parallel_in_time)."""

import jax
import numpy as np
import pytest

from experiments.parallel_in_time import timing as parallel_timing
from rnn_jax import get_cell, unroll

CASE = parallel_timing.Case("lstm", hidden=3, time=5, batch=2, inputs=2)


@pytest.mark.parametrize("name, methods", [
    ("mingru", ["sequential", "associative", "associative_log"]),
    ("lru", ["sequential", "associative"]),  # complex coefficients: no log-space form
    ("gru", ["sequential", "deer", "quasi_deer"]),
])
def test_methods_for_each_kind_of_cell(name, methods):
    cell = get_cell(name)
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), 2, 3))
    assert parallel_timing.methods_for(cell, params, CASE._replace(cell=name)) == methods


def test_deer_is_left_out_above_full_max():
    cell = get_cell("lstm")
    params = jax.eval_shape(lambda: cell.init(jax.random.key(0), 2, 3))
    assert parallel_timing.state_size(cell, params) == 6  # (h, c)
    size = CASE.time * CASE.batch * 6**2  # T B D^2 = 360
    assert "deer" in parallel_timing.methods_for(cell, params, CASE, full_max=size)
    assert parallel_timing.methods_for(cell, params, CASE, full_max=size - 1) == [
        "sequential", "quasi_deer"]


def test_timeable_cells():
    assert parallel_timing.timeable(get_cell("lru"))  # complex carry, but linear
    assert parallel_timing.timeable(get_cell("vanilla"))
    assert not parallel_timing.timeable(get_cell("urnn"))  # complex carry: no DEER


@pytest.mark.parametrize("method", ["associative", "associative_log"])
def test_every_path_computes_the_sequential_outputs(method):
    cell = get_cell("mingru")
    params, xs = parallel_timing.operands(cell, CASE._replace(cell="mingru"))
    ys, info = parallel_timing.path(cell, method)(params, xs)
    assert info is None
    np.testing.assert_allclose(ys, unroll(cell, params, xs)[0], atol=1e-5)


def test_bad_method_and_missing_reference_raise():
    with pytest.raises(ValueError, match="expected a method in .*, received 'newton'"):
        parallel_timing.path(get_cell("gru"), "newton")
    with pytest.raises(ValueError, match="expected methods that include 'sequential'"):
        parallel_timing.measure(CASE, rounds=1, steps=1, methods=["deer"])
