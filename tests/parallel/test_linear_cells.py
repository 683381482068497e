"""minGRU, minLSTM and LRU: the equations (NumPy loops), the parallel path against the
sequential `unroll` (values and gradients, float64), the log space, the ring init, bad input."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import get_cell, unroll
from rnn_jax.bptt import engine
from rnn_jax.cells import lru, mingru, minlstm
from rnn_jax.parallel.linear_cells import parallel_unroll

LINEAR = ["mingru", "minlstm", "lru"]
BATCH, TIME, IN, HIDDEN = 3, 6, 2, 4
LENGTHS = np.array([6, 3, 0])


def sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def g_reference(v):
    return np.where(v >= 0, v + 0.5, sigmoid(v))


def reference(name, params, xs, h0):
    """The cell's equations one step at a time (NumPy), one sequence `xs [time, in]`."""
    p = jax.tree.map(np.asarray, params)
    h, ys = np.asarray(h0), []
    for x in np.asarray(xs):
        if name == "mingru":
            k_z, k_h = np.split(x @ p.U + p.b, 2)
            z = sigmoid(k_z)
            h = (1 - z) * h + z * g_reference(k_h)
            ys.append(h)
        elif name == "minlstm":
            k_f, k_i, k_h = np.split(x @ p.U + p.b, 3)
            f, i = sigmoid(k_f), sigmoid(k_i)
            h = f / (f + i) * h + i / (f + i) * g_reference(k_h)
            ys.append(h)
        else:
            lam = np.exp(-np.exp(p.nu_log) + 1j * np.exp(p.theta_log))
            h = lam * h + np.exp(p.gamma_log) * (x @ (p.B_re + 1j * p.B_im))
            ys.append(np.real(h @ (p.C_re + 1j * p.C_im)) + x @ p.D)
    return np.stack(ys), h


def setup(name, key, dtype=jnp.float64):
    """Params with every leaf randomised, inputs, and a random nonzero initial carry."""
    cell = get_cell(name)
    params = cell.init(key, IN, HIDDEN, dtype=dtype)
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.fold_in(key, 1), len(leaves) + 3)
    params = tree.unflatten([leaf + 0.5 * jax.random.normal(k, leaf.shape, leaf.dtype)
                             for k, leaf in zip(keys, leaves)])
    xs = 1.5 * jax.random.normal(keys[-1], (BATCH, TIME, IN), dtype)
    carry = cell.initial_carry(params, (BATCH,))
    noise = jax.random.normal(keys[-2], (2, *carry.shape), dtype)
    carry = (noise[0] + 1j * noise[1] if jnp.iscomplexobj(carry) else noise[0]).astype(carry.dtype)
    return cell, params, xs, carry


def reference_padded(name, params, xs, carry, lengths, reverse):
    """`reference` on each sequence's valid steps (read backwards if `reverse`), zeros after."""
    ys, finals = np.zeros((BATCH, TIME, HIDDEN)), []
    for n, length in enumerate(lengths):
        order = np.arange(length)[::-1] if reverse else np.arange(length)
        if length == 0:
            finals.append(np.asarray(carry[n]))
            continue
        ys_n, final = reference(name, params, np.asarray(xs[n])[order], carry[n])
        ys[n, order] = ys_n
        finals.append(final)
    return ys, np.stack(finals)


@pytest.mark.parametrize("name,log_space,reverse", [
    ("mingru", True, True), ("minlstm", False, False), ("lru", None, True),
])
def test_sequential_and_parallel_paths_follow_the_equations(name, log_space, reverse, key, x64):
    """Under padding (one sequence of length 0) and reverse, from a random initial carry."""
    cell, params, xs, carry = setup(name, key)
    lengths = jnp.asarray(LENGTHS)
    sequential = jax.jit(functools.partial(unroll, cell, reverse=reverse, backward="autodiff"))
    parallel = jax.jit(functools.partial(parallel_unroll, cell, reverse=reverse,
                                         log_space=log_space))
    expected_ys, expected_final = reference_padded(name, params, xs, carry, LENGTHS, reverse)
    for ys, final in (sequential(params, xs, carry=carry, lengths=lengths),
                      parallel(params, xs, carry=carry, lengths=lengths)):
        np.testing.assert_allclose(ys, expected_ys, rtol=1e-11, atol=1e-12)
        np.testing.assert_allclose(final, expected_final, rtol=1e-11, atol=1e-12)
        np.testing.assert_array_equal(final[2], carry[2])  # length 0: the carry as it came


