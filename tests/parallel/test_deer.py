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
from rnn_jax.parallel.deer_grad import damped_scan_diagonal, linear_scan_full

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


def test_full_linear_scan_equals_a_python_loop(key, x64):
    A = 0.5 * jax.random.normal(key, (7, 2, 3, 3), jnp.float64)
    b = jax.random.normal(jax.random.fold_in(key, 1), (7, 2, 3), jnp.float64)
    s, full = np.zeros((2, 3)), []
    for t in range(7):
        s = np.einsum("bij,bj->bi", np.asarray(A[t]), s) + np.asarray(b[t])
        full.append(s)
    np.testing.assert_allclose(jax.jit(linear_scan_full)(A, b), np.stack(full), rtol=1e-12,
                               atol=1e-12)


def test_damped_step_solves_the_regularised_least_squares_problem(key, x64):
    """quasi-ELK's step against the normal equations (M^T M + damping I) s = M^T b + damping y,
    M the bidiagonal map s -> s(t) - a(t) s(t-1), per coordinate; then whole trajectories."""
    keys = jax.random.split(key, 3)
    a, b, guess = (jax.random.normal(k, (6, 2, 3), jnp.float64) for k in keys)
    damping = 0.7
    received = jax.jit(damped_scan_diagonal, static_argnums=3)(a, b, guess, damping)
    expected = np.zeros((6, 2, 3))
    for i in range(2):
        for j in range(3):
            M = np.eye(6) - np.diag(np.asarray(a[1:, i, j]), -1)
            lhs = M.T @ M + damping * np.eye(6)
            expected[:, i, j] = np.linalg.solve(lhs, M.T @ b[:, i, j] + damping * guess[:, i, j])
    np.testing.assert_allclose(received, expected, rtol=1e-10, atol=1e-10)
    cell, params, xs = setup("gru")
    ys, final, info = jax.jit(lambda p, x: deer_unroll(
        cell, p, x, jacobian="diagonal", damping=0.5, on_failure="return"))(params, xs)
    close((ys, final), unroll(cell, params, xs))  # the same fixed point
    assert bool(info.converged)


@pytest.mark.parametrize("name", NAMES)
def test_trajectory_equals_sequential_unroll(name, x64):
    """Both Jacobians from a non-zero initial carry, in one compiled program per cell."""
    cell, params, xs = setup(name)
    carry = jax.tree.map(lambda a: 0.3 + a, cell.initial_carry(params, (2,)))

    @jax.jit
    def run(params, xs, carry):
        newton = [deer_unroll(cell, params, xs, carry=carry, jacobian=jacobian,
                              on_failure="return") for jacobian in JACOBIANS]
        return newton, unroll(cell, params, xs, carry=carry)

    newton, expected = run(params, xs, carry)
    for ys, final, info in newton:
        close((ys, final), expected)
        assert bool(info.converged) and float(info.residual) <= 1e-10
        assert 1 <= int(info.iterations) <= xs.shape[1]  # k iterations: the first k steps exact


def test_lengths_reverse_and_unbatched(x64):
    """The LSTM (a pytree carry) with padding, reversed, and one unbatched sequence."""
    cell, params, xs = setup("lstm", batch=3)
    lengths = jnp.array([12, 4, 0])

    @jax.jit
    def run(params, xs):
        newton = (
            deer_unroll(cell, params, xs, lengths=lengths, reverse=True, jacobian="diagonal"),
            deer_unroll(cell, params, xs[0], on_failure="return"),
        )
        return newton, (unroll(cell, params, xs, lengths=lengths, reverse=True),
                        unroll(cell, params, xs[0]))

    (padded, alone), (expected_padded, expected_alone) = run(params, xs)
    close(padded[:2], expected_padded)
    close(alone[:2], expected_alone)


@pytest.mark.parametrize("name, jacobian", [("gru", "full"), ("gru", "diagonal"),
                                            ("lstm", "diagonal")])
