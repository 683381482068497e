"""The largest Lyapunov exponent against closed forms (linear cells) and a NumPy QR (Benettin)
loop over central-difference Jacobians in float64."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import get_cell
from rnn_jax.diagnostics import add_to_carry, flatten_carry
from rnn_jax.lyapunov import largest_lyapunov, start_vector

lyapunov = jax.jit(largest_lyapunov, static_argnums=0)
LINEAR = get_cell("vanilla", activation="identity")


def linear_params(W, inputs=1):
    """Identity-activation vanilla params with recurrent matrix W (h(t) = h(t-1) @ W + U x(t))."""
    W = jnp.asarray(W, jnp.float64)
    hidden = W.shape[0]
    U = jnp.linspace(-1.0, 1.0, inputs * hidden, dtype=jnp.float64).reshape(inputs, hidden)
    return LINEAR.init(jax.random.key(0), inputs, hidden, dtype=jnp.float64)._replace(
        W=W, U=U, b=jnp.full((hidden,), 0.1, jnp.float64))


def inputs_of(key, batch, time, features=1):
    return jax.random.normal(key, (batch, time, features), jnp.float64)


@pytest.mark.parametrize("r", [0.7, 1.0, 1.3])
def test_scaled_rotation_gives_log_r_at_every_length(r, key, x64):
    """W = r R(theta) scales every vector by exactly r: lambda_1 = log r for any T and v(0)."""
    theta = 0.9
    W = r * np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    for time in (1, 7, 50):
        out = lyapunov(LINEAR, linear_params(W), inputs_of(key, 3, time), key=key)
        np.testing.assert_allclose(out, np.full(3, np.log(r)), atol=1e-12)


@pytest.mark.parametrize("eigenvalues", [(0.5, -0.9, 0.3), (0.2, 1.1, -0.6), (-1.25, 0.8, 1.0)])
def test_diagonalisable_linear_step_gives_log_spectral_radius(eigenvalues, key, x64):
    """W = P diag(eigenvalues) P^-1 (not normal): lambda_1 -> log max |eigenvalue| as T grows;
    the start vector's transient contributes O(1/T)."""
    P = np.array([[1.0, 0.4, -0.3], [0.2, 1.0, 0.5], [-0.1, 0.3, 1.0]])
    W = P @ np.diag(eigenvalues) @ np.linalg.inv(P)
    expected = np.log(np.max(np.abs(eigenvalues)))
    out = lyapunov(LINEAR, linear_params(W), inputs_of(key, 2, 2000))
    np.testing.assert_allclose(out, np.full(2, expected), atol=5e-3)


def test_zero_recurrence_gives_minus_infinity(key, x64):
    out = lyapunov(LINEAR, linear_params(np.zeros((2, 2))), inputs_of(key, 2, 5))
    assert np.all(np.isneginf(out))


def test_contracting_tanh_rnn_is_negative_and_below_its_bound(key, x64):
    """||J(t)|| <= ||W||_2 sup|tanh'| = 0.5, so lambda_1 <= log 0.5 < 0 for every sequence."""
    cell = get_cell("vanilla", activation="tanh")
    params = cell.init(key, 2, 8, dtype=jnp.float64, spectral_radius=0.5)  # orthogonal * 0.5
    out = lyapunov(cell, params, 3.0 * inputs_of(key, 4, 300, 2))
    assert np.all(out <= np.log(0.5) + 1e-12)
    assert np.all(out > np.log(0.5) - 3.0)  # tanh' > 0 on this trajectory: finite, not -inf


def fd_jacobian(cell, params, carry, x_proj, size, eps=1e-6):
    """`[D, D]` dh(t)/dh(t-1) of one example by central differences (column j: direction e_j)."""
    f = lambda delta: np.asarray(flatten_carry(cell.step(params, add_to_carry(carry, delta),
                                                         x_proj)[0]))
    columns = []
    for j in range(size):
        e = np.zeros(size)
        e[j] = eps
        columns.append((f(jnp.asarray(e)) - f(jnp.asarray(-e))) / (2 * eps))
    return np.stack(columns, axis=-1)


