"""The associative-scan helper against a plain Python loop over time (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnn_jax.parallel import linear_scan as helpers

# jitted: one compile per case instead of dispatching every op of the scan's tree
linear_scan = jax.jit(helpers.linear_scan, static_argnames="reverse")
log_linear_scan = jax.jit(helpers.log_linear_scan, static_argnames="reverse")

TIME, BATCH, D = 7, 3, 4
LENGTHS = np.array([7, 4, 0])


def loop_reference(a, b, h0, lengths, reverse):
    """The recurrence one step at a time, per sequence, on its valid prefix (NumPy)."""
    a, b, h0 = map(np.asarray, (a, b, h0))
    hs = np.zeros(np.broadcast_shapes(a.shape, b.shape), np.result_type(a, b, h0))
    finals = []
    for n, length in enumerate(lengths):
        h = h0[n]
        order = range(length - 1, -1, -1) if reverse else range(length)
        for t in order:
            h = a[t, n] * h + b[t, n]
            hs[t, n] = h
        finals.append(h)
    return hs, np.stack(finals)


def operands(key, dtype=jnp.float64):
    k_a, k_b, k_h, k_i = jax.random.split(key, 4)
    shape = (TIME, BATCH, D)
    a = jax.random.uniform(k_a, shape, jnp.float64, -1.1, 1.1)
    b = jax.random.normal(k_b, shape, jnp.float64)
    h0 = jax.random.normal(k_h, shape[1:], jnp.float64)
    if jnp.issubdtype(dtype, jnp.complexfloating):
        phase_a, b_im, h0_im = jax.random.normal(k_i, (3, *shape), jnp.float64)
        a = a * jnp.exp(1j * phase_a)
        b, h0 = b + 1j * b_im, h0 + 1j * h0_im[0]
    return a, b, h0


def mask_of(lengths):
    return jnp.arange(TIME)[:, None] < jnp.asarray(lengths)[None, :]  # [time, batch]


@pytest.mark.parametrize("dtype,reverse,padded", [
    (jnp.float64, False, False), (jnp.float64, True, True),
    (jnp.complex128, False, True), (jnp.complex128, True, False),
])
def test_linear_scan_equals_a_python_loop(dtype, reverse, padded, key, x64):
    a, b, h0 = operands(key, dtype)
    lengths = LENGTHS if padded else np.full(BATCH, TIME)
    mask = mask_of(lengths) if padded else None
    hs, final = linear_scan(a, b, h0, mask=mask, reverse=reverse)
    expected_hs, expected_final = loop_reference(a, b, h0, lengths, reverse)
    np.testing.assert_allclose(hs, expected_hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final, expected_final, rtol=1e-12, atol=1e-12)


def test_zero_initial_state_is_the_default(key, x64):
    a, b, _ = operands(key)
    hs, final = linear_scan(a, b)
    expected_hs, expected_final = loop_reference(a, b, np.zeros((BATCH, D)), [TIME] * BATCH, False)
    np.testing.assert_allclose(hs, expected_hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final, expected_final, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("reverse", [False, True])
def test_log_space_equals_the_plain_recurrence(reverse, key, x64):
    a, b, h0 = operands(key)
    a, b = jnp.abs(a) / 1.2, jnp.abs(b)  # log space needs a > 0, b >= 0; h0 any sign
    mask = mask_of(LENGTHS)
    hs, final = log_linear_scan(jnp.log(a), jnp.log(b), h0, mask=mask, reverse=reverse)
    expected_hs, expected_final = loop_reference(a, b, h0, LENGTHS, reverse)
    np.testing.assert_allclose(hs, expected_hs, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(final, expected_final, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("log,reverse", [(False, False), (True, True)])
def test_gradients_match_finite_differences_under_padding(log, reverse, key, x64):
    a, b, h0 = operands(key)
    mask = mask_of(LENGTHS)
    if log:
        a, b = jnp.log(jnp.abs(a) / 1.2), jnp.log(jnp.abs(b))
    scan = log_linear_scan if log else linear_scan

    def loss(a, b, h0):
        hs, final = scan(a, b, h0, mask=mask, reverse=reverse)
        return jnp.sum(jnp.sin(hs)) + jnp.sum(final**2)

    check_grads(loss, (a, b, h0), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)
    assert all(np.isfinite(g).all() for g in jax.grad(loss, (0, 1, 2))(a, b, h0))


def test_empty_time_axis_returns_the_initial_state(key, x64):
    a, b, h0 = operands(key)
    hs, final = linear_scan(a[:0], b[:0], h0)
    assert hs.shape == (0, BATCH, D)
    np.testing.assert_array_equal(final, h0)


def test_bad_operands_raise():
    a, b, h0 = jnp.ones((TIME, BATCH, D)), jnp.ones((TIME, BATCH, D)), jnp.ones((BATCH, D))
    with pytest.raises(ValueError, match="expected a and b of one shape"):
        linear_scan(a[:, :, :2], b)
    with pytest.raises(ValueError, match="expected a floating or complex a, received dtype int"):
        linear_scan(jnp.ones(b.shape, jnp.int32), b)
    with pytest.raises(ValueError, match=r"expected a boolean mask of shape \(7, 3\)"):
        linear_scan(a, b, mask=jnp.ones((TIME, BATCH), jnp.int32))
    with pytest.raises(ValueError, match=r"expected a boolean mask of shape \(7, 3\)"):
        linear_scan(a, b, mask=jnp.ones((BATCH, TIME), bool))
    with pytest.raises(ValueError, match=r"expected h0 of shape \(3, 4\)"):
        linear_scan(a, b, h0[:, :2])
    with pytest.raises(ValueError, match="expected a real floating log_a.*received dtype complex"):
        log_linear_scan(a.astype(jnp.complex64), b.astype(jnp.complex64))
