"""DEER / quasi-DEER against the sequential scan: trajectories, gradients, failure, bad input.

References are independent of the Newton code: `rnn_jax.unroll` (one `lax.scan` over `step`)
and autodiff of it, and plain Python loops for the linear scans.
"""

import functools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, unroll
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.parallel.deer_grad import linear_scan_diagonal, linear_scan_full

NAMES = ("vanilla", "gru", "lstm")
JACOBIANS = ("full", "diagonal")


@functools.lru_cache(maxsize=None)
def setup(name, batch=2, time=12, input_size=3, hidden=4, dtype=jnp.float64):
    """A cell, its params and inputs, made by one compiled program (and once per session)."""
    cell = get_cell(name)

    @jax.jit
    def make(key):
        params = cell.init(key, input_size, hidden, dtype=dtype)
        return params, jax.random.normal(jax.random.fold_in(key, 1), (batch, time, input_size),
                                         dtype)

    return (cell, *make(jax.random.key(0)))


def close(a, b, tol=1e-8):
    chex.assert_trees_all_close(a, b, rtol=tol, atol=tol)


def test_linear_scans_equal_a_python_loop(key, x64):
    A = 0.5 * jax.random.normal(key, (7, 2, 3, 3), jnp.float64)
    b = jax.random.normal(jax.random.fold_in(key, 1), (7, 2, 3), jnp.float64)
    s, full, diagonal = np.zeros((2, 3)), [], []
    d = np.zeros((2, 3))
    for t in range(7):
        s = np.einsum("bij,bj->bi", np.asarray(A[t]), s) + np.asarray(b[t])
        d = np.diagonal(np.asarray(A[t]), axis1=-2, axis2=-1) * d + np.asarray(b[t])
        full.append(s)
        diagonal.append(d)
    np.testing.assert_allclose(linear_scan_full(A, b), np.stack(full), rtol=1e-12, atol=1e-12)
    a = jnp.diagonal(A, axis1=-2, axis2=-1)
    np.testing.assert_allclose(linear_scan_diagonal(a, b), np.stack(diagonal), rtol=1e-12,
                               atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_equals_sequential_unroll(name, key, x64):
    """Both Jacobians, a non-zero initial carry; lengths with reverse; one unbatched sequence."""
    cell, params, xs = setup(name, batch=3, time=9)
    carry = jax.tree.map(lambda a: 0.3 + a, cell.initial_carry(params, (3,)))
    lengths = jnp.array([9, 4, 0])

    @jax.jit
    def run(params, xs, carry):
        plain = [deer_unroll(cell, params, xs, carry=carry, jacobian=j) for j in JACOBIANS]
        padded = deer_unroll(cell, params, xs, lengths=lengths, reverse=True, jacobian="diagonal")
        references = (
            unroll(cell, params, xs, carry=carry),
            unroll(cell, params, xs, lengths=lengths, reverse=True),
            unroll(cell, params, xs[0]),
        )
        return (plain, padded, deer_unroll(cell, params, xs[0])), references

    ((full, diagonal), padded, alone), (expected, expected_padded, expected_alone) = run(
        params, xs, carry
    )
    for ys, final, info in (full, diagonal):
        close((ys, final), expected)
        assert bool(info.converged) and float(info.residual) <= 1e-10
        assert 1 <= int(info.iterations) <= xs.shape[1]  # k iterations: the first k steps exact
    close(padded[:2], expected_padded)
    close(alone[:2], expected_alone)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_equal_autodiff_of_the_sequential_scan(name, key, x64):
    """d(loss)/d(params, xs, initial carry) through ys and the final carry, with padding."""
    cell, params, xs = setup(name, time=10)
    lengths = jnp.array([10, 6])
    carry = jax.tree.map(lambda a: 0.2 + a, cell.initial_carry(params, (2,)))
    weights = jax.random.normal(jax.random.fold_in(key, 2), (2, 10, 4), jnp.float64)

    def loss(params, xs, carry, run):
        ys, final = run(params, xs, carry)[:2]
        return jnp.sum(weights * ys) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(final))

    def grads(run):
        return jax.grad(loss, argnums=(0, 1, 2))(params, xs, carry, run)

    sequential = lambda p, x, c: unroll(cell, p, x, carry=c, lengths=lengths, backward="autodiff")
    expected = jax.jit(lambda: grads(sequential))()
    received = jax.jit(lambda: [
        grads(lambda p, x, c: deer_unroll(cell, p, x, carry=c, lengths=lengths, jacobian=j))
        for j in JACOBIANS
    ])()
    for grad in received:
        close(grad, expected, 1e-7)