@pytest.mark.parametrize("name,reverse", [("mingru", True), ("minlstm", False), ("lru", True)])
def test_parallel_gradients_equal_autodiff_of_the_sequential_scan(name, reverse, key, x64):
    cell, params, xs, carry = setup(name, key)
    lengths = jnp.asarray(LENGTHS)
    weights = jax.random.normal(jax.random.fold_in(key, 7), (BATCH, TIME, HIDDEN), jnp.float64)

    def loss(run, params, xs, carry):
        ys, final = run(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
        return jnp.sum(weights * jnp.sin(ys)) + jnp.sum(jnp.abs(final) ** 2)

    grad = lambda run: jax.jit(jax.grad(functools.partial(loss, run), argnums=(0, 1, 2)))
    expected = grad(functools.partial(unroll, backward="autodiff"))(params, xs, carry)
    received = grad(parallel_unroll)(params, xs, carry)
    for got, want in zip(jax.tree.leaves(received), jax.tree.leaves(expected)):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("module", [mingru, minlstm])
def test_log_coefficients_equal_the_plain_ones_and_the_closed_form(module, x64):
    # pre-activations far into both tails and across g's switch at 0
    width = 2 if module is mingru else 3  # gates per hidden unit
    x_proj = jnp.linspace(-30.0, 30.0, 97 * width * 2, dtype=jnp.float64).reshape(97, -1)
    x_proj = jax.random.permutation(jax.random.key(3), x_proj, axis=1, independent=True)
    gates = np.split(np.asarray(x_proj), width, axis=-1)
    if module is mingru:  # 1 - z = 1 / (1 + e^k_z), z = 1 / (1 + e^-k_z)
        a, z = 1 / (1 + np.exp(gates[0])), 1 / (1 + np.exp(-gates[0]))
    else:  # f' = f / (f + i), i' = i / (f + i)
        f, i = sigmoid(gates[0]), sigmoid(gates[1])
        a, z = f / (f + i), i / (f + i)
    b = z * g_reference(gates[-1])
    for received_a, received_b in (module.coefficients(None, x_proj),
                                   jax.tree.map(jnp.exp, module.log_coefficients(None, x_proj))):
        np.testing.assert_allclose(received_a, a, rtol=1e-13, atol=1e-300)
        np.testing.assert_allclose(received_b, b, rtol=1e-13, atol=1e-300)
    v = np.linspace(-5, 5, 101)
    np.testing.assert_allclose(mingru.g(v), g_reference(v), rtol=1e-15)
    assert (mingru.g(v) > 0).all() and abs(mingru.g(1e-12) - mingru.g(-1e-12)) < 1e-11


def test_lru_ring_initialisation(key, x64):
    r_min, r_max, max_phase = 0.4, 0.9, math.pi / 3
    params = lru.init(key, IN, HIDDEN, state_size=4000, dtype=jnp.float64, r_min=r_min,
                      r_max=r_max, max_phase=max_phase)
    lam = np.asarray(lru.eigenvalues(params))
    radius, phase = np.abs(lam), np.exp(np.asarray(params.theta_log))
    assert radius.min() >= r_min and radius.max() <= r_max
    assert phase.min() >= 0.0 and phase.max() <= max_phase
    np.testing.assert_allclose(np.angle(lam) % (2 * np.pi), phase, rtol=1e-12)
    np.testing.assert_allclose(np.exp(params.gamma_log), np.sqrt(1 - radius**2), rtol=1e-12)
    # uniform on the ring by area: |lambda|^2 uniform on [r_min^2, r_max^2]; phase uniform
    stderr = (r_max**2 - r_min**2) / math.sqrt(12 * radius.size)
    assert abs(np.mean(radius**2) - (r_min**2 + r_max**2) / 2) < 5 * stderr
    assert abs(np.mean(phase) - max_phase / 2) < 5 * max_phase / math.sqrt(12 * phase.size)


def test_unbatched_equals_batched(key, x64):
    cell, params, xs, carry = setup("lru", key)
    run = jax.jit(functools.partial(parallel_unroll, cell))
    ys, final = run(params, xs[0], carry=carry[0])
    ys_batched, final_batched = run(params, xs, carry=carry)
    np.testing.assert_allclose(ys, ys_batched[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final, final_batched[0], rtol=1e-12, atol=1e-12)


def test_the_default_unroll_keeps_them_on_autodiff(key):
    for name in LINEAR:
        cell = get_cell(name)
        params = jax.eval_shape(functools.partial(cell.init, input_size=IN, hidden_size=HIDDEN),
                                key)  # shapes suffice: the path is chosen at trace time
        assert cell.bptt_kernel is None and engine.usable_kernel(cell, (params,)) is None
        xs = jax.ShapeDtypeStruct((2, 3, IN), jnp.float32)
        assert "custom_vjp" not in str(jax.make_jaxpr(
            lambda p, x: unroll(cell, p, x)[0])(params, xs))


def test_bad_input_raises(key):
    cell, params, xs, carry = setup("mingru", key, jnp.float32)
    with pytest.raises(ValueError,
                       match="expected floating-point inputs xs, received dtype complex"):
        parallel_unroll(cell, params, xs.astype(jnp.complex64))
    complex_params = params._replace(U=params.U.astype(jnp.complex64))
    with pytest.raises(ValueError, match="mingru: expected real floating params, received U of"):
        parallel_unroll(cell, complex_params, xs)
    with pytest.raises(ValueError, match="mingru: expected carry leaves.*received.*complex64"):
        parallel_unroll(cell, params, xs, carry=carry.astype(jnp.complex64))
    with pytest.raises(ValueError, match=r"expected lengths in \[0, 6\].*max 7"):
        parallel_unroll(cell, params, xs, lengths=jnp.array([7, 1, 1]))
    with pytest.raises(ValueError, match=r"expected lengths of shape \(3,\), received \(2,\)"):
        parallel_unroll(cell, params, xs, lengths=jnp.array([1, 1]))
    with pytest.raises(ValueError, match="expected integer lengths, received dtype float32"):
        parallel_unroll(cell, params, xs, lengths=jnp.ones(3))
    gru = get_cell("gru")
    with pytest.raises(ValueError, match="expected a linear-recurrence cell.*received cell 'gru'"):
        parallel_unroll(gru, gru.init(key, IN, HIDDEN), xs)
    lru_cell = get_cell("lru")
    with pytest.raises(ValueError, match="lru: expected log_space False or None.*received True"):
        parallel_unroll(lru_cell, lru_cell.init(key, IN, HIDDEN), xs, log_space=True)
    with pytest.raises(ValueError, match="lru: expected 0 <= r_min <= r_max <= 1, received"):
        lru.init(key, IN, HIDDEN, r_min=0.9, r_max=0.5)
