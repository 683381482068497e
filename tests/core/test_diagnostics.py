"""Gradient diagnostics against T-pass references (Python loops + jax.jacrev) and the bound."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import diagnostics, unroll
from rnn_jax.cells import CELLS, get_cell

BATCH, TIME, IN, HIDDEN = 2, 3, 3, 3
# One cell per kind of carry: an array, a NamedTuple (h, c), a complex array (when registered).
CARRY_KINDS = [name for name in ("vanilla", "lstm", "urnn") if name in CELLS]
# Jitted once per cell value (eager vmap/jacrev/scan is several times slower to run).
gradient_norms = jax.jit(diagnostics.gradient_norms, static_argnums=(0, 3))
jacobian_norms = jax.jit(diagnostics.jacobian_norms, static_argnums=0, static_argnames="final_only")
perturbed_unroll = jax.jit(diagnostics.perturbed_unroll, static_argnums=0)


def setup(name, key, **options):
    cell = get_cell(name, **options)
    params = cell.init(key, IN, HIDDEN, dtype=jnp.float64)
    leaves, tree = jax.tree.flatten(params)  # randomise every leaf: zero biases hide bugs
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves))
    params = tree.unflatten(
        [leaf + 0.3 * jax.random.normal(k, leaf.shape, leaf.dtype) for k, leaf in zip(keys, leaves)]
    )
    xs = jax.random.normal(jax.random.fold_in(key, 2), (BATCH, TIME, IN), jnp.float64)
    return cell, params, xs


def loss_fn(output):
    """A per-example L(T) that reads every output unit: `[batch, out] -> [batch]`."""
    weights = jnp.cos(jnp.arange(output.shape[-1], dtype=output.dtype))
    return jnp.sin(output @ weights) + jnp.sum(output**2, axis=-1)


def run_steps(cell, params, carry, xs, start, stop):
    """Python loop over `cell.step` from step `start` to `stop` (the reference)."""
    outputs, carries = [], []
    for t in range(start, stop):
        carry, h = cell.step(params, carry, cell.project_inputs(params, xs[:, t]))
        outputs.append(h)
        carries.append(carry)
    return outputs, carries


def carry_at(cell, params, xs, t):
    carry = cell.initial_carry(params, (BATCH,))
    return run_steps(cell, params, carry, xs, 0, t)[1][-1] if t > 0 else carry


@pytest.mark.parametrize("name", sorted(CELLS))
def test_perturbed_unroll_with_zero_eps_equals_unroll(name, key, x64):
    cell, params, xs = setup(name, key)
    eps = jnp.zeros((BATCH, TIME + 1, diagnostics.carry_size(cell, params)))
    hs, carries = perturbed_unroll(cell, params, xs, eps)
    ys, final = jax.jit(unroll, static_argnums=0)(cell, params, xs)
    np.testing.assert_allclose(hs, ys, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(carries[:, -1], diagnostics.flatten_carry(final), rtol=1e-12)


@functools.partial(jax.jit, static_argnums=0)
def reference_gradient_norms(cell, params, xs):
    """||dL(T)/dh(t)|| from T separate jacrevs, one per t (h(t) = carry(t) + delta)."""
    diagonal = lambda jacobian: jacobian[jnp.arange(BATCH), jnp.arange(BATCH)]  # per example
    rows = []
    for t in range(TIME):

        def losses(delta, t=t):
            carry = diagnostics.add_to_carry(carry_at(cell, params, xs, t), delta)
            return loss_fn(run_steps(cell, params, carry, xs, t, TIME)[0][-1])

        jacobian = jax.jacrev(losses)(jnp.zeros((BATCH, diagnostics.carry_size(cell, params))))
        rows.append(jnp.linalg.norm(diagonal(jacobian), axis=-1))
    output = run_steps(cell, params, carry_at(cell, params, xs, TIME - 1), xs, TIME - 1, TIME)[0]
    rows.append(jnp.linalg.norm(diagonal(jax.jacrev(loss_fn)(output[-1])), axis=-1))  # t = T
    return jnp.stack(rows, axis=1)


@functools.partial(jax.jit, static_argnums=0)
def reference_jacobian_norms(cell, params, xs):
    """`[batch, t, k]` ||dh(t)/dh(k)||_2 from one jacrev per k through a Python loop."""
    size = diagnostics.carry_size(cell, params)
    columns = []
    for k in range(TIME + 1):

        def later_carries(delta, k=k):
            carry = diagnostics.add_to_carry(carry_at(cell, params, xs, k), delta)
            carries = [carry] + run_steps(cell, params, carry, xs, k, TIME)[1]
            return jnp.stack([diagnostics.flatten_carry(c) for c in carries], axis=1)

        jacobian = jax.jacrev(later_carries)(jnp.zeros((BATCH, size)))  # [B, t, D, B, D]
        per_example = jnp.stack([jacobian[b, :, :, b] for b in range(BATCH)])  # [B, t, D, D]
        norms = jnp.linalg.norm(per_example, ord=2, axis=(-2, -1))
        columns.append(jnp.concatenate([jnp.zeros((BATCH, k)), norms], axis=1))  # 0 for t < k
    return jnp.stack(columns, axis=2)


@pytest.mark.parametrize("name", sorted(CELLS))
def test_one_pass_gradient_norms_equal_t_pass_jacrev_reference(name, key, x64):
    cell, params, xs = setup(name, key)
    np.testing.assert_allclose(
        gradient_norms(cell, params, xs, loss_fn), reference_gradient_norms(cell, params, xs),
        rtol=1e-10,
    )


@pytest.mark.parametrize("name", CARRY_KINDS)
def test_jacobian_norms_equal_python_loop_jacrev(name, key, x64):
    cell, params, xs = setup(name, key)
    norms = jacobian_norms(cell, params, xs)
    np.testing.assert_allclose(norms, reference_jacobian_norms(cell, params, xs), rtol=1e-10,
                               atol=1e-12)
    final_only = jacobian_norms(cell, params, xs, final_only=True)
    np.testing.assert_allclose(final_only, norms[:, -1], rtol=1e-12)


@pytest.mark.parametrize("activation,recurrent_init,spectral_radius", [  # radius: orthogonal only
    ("tanh", "orthogonal", 0.7), ("tanh", "orthogonal", 1.4), ("tanh", "glorot", 1.0),
    ("relu", "glorot", 1.0), ("sigmoid", "orthogonal", 1.4),
])
def test_vanilla_jacobian_norms_never_exceed_the_bound(
    activation, spectral_radius, recurrent_init, key, x64
):
    cell = get_cell("vanilla", activation=activation)
    params = cell.init(key, IN, 6, dtype=jnp.float64, recurrent_init=recurrent_init,
                       spectral_radius=spectral_radius)
    params = params._replace(b=0.5 * jax.random.normal(jax.random.fold_in(key, 3), (6,)))
    xs = jax.random.normal(jax.random.fold_in(key, 4), (3, 10, IN), jnp.float64)
    norms = jacobian_norms(cell, params, xs)  # [batch, t, k]
    distances = jnp.arange(11)[:, None] - jnp.arange(11)[None, :]
    bound = diagnostics.jacobian_bound(params.W, activation, jnp.maximum(distances, 0))
    lower = (distances >= 0)[None]
    assert bool(jnp.all(jnp.where(lower, norms <= bound[None] * (1 + 1e-9), True)))
    one_step = jnp.diagonal(norms, offset=-1, axis1=1, axis2=2) / bound[1, 0]  # t = k + 1
    assert float(jnp.max(one_step)) > 0.5  # and the bound is close: the test is not vacuous


def test_bound_is_exact_for_linear_rnn_with_orthogonal_W(key, x64):
    """Identity activation, W = rho Q: dh(t)/dh(k) = (W^T)^(t-k), norm rho^(t-k) exactly."""
    cell = get_cell("vanilla", activation="identity")
    params = cell.init(key, IN, 5, dtype=jnp.float64, spectral_radius=0.8)
    xs = jax.random.normal(key, (1, 6, IN), jnp.float64)
    norms = jacobian_norms(cell, params, xs, final_only=True)[0]
    expected = diagnostics.jacobian_bound(params.W, "identity", jnp.arange(6, -1, -1))
    np.testing.assert_allclose(expected, 0.8 ** np.arange(6, -1, -1), rtol=1e-10)
    np.testing.assert_allclose(norms, expected, rtol=1e-10)


def test_bound_factor_uses_largest_singular_value_and_phi_bound(key, x64):
    W = jax.random.normal(key, (4, 4), jnp.float64)
    largest = np.linalg.svd(np.asarray(W), compute_uv=False)[0]
    np.testing.assert_allclose(diagnostics.bound_factor(W, "tanh"), largest, rtol=1e-12)
    np.testing.assert_allclose(diagnostics.bound_factor(W, "sigmoid"), largest / 4, rtol=1e-12)
    with pytest.raises(ValueError, match="unknown activation 'softplus'"):
        diagnostics.bound_factor(W, "softplus")


def test_decay_rate_recovers_a_geometric_rate(x64):
    t = jnp.arange(9)
    norms = jnp.stack([3.0 * 0.6 ** (8 - t), 0.1 * 1.3 ** (8 - t)])
    np.testing.assert_allclose(diagnostics.decay_rate(norms), [0.6, 1.3], rtol=1e-12)


def test_bad_input_raises(key):
    cell = get_cell("gru")
    params = cell.init(key, IN, HIDDEN)
    with pytest.raises(ValueError, match=r"expected xs of shape \[batch, time, 3\]"):
        diagnostics.gradient_norms(cell, params, jnp.ones((TIME, IN)), loss_fn)
    with pytest.raises(ValueError, match=rf"received \(2, {TIME}, 5\)"):
        diagnostics.jacobian_norms(cell, params, jnp.ones((2, TIME, 5)))