def test_non_convergence_handled_as_chosen(key, x64):
    cell, params, xs = setup("vanilla", time=8)
    ys, _ = unroll(cell, params, xs)
    with pytest.warns(RuntimeWarning, match=r"residual .* after 2 iterations"):
        ys_seq, _, info = deer_unroll(cell, params, xs, max_iterations=2)
    assert not bool(info.converged) and int(info.iterations) == 2
    close(ys_seq, ys, 1e-12)  # recomputed by the sequential scan
    with pytest.raises(RuntimeError, match=r"residual .* after 2 iterations"):
        deer_unroll(cell, params, xs, max_iterations=2, on_failure="raise")
    k = 3  # under jit: the fallback, and the info says so; "return": the iterate itself
    ys_jit, _, info_jit = jax.jit(lambda p, x: deer_unroll(cell, p, x, max_iterations=2))(
        params, xs
    )
    close(ys_jit, ys, 1e-12)
    assert not bool(info_jit.converged)
    ys_k, _, info = jax.jit(lambda p, x: deer_unroll(
        cell, p, x, jacobian="diagonal", max_iterations=k, on_failure="return"
    ))(params, xs)
    assert int(info.iterations) == k and not bool(info.converged)
    close(ys_k[:, :k], ys[:, :k], 1e-12)  # Newton makes the first k steps exact in k iterations
    assert float(jnp.max(jnp.abs(ys_k[:, k:] - ys[:, k:]))) > 1e-6


@pytest.mark.parametrize(
    "options, match",
    [
        (dict(tol=0.0), "expected tol a finite number > 0"),
        (dict(tol=-1e-3), "expected tol a finite number > 0"),
        (dict(tol=float("nan")), "expected tol a finite number > 0"),
        (dict(max_iterations=0), "expected max_iterations an int >= 1, received 0"),
        (dict(max_iterations=2.5), "expected max_iterations an int >= 1, received 2.5"),
        (dict(jacobian="dense"), "expected jacobian in .*received 'dense'"),
        (dict(on_failure="ignore"), "expected on_failure in .*received 'ignore'"),
        (dict(lengths=jnp.array([3, 9])), r"expected lengths in \[0, 5\]"),
        (dict(lengths=jnp.array([3.0, 2.0])), "expected integer lengths"),
    ],
)
def test_bad_options_raise(options, match, key):
    cell, params, xs = setup("gru", time=5, dtype=jnp.float32)
    with pytest.raises(ValueError, match=match):
        deer_unroll(cell, params, xs, **options)


def test_bad_cells_and_contexts_raise(key):
    urnn = get_cell("urnn")
    params = urnn.init(key, 3, 4)
    with pytest.raises(ValueError, match="real floating-point carry.*complex64"):
        deer_unroll(urnn, params, jnp.ones((2, 5, 3)))
    gru, params, xs = setup("gru", time=5, dtype=jnp.float32)

    @jax.custom_vjp
    def opaque(h):  # reverse mode only: no Jacobian by jax.jvp
        return jnp.tanh(h)

    opaque.defvjp(lambda h: (jnp.tanh(h), h), lambda h, g: (g * (1 - jnp.tanh(h) ** 2),))
    step = lambda p, h, x: (opaque(gru.step(p, h, x)[0]),) * 2
    with pytest.raises(ValueError, match="expected a step whose carry Jacobian JAX can"):
        deer_unroll(gru._replace(step=step), params, xs)
    with pytest.raises(ValueError, match="on_failure='raise' needs concrete values"):
        jax.jit(lambda x: deer_unroll(gru, params, x, on_failure="raise"))(xs)
