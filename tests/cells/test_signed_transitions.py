"""minGRU/minLSTM with the transition range (-1, 1) (Grazzi et al. 2025) against their equations,
a plain loop, and the notes' parity done by hand.

Reference: a(t) = 1 - 2 z(t) (minGRU), 2 f'(t) - 1 (minLSTM), b(t) as in the unit cell, written
here with numpy from the gate pre-activations; the hand-set minGRU must output the running
parity of 1,000 bits exactly, which no transition in (0, 1) can (it never changes sign).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, unroll
from rnn_jax.cells import mingru, minlstm
from rnn_jax.data import parity
from rnn_jax.parallel.linear_cells import parallel_unroll


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def g(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def reference_coefficients(name, k):
    """(a, b) of the signed cell from the pre-activations k `[..., gates*hidden]`, in numpy."""
    if name == "mingru":
        k_z, k_h = np.split(k, 2, axis=-1)
        z = sigmoid(k_z)
        return 2.0 * (1.0 - z) - 1.0, z * g(k_h)
    k_f, k_i, k_h = np.split(k, 3, axis=-1)
    f, i = sigmoid(k_f), sigmoid(k_i)
    return 2.0 * f / (f + i) - 1.0, i / (f + i) * g(k_h)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_signed_step_follows_the_equations_and_the_parallel_scan_the_loop(name, x64):
    cell = get_cell(name, transition_range="signed")
    params = cell.init(jax.random.key(0), 3, 5, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(1), (2, 7, 3), jnp.float64) * 3
    k = np.asarray(cell.project_inputs(params, xs))
    a, b = reference_coefficients(name, k)
    assert a.min() < 0 < a.max() and np.all(np.abs(a) < 1)  # both signs occur, |a| < 1
    h, loop = np.zeros((2, 5)), []
    for t in range(7):
        h = a[:, t] * h + b[:, t]
        loop.append(h)
    ys, _ = unroll(cell, params, xs)
    np.testing.assert_allclose(np.asarray(ys), np.stack(loop, 1), rtol=1e-12, atol=1e-12)
    ys_parallel, _ = parallel_unroll(cell, params, xs)
    np.testing.assert_allclose(np.asarray(ys_parallel), np.stack(loop, 1), rtol=1e-10,
                               atol=1e-12)


def hand_set_params(k=40.0):
    """One unit: z = sigma(2k x - k) (a 1 flips, a 0 keeps), h~ = g(1/2) = 1."""
    return mingru.MinGRUParams(U=jnp.array([[2 * k, 0.0]]), b=jnp.array([-k, 0.5]))


def test_hand_set_signed_mingru_outputs_parity_exactly_at_1000_steps():
    xs, _ = parity.sample(jax.random.key(3), 16, 1000)
    expected = np.asarray(parity.running_parity(xs[..., 0]))
    signed = get_cell("mingru", transition_range="signed")
    hs, _ = unroll(signed, hand_set_params(), xs)
    np.testing.assert_array_equal(np.asarray(hs[..., 0] > 0.5), expected == 1)
    hs_parallel, _ = parallel_unroll(signed, hand_set_params(), xs)
    np.testing.assert_array_equal(np.asarray(hs_parallel[..., 0] > 0.5), expected == 1)
    unit, _ = unroll(get_cell("mingru"), hand_set_params(), xs)  # a in (0, 1): no sign flip
    assert np.mean(np.asarray(unit[..., 0] > 0.5) == (expected == 1)) < 0.75


def test_signed_cells_have_no_log_space_scan():
    cell = get_cell("minlstm", transition_range="signed")
    params = cell.init(jax.random.key(0), 2, 3)
    with pytest.raises(ValueError, match="log"):
        parallel_unroll(cell, params, jnp.ones((1, 4, 2)), log_space=True)


@pytest.mark.parametrize("name", ["mingru", "minlstm"])
def test_unknown_transition_range_is_named(name):
    with pytest.raises(ValueError, match=r"expected transition_range in \['unit', 'signed'\].*"
                                         r"received 'negative'"):
        get_cell(name, transition_range="negative")


def test_unit_range_is_the_default_and_unchanged():
    assert get_cell("mingru").step is mingru.step
    assert get_cell("minlstm", transition_range="unit").step is minlstm.step


def test_experiment_flags_check_every_cell_of_the_grid():
    from experiments.harness import driver, template
    from experiments.parity import experiment as parity

    config = driver.parse(parity.EXPERIMENT, ["--quick", "--grid=cell=mingru,minlstm",
                                        "--transition_range=signed"])
    assert [c.cell for c, _ in template.expand(config)] == ["mingru", "minlstm"]
    for argv, flag in [(["--grid=cell=gru,mingru", "--transition_range=signed"],
                        "transition_range"),
                       (["--cell=lstm", "--transition_range=signed"], "transition_range"),
                       (["--cell=gru", "--lru_max_phase=1.0"], "lru_r_min"),
                       (["--cell=lru", "--lru_r_min=0.9", "--lru_r_max=0.5"], "lru_r_min"),
                       (["--cell=lru", "--lru_max_phase=7"], "lru_max_phase"),
                       (["--cell=mingru", "--transition_range=negative"], "transition_range")]:
        with pytest.raises(template.FlagError, match=f"^--{flag}: expected"):
            driver.parse(parity.EXPERIMENT, ["--quick", *argv])
