"""Every core cell against its equations: shapes, dtypes, a NumPy reference loop, jit, gradients."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnn_jax import get_cell, unroll
from rnn_jax.cells import CELLS, lstm, output_feedback
from tests.cells.reference_cells import REFERENCES

CASES = sorted(REFERENCES, key=str)
IDS = [f"{name}-{act}" if act else name for name, act in CASES]


def make(name, activation):
    return get_cell(name, activation=activation) if activation else get_cell(name)


def random_params(cell, key, input_size=3, hidden_size=4, dtype=jnp.float32):
    """Params with every leaf randomised (so zero biases don't hide bugs)."""
    params = cell.init(key, input_size, hidden_size, dtype=dtype)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    return tree.unflatten(
        [0.5 * jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves)]
    )


@pytest.mark.parametrize("name,activation", CASES, ids=IDS)
def test_unroll_matches_numpy_reference_loop(name, activation, key, x64):
    cell = make(name, activation)
    params = random_params(cell, key, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (2, 6, 3), jnp.float64)
    ys, _ = unroll(cell, params, xs)
    for b in range(2):
        expected = REFERENCES[(name, activation)](params, xs[b])
        np.testing.assert_allclose(ys[b], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name,activation", CASES, ids=IDS)
def test_unroll_matches_python_loop_over_step(name, activation, key):
    cell = make(name, activation)
    params = random_params(cell, key)
    xs = jax.random.normal(jax.random.fold_in(key, 2), (2, 5, 3))
    ys, final = unroll(cell, params, xs)
    carry = cell.initial_carry(params, (2,))
    for t in range(5):
        carry, h = cell.step(params, carry, cell.project_inputs(params, xs[:, t]))
        np.testing.assert_allclose(ys[:, t], h, rtol=1e-5, atol=1e-6)
    chex.assert_trees_all_close(final, carry, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,activation", CASES, ids=IDS)
@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_shapes_and_dtypes_batched_and_unbatched(name, activation, dtype, key, x64):
    cell = make(name, activation)
    params = cell.init(key, 3, 4, dtype=dtype)
    assert all(leaf.dtype == dtype for leaf in jax.tree.leaves(params))
    xs = jnp.ones((2, 7, 3), dtype)
    ys, carry = unroll(cell, params, xs)
    width = ys.shape[-1]
    assert ys.shape == (2, 7, width) and ys.dtype == dtype
    assert all(leaf.shape[0] == 2 for leaf in jax.tree.leaves(carry))
    y1, carry1 = unroll(cell, params, xs[0])
    assert y1.shape == (7, width)
    # a batch of 2 and a single sequence run different matmul kernels: float32 rounding apart
    tol = 1e-5 if dtype == jnp.float32 else 1e-12
    np.testing.assert_allclose(y1, ys[0], rtol=tol, atol=tol)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b[0], rtol=tol, atol=tol), carry1,
                 carry)