def test_gradients_equal_autodiff_of_the_sequential_scan(name, jacobian, key, x64):
    """d(loss)/d(params, xs, initial carry) through ys and the final carry, with padding."""
    cell, params, xs = setup(name)
    lengths = jnp.array([12, 6])
    carry = jax.tree.map(lambda a: 0.2 + a, cell.initial_carry(params, (2,)))
    weights = jax.random.normal(jax.random.fold_in(key, 2), (2, 12, 4), jnp.float64)

    def loss(params, xs, carry, run):
        ys, final = run(params, xs, carry)[:2]
        return jnp.sum(weights * ys) + sum(jnp.sum(jnp.sin(c)) for c in jax.tree.leaves(final))

    def grads(run):
        return jax.grad(loss, argnums=(0, 1, 2))(params, xs, carry, run)

    sequential = lambda p, x, c: unroll(cell, p, x, carry=c, lengths=lengths, backward="autodiff")
    expected = jax.jit(lambda: grads(sequential))()
    received = jax.jit(lambda: grads(
        lambda p, x, c: deer_unroll(cell, p, x, carry=c, lengths=lengths, jacobian=jacobian)
    ))()
    close(received, expected, 1e-7)


def test_non_convergence_handled_as_chosen(key, x64):
    cell, params, xs = setup("vanilla")
    ys, _ = unroll(cell, params, xs)
    with pytest.warns(RuntimeWarning, match=r"residual .* after 2 iterations"):
        ys_seq, _, info = deer_unroll(cell, params, xs, max_iterations=2)
    assert not bool(info.converged) and int(info.iterations) == 2
    close(ys_seq, ys, 1e-12)  # recomputed by the sequential scan
    with pytest.raises(RuntimeError, match=r"residual .* after 2 iterations"):
        deer_unroll(cell, params, xs, max_iterations=2, on_failure="raise")
    k = 3  # "return": the last iterate as it is, and the info says so
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
        (dict(jacobian="diagonal", damping=-1.0), "expected damping a finite number >= 0"),
        (dict(damping=1.0), "expected jacobian='diagonal' with damping > 0"),
        (dict(on_failure="ignore"), "expected on_failure in .*received 'ignore'"),
        (dict(lengths=jnp.array([3, 9])), r"expected lengths in \[0, 5\]"),
        (dict(lengths=jnp.array([3.0, 2.0])), "expected integer lengths"),
    ],
)
def test_bad_options_raise(options, match, key):
    """Raised while tracing: under `jax.eval_shape` nothing is compiled or computed."""
    cell = get_cell("gru")
    params = jax.eval_shape(lambda: cell.init(key, 3, 4))
    xs = jnp.ones((2, 5, 3))
    with pytest.raises(ValueError, match=match):
        jax.eval_shape(lambda p: deer_unroll(cell, p, xs, **options), params)


def test_bad_cells_and_contexts_raise(key):
    urnn = get_cell("urnn")
    xs = jnp.ones((2, 5, 3))
    with pytest.raises(ValueError, match="real floating-point carry.*complex64"):
        jax.eval_shape(lambda: deer_unroll(urnn, urnn.init(key, 3, 4), xs))
    gru = get_cell("gru")
    params = jax.eval_shape(lambda: gru.init(key, 3, 4))

    @jax.custom_vjp
    def opaque(h):  # reverse mode only: no Jacobian by jax.jvp
        return jnp.tanh(h)

    opaque.defvjp(lambda h: (jnp.tanh(h), h), lambda h, g: (g * (1 - jnp.tanh(h) ** 2),))
    step = lambda p, h, x: (opaque(gru.step(p, h, x)[0]),) * 2
    with pytest.raises(ValueError, match="expected a step whose carry Jacobian JAX can"):
        jax.eval_shape(lambda p: deer_unroll(gru._replace(step=step), p, xs), params)
    with pytest.raises(ValueError, match="on_failure='raise' needs concrete values"):
        jax.eval_shape(lambda p, x: deer_unroll(gru, p, x, on_failure="raise"), params, xs)
    loss = lambda p: jnp.sum(deer_unroll(gru, p, xs, on_failure="raise")[0])  # xs concrete
    with pytest.raises(ValueError, match="on_failure='raise' needs concrete values"):
        jax.eval_shape(jax.grad(loss), params)
