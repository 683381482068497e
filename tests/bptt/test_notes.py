"""The hand-derived BPTT against autodiff, a Python loop and finite differences (float64)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax.test_util import check_grads

from rnn_jax import bptt, readout, unroll
from rnn_jax.cells import get_cell, vanilla

BATCH, TIME, IN, HIDDEN, OUT = 3, 7, 2, 5, 4


def problem(key, dtype=jnp.float64, spectral_radius=1.3):
    """Random params (nonzero biases), inputs, labels, a ragged mask and an initial state."""
    keys = jax.random.split(key, 7)
    params = vanilla.init(keys[0], IN, HIDDEN, dtype=dtype, spectral_radius=spectral_radius)
    params = params._replace(b=0.3 * jax.random.normal(keys[1], (HIDDEN,), dtype))
    head = readout.init_linear(keys[2], HIDDEN, OUT, dtype=dtype)
    head = head._replace(c=0.3 * jax.random.normal(keys[3], (OUT,), dtype))
    xs = jax.random.normal(keys[4], (BATCH, TIME, IN), dtype)
    labels = jax.random.randint(keys[5], (BATCH, TIME), 0, OUT)
    mask = jnp.arange(TIME)[None, :] < jnp.array([TIME, 4, 1])[:, None]
    h0 = 0.5 * jax.random.normal(keys[6], (BATCH, HIDDEN), dtype)
    return params, head, xs, labels, mask, h0


def assert_relative_close(actual, expected, rtol=1e-10):
    for a, e in zip(jax.tree.leaves(actual), jax.tree.leaves(expected)):
        scale = max(float(jnp.max(jnp.abs(e))), 1e-30)
        assert float(jnp.max(jnp.abs(a - e))) / scale <= rtol


@pytest.mark.parametrize(
    "reduction,use_mask,use_h0", [("sum", False, False), ("sum", True, True), ("mean", True, False)]
)
def test_hand_bptt_equals_autodiff(reduction, use_mask, use_h0, key, x64):
    params, head, xs, labels, mask, h0 = problem(key)
    options = dict(
        mask=mask if use_mask else None, h0=h0 if use_h0 else None, reduction=reduction
    )
    L, grads, _ = jax.jit(lambda p, r: bptt.bptt(p, r, xs, labels, **options))(params, head)
    h0_or_zeros = h0 if use_h0 else jnp.zeros((BATCH, HIDDEN))
    autodiff = jax.jit(jax.grad(
        lambda p, r, s0: bptt.loss(p, r, xs, labels, **{**options, "h0": s0}), argnums=(0, 1, 2)
    ))(params, head, h0_or_zeros)
    assert_relative_close(grads.cell, autodiff[0])
    assert_relative_close(grads.readout, autodiff[1])
    assert_relative_close(grads.h0, autodiff[2])
    np.testing.assert_allclose(L, bptt.loss(params, head, xs, labels, **options), rtol=1e-13)


def test_forward_matches_library_unroll_and_readout(key, x64):
    params, head, xs, _, _, h0 = problem(key)
    s, o = bptt.forward(params, head, xs, h0)
    ys, _ = unroll(get_cell("vanilla", activation="tanh"), params, xs, carry=h0)
    np.testing.assert_allclose(s, ys, rtol=1e-13)
    np.testing.assert_allclose(o, readout.linear(head, ys), rtol=1e-13)


def test_dL_ds_equals_gradient_of_python_loop_with_state_perturbations(key, x64):
    """dL/ds(t) from the recursion equals d/d eps(t) of a per-step loop where s(t) += eps(t)."""
    params, head, xs, labels, mask, h0 = problem(key)

    def loop_loss(eps):
        s, total = h0, 0.0
        for t in range(TIME):
            s = jnp.tanh(xs[:, t] @ params.U + params.b[None] + s @ params.W) + eps[:, t]
            log_p = jax.nn.log_softmax(s @ head.V + head.c[None])
            total -= jnp.sum(mask[:, t] * jnp.take_along_axis(log_p, labels[:, t, None], 1)[:, 0])
        return total

    _, _, dL_ds = bptt.bptt(params, head, xs, labels, mask=mask, h0=h0)
    expected = jax.grad(loop_loss)(jnp.zeros((BATCH, TIME, HIDDEN)))
    assert_relative_close(dL_ds, expected)


def test_custom_vjp_loss_gives_the_autodiff_gradient_under_jit(key, x64):
    params, head, xs, labels, mask, h0 = problem(key)

    def grads(loss_fn):
        fn = lambda p, r, x, s0: loss_fn(p, r, x, labels, mask=mask, h0=s0, reduction="mean")
        return jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2, 3)))(params, head, xs, h0)

    (hand_value, hand), (auto_value, auto) = grads(bptt.loss_hand_bptt), grads(bptt.loss)
    np.testing.assert_allclose(hand_value, auto_value, rtol=1e-13)
    assert_relative_close(hand, auto)


def test_custom_vjp_loss_matches_finite_differences(key, x64):
    params, head, xs, labels, mask, h0 = problem(key)
    fn = lambda p, r, x, s0: bptt.loss_hand_bptt(p, r, x, labels, mask=mask, h0=s0)
    check_grads(fn, (params, head, xs, h0), order=1, modes=["rev"], eps=1e-6, atol=1e-6, rtol=1e-6)


def test_training_with_hand_bptt_follows_the_autodiff_trajectory(key, x64):
    params, head, xs, labels, _, _ = problem(key, spectral_radius=1.0)
    optimizer = optax.adam(0.05)

    def train(loss_fn, steps=30):
        fn = lambda pr: loss_fn(pr[0], pr[1], xs, labels, reduction="mean")
        state = ((params, head), optimizer.init((params, head)))

        @jax.jit
        def update(state, _):
            p, opt_state = state
            value, grads = jax.value_and_grad(fn)(p)
            changes, opt_state = optimizer.update(grads, opt_state, p)
            return (optax.apply_updates(p, changes), opt_state), value

        (p, _), losses = jax.lax.scan(update, state, None, length=steps)
        return p, losses

    hand_params, hand_losses = train(bptt.loss_hand_bptt)
    auto_params, auto_losses = train(bptt.loss)
    assert float(hand_losses[-1]) < 0.7 * float(hand_losses[0])
    np.testing.assert_allclose(hand_losses, auto_losses, rtol=1e-9)
    assert_relative_close(hand_params, auto_params, rtol=1e-9)


def test_float32_gradients_close_to_autodiff(key):
    params, head, xs, labels, mask, _ = problem(key, dtype=jnp.float32)
    hand = jax.jit(jax.grad(lambda p: bptt.loss_hand_bptt(p, head, xs, labels, mask=mask)))(params)
    auto = jax.jit(jax.grad(lambda p: bptt.loss(p, head, xs, labels, mask=mask)))(params)
    assert_relative_close(hand, auto, rtol=1e-5)


@pytest.mark.parametrize(
    "change,match",
    [
        (lambda a: {**a, "xs": a["xs"][0]}, "expected xs of shape"),
        (lambda a: {**a, "labels": a["labels"].astype(jnp.float32)}, "integer labels"),
        (lambda a: {**a, "labels": a["labels"][:, :3]}, "integer labels of shape"),
        (lambda a: {**a, "mask": a["mask"][:2]}, "expected mask of shape"),
        (lambda a: {**a, "h0": a["h0"][:, :2]}, "expected h0 of shape"),
        (lambda a: {**a, "reduction": "max"}, "expected reduction"),
    ],
)
def test_bad_input_raises(change, match, key):
    params, head, xs, labels, mask, h0 = problem(key, dtype=jnp.float32)
    arguments = dict(xs=xs, labels=labels, mask=mask, h0=h0, reduction="sum")
    arguments = change(arguments)
    for fn in (bptt.loss, bptt.loss_hand_bptt):
        with pytest.raises(ValueError, match=match):
            fn(params, head, **arguments)
    with pytest.raises(ValueError, match=match):
        bptt.bptt(params, head, **arguments)