@pytest.mark.parametrize("name,activation", CASES, ids=IDS)
def test_jit_equals_no_jit(name, activation, key):
    cell = make(name, activation)
    params = random_params(cell, key)
    xs = jax.random.normal(key, (2, 6, 3))
    lengths = jnp.array([6, 2])
    run = lambda p, x, n: unroll(cell, p, x, lengths=n)[0]
    np.testing.assert_allclose(jax.jit(run)(params, xs, lengths), run(params, xs, lengths),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,activation", CASES, ids=IDS)
def test_gradients_match_finite_differences(name, activation, key, x64):
    cell = make(name, activation)
    params = random_params(cell, key, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.fold_in(key, 3), (2, 4, 3), jnp.float64)
    lengths = jnp.array([4, 3])

    def loss(params, xs):
        ys, _ = unroll(cell, params, xs, lengths=lengths)
        return jnp.sum(jnp.sin(ys))

    check_grads(loss, (params, xs), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_identity_rnn_computes_running_sum(key):
    cell = get_cell("vanilla", activation="identity")
    params = cell.init(key, 1, 1)._replace(U=jnp.ones((1, 1)), W=jnp.ones((1, 1)))
    xs = jax.random.uniform(key, (3, 50, 1))
    ys, _ = unroll(cell, params, xs)
    np.testing.assert_allclose(ys, jnp.cumsum(xs, axis=1), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_same_key_same_params_different_key_differs(name):
    cell = get_cell(name)
    a = cell.init(jax.random.key(1), 3, 4)
    b = cell.init(jax.random.key(1), 3, 4)
    c = cell.init(jax.random.key(2), 3, 4)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    assert any(
        not np.array_equal(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(c))
    )


def test_lstm_forget_bias_and_gate_order(key):
    params = lstm.init(key, 3, 4, forget_bias=1.0)
    i, f, g, o = lstm.split_gates(params.b)
    np.testing.assert_array_equal(f, jnp.ones(4))
    for other in (i, g, o):
        np.testing.assert_array_equal(other, jnp.zeros(4))
    assert not jnp.any(get_cell("lstm", forget_bias=0.0).init(key, 3, 4).b)


def test_vanilla_spectral_radius_and_identity_init(key):
    params = get_cell("vanilla", spectral_radius=0.9).init(key, 3, 16)
    np.testing.assert_allclose(np.abs(np.linalg.eigvals(params.W)), 0.9, rtol=1e-4)
    np.testing.assert_allclose(np.linalg.svd(params.W, compute_uv=False), 0.9, rtol=1e-4)
    irnn = get_cell("irnn").init(key, 3, 16)
    np.testing.assert_array_equal(irnn.W, jnp.eye(16))
    assert not jnp.any(irnn.b)


def test_unknown_cell_and_activation_errors():
    with pytest.raises(ValueError, match=r"unknown cell 'elman'.*expected one of"):
        get_cell("elman")
    with pytest.raises(ValueError, match=r"unknown activation 'softsign'.*expected one of"):
        get_cell("vanilla", activation="softsign")
    with pytest.raises(ValueError, match=r"unknown recurrent init 'uniform'"):
        get_cell("vanilla").init(jax.random.key(0), 2, 3, recurrent_init="uniform")


def test_output_feedback_teacher_forcing_with_own_outputs_equals_free_running(key):
    cell = get_cell("output_feedback")
    params = random_params(cell, key)._replace(V=jax.random.normal(key, (4, 2)), c=jnp.ones(2))
    params = params._replace(W=jax.random.normal(jax.random.fold_in(key, 5), (2, 4)))
    xs = jax.random.normal(jax.random.fold_in(key, 4), (2, 6, 3))
    outputs, _ = unroll(cell, params, xs)
    assert outputs.shape == (2, 6, 2)
    previous = jnp.concatenate([jnp.zeros((2, 1, 2)), outputs[:, :-1]], axis=1)
    np.testing.assert_allclose(
        output_feedback.teacher_forced(params, xs, previous), outputs, rtol=1e-5, atol=1e-6
    )
    # a different previous target changes the next output: the feedback path is really used
    other = output_feedback.teacher_forced(params, xs, previous + 1.0)
    assert not np.allclose(other[:, 1:], outputs[:, 1:])


def test_output_feedback_output_size_option(key):
    params = get_cell("output_feedback").init(key, 3, 5, output_size=2)
    assert params.W.shape == (2, 5) and params.V.shape == (5, 2)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_initial_carry_can_be_donated(name, key):
    """A carry held in a donated train state must not alias one buffer twice."""
    cell = get_cell(name)
    carry = cell.initial_carry(cell.init(key, 3, 4), (2,))
    expected = jax.tree.map(lambda a: np.asarray(a) + 1, carry)
    donated = jax.jit(lambda c: jax.tree.map(lambda a: a + 1, c), donate_argnums=0)(carry)
    jax.tree.map(np.testing.assert_array_equal, donated, expected)