def benettin_reference(cell, params, xs, v0, carry0=None):
    """QR iteration with Q(0) = [v0, ...] orthonormal: (1/T) sum_t log |R(t)[0, 0]|, per example
    by a Python loop over explicit Jacobians, from carry0 `[batch, ...]` (None: zeros)."""
    out = []
    for b in range(xs.shape[0]):
        carry = cell.initial_carry(params, ()) if carry0 is None else jax.tree.map(
            lambda leaf: leaf[b], carry0)
        size = flatten_carry(carry).shape[-1]
        Q = np.linalg.qr(np.column_stack([v0[b], np.eye(size)[:, : size - 1]]))[0]
        Q *= np.sign(Q[:, 0] @ v0[b])  # the first column is +v0
        total = 0.0
        for t in range(xs.shape[1]):
            x_proj = cell.project_inputs(params, xs[b, t])
            Q, R = np.linalg.qr(fd_jacobian(cell, params, carry, x_proj, size) @ Q)
            total += np.log(abs(R[0, 0]))
            carry = cell.step(params, carry, x_proj)[0]
        out.append(total / xs.shape[1])
    return np.array(out)


@pytest.mark.parametrize("name, use_key", [("gru", False), ("lstm", True), ("urnn", False)])
def test_matches_numpy_qr_over_finite_difference_jacobians(name, use_key, key, x64):
    """Nonlinear cells, one per kind of carry (array, (h, c), complex), at a learned-looking
    scale (randomised params), against the reference loop from the same v(0)."""
    cell = get_cell(name)
    params = cell.init(key, 2, 3, dtype=jnp.float64)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    params = tree.unflatten([leaf + 0.8 * jax.random.normal(k, leaf.shape, leaf.dtype)
                             if jnp.isrealobj(leaf) else leaf for k, leaf in zip(keys, leaves)])
    xs = inputs_of(jax.random.fold_in(key, 2), 2, 12, 2)
    size = flatten_carry(cell.initial_carry(params, ())).shape[-1]
    start_key = jax.random.fold_in(key, 3) if use_key else None
    v0 = np.asarray(start_vector((2, size), jnp.float64, start_key))
    out = lyapunov(cell, params, xs, key=start_key)
    np.testing.assert_allclose(out, benettin_reference(cell, params, xs, v0), atol=1e-7)


def test_given_carry_is_the_trajectory_start(key, x64):
    """From the state after 4 steps, the exponent of the remaining steps (as the reference from
    that state), which differs from the one from the default zero state."""
    cell = get_cell("gru")
    params = cell.init(key, 1, 4, dtype=jnp.float64)
    xs = 2.0 * inputs_of(key, 2, 10)
    carry = functools.reduce(lambda c, t: cell.step(params, c, cell.project_inputs(
        params, xs[:, t]))[0], range(4), cell.initial_carry(params, (2,)))
    v0 = np.asarray(start_vector((2, 4), jnp.float64))
    out = lyapunov(cell, params, xs[:, 4:], carry)
    np.testing.assert_allclose(out, benettin_reference(cell, params, xs[:, 4:], v0, carry),
                               atol=1e-7)
    assert not np.allclose(out, lyapunov(cell, params, xs[:, 4:]), atol=1e-6)


@pytest.mark.parametrize("make, match", [
    (lambda p, xs: (p, xs[0], None), r"expected inputs of shape \[batch, time >= 1, features\]"),
    (lambda p, xs: (p, xs[:, :0], None), r"received \(2, 0, 1\)"),
    (lambda p, xs: (p, jnp.concatenate([xs, xs], -1), None), "expected 1 input features"),
    (lambda p, xs: (p, xs, jnp.zeros((3, 2))), "carry batch mismatch"),
])
def test_bad_input_raises_before_computing(make, match, key):
    params = LINEAR.init(key, 1, 2)
    with pytest.raises(ValueError, match=match):
        largest_lyapunov(LINEAR, *make(params, jnp.zeros((2, 5, 1))))
