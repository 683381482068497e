"""Damped quasi-DEER (quasi-ELK) with padded batches (issue 26): padded steps are identities, so
they are not damped; a padded batch converges within a small factor of the iterations of the
unpadded one, and its outputs, final carry and gradients equal the sequential scan's (autodiff
of `rnn_jax.unroll`, one `lax.scan` over `step`, float64)."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, readout, unroll
from rnn_jax.parallel import deer_grad
from rnn_jax.parallel.deer import deer_unroll
from rnn_jax.parallel.deer_grad import damped_scan_diagonal

TIME, HIDDEN = 48, 8


def _setup():
    cell = get_cell("gru")
    params = cell.init(jax.random.key(0), 3, HIDDEN, dtype=jnp.float64)
    xs = jax.random.normal(jax.random.key(1), (3, TIME, 3), jnp.float64)
    return cell, params, xs


def test_zero_damping_steps_are_fixed_by_the_dynamics_alone(key, x64):
    """Per-step damping against the normal equations: (M^T M + diag(lambda)) s = M^T b +
    diag(lambda) guess, with lambda 0 on a tail of steps (which then follow s(t) = a s(t-1) + b
    exactly)."""
    keys = jax.random.split(key, 3)
    a, b, guess = (jax.random.normal(k, (7, 2), jnp.float64) for k in keys)
    damping = jnp.where(jnp.arange(7) < 4, 0.6, 0.0)[:, None]
    received = jax.jit(damped_scan_diagonal)(a, b, guess, damping)
    for j in range(2):
        M = np.eye(7) - np.diag(np.asarray(a[1:, j]), -1)
        lam = np.diag(np.asarray(damping[:, 0]))
        expected = np.linalg.solve(M.T @ M + lam, M.T @ b[:, j] + lam @ guess[:, j])
        np.testing.assert_allclose(received[:, j], expected, rtol=1e-10, atol=1e-10)
    tail = np.asarray(received)
    np.testing.assert_allclose(tail[4:], np.asarray(a[4:]) * tail[3:-1] + np.asarray(b[4:]),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("reverse", [False, True])
def test_damped_padded_batch_converges_like_the_unpadded_one(x64, reverse):
    cell, params, xs = _setup()
    lengths = jnp.array([TIME, TIME // 2, 5])

    def run(params, xs, carry, lengths):
        return deer_unroll(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse,
                           jacobian="diagonal", damping=0.5, on_failure="return",
                           max_iterations=2000)

    def loss(run_fn, params, xs, carry):
        ys, final = run_fn(params, xs, carry)[:2]
        return jnp.sum(jnp.sin(ys)) + jnp.sum(final ** 2)

    carry = 0.2 + cell.initial_carry(params, (3,))
    deer = jax.jit(run)
    full = deer(params, xs, carry, jnp.full((3,), TIME))[2]
    ys, final, info = deer(params, xs, carry, lengths)
    assert bool(full.converged) and bool(info.converged)
    assert int(info.iterations) <= 2 * int(full.iterations), (info, full)
    ref_ys, ref_final = unroll(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
    chex.assert_trees_all_close((ys, final), (ref_ys, ref_final), rtol=1e-8, atol=1e-8)
    grads = jax.jit(jax.grad(lambda *a: loss(lambda *b: run(*b, lengths), *a),
                             argnums=(0, 1, 2)))(params, xs, carry)
    ref_grads = jax.grad(lambda *a: loss(lambda *b: unroll(
        cell, *b[:2], carry=b[2], lengths=lengths, reverse=reverse), *a),
        argnums=(0, 1, 2))(params, xs, carry)
    chex.assert_trees_all_close(grads, ref_grads, rtol=1e-7, atol=1e-7)


def test_a_nan_state_is_never_a_converged_residual():
    """XLA's CPU max can skip NaNs: a diverged Newton iteration must read as not converged."""
    fs = jnp.zeros((256, 8, 16)).at[3, 2, 1].set(jnp.nan)
    assert jnp.isnan(deer_grad.max_error(fs, jnp.zeros_like(fs)))
    all_nan = jnp.full((256, 8, 16), jnp.nan)
    assert jnp.isnan(deer_grad.max_error(all_nan, all_nan))
    assert float(deer_grad.max_error(jnp.ones(4), jnp.zeros(4))) == 1.0


def test_many_to_one_readout_takes_lengths_as_a_list():
    ys = jnp.arange(2 * 5 * 3, dtype=jnp.float32).reshape(2, 5, 3)
    out = readout.last_valid(ys, [2, 9])  # 9 > T: the whole sequence (the traced policy)
    np.testing.assert_array_equal(np.asarray(out), np.asarray(ys)[[0, 1], [1, 4]])
