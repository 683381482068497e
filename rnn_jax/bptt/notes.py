"""Backpropagation through time by hand, for the notes' vanilla tanh RNN with softmax outputs.

The same derivation, general over cells and losses, runs as per-cell kernels (each cell's
`bptt_kernel`, e.g. `rnn_jax.cells.vanilla.bptt_kernel`) under `jax.custom_vjp` in
`rnn_jax.bptt.engine` (the default backward pass of `rnn_jax.unroll`).

Forward (the notes' equations; row-vector convention, matrices `[in, out]`):

    a(t) = b + W s(t-1) + U x(t)        s(t) = tanh(a(t))
    o(t) = c + V s(t)                   y_hat(t) = softmax(o(t))
    L = sum_t weight(t) L(t),           L(t) = -log y_hat(t)[y(t)]

Backward, as the notes derive it, one reverse-time `jax.lax.scan`:

    dL/do(t) = weight(t) (y_hat(t) - onehot(y(t)))
    dL/ds(T) = V^T dL/do(T)
    dL/ds(t) = W^T diag(1 - s(t+1)^2) dL/ds(t+1) + V^T dL/do(t)
    dL/da(t) = diag(1 - s(t)^2) dL/ds(t)

and the parameter gradients are sums over time:

    dL/dV = sum_t s(t) dL/do(t)^T        dL/dc = sum_t dL/do(t)
    dL/dW = sum_t s(t-1) dL/da(t)^T      dL/db = sum_t dL/da(t)
    dL/dU = sum_t x(t) dL/da(t)^T        dL/ds(0) = W^T dL/da(1)

`loss` is differentiated by `jax.grad`; `loss_hand_bptt` is the same function whose gradient is
the hand derivation above (`jax.custom_vjp`), so either can be trained and timed. The per-step
weights come from `mask` and `reduction` ("sum": the notes' L = sum_t L(t), summed over the
batch too; "mean": averaged over valid steps, as `rnn_jax.losses` does).
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.cells import vanilla
from rnn_jax.cells.base import affine
from rnn_jax.cells.vanilla import VanillaParams
from rnn_jax.readout import LinearParams


class BPTTGrads(NamedTuple):
    """The hand-derived gradients; `h0` is dL/ds(0), the gradient for the initial state."""

    cell: VanillaParams
    readout: LinearParams
    h0: jax.Array  # [batch, hidden]


def _check(params: VanillaParams, readout: LinearParams, xs, labels, h0) -> None:
    vanilla.input_size(params)  # a ValueError unless vanilla params of consistent shapes
    if not isinstance(readout, LinearParams):
        raise ValueError(f"expected LinearParams readout, received {type(readout).__name__}")
    if xs.ndim != 3 or xs.shape[-1] != params.U.shape[0]:
        raise ValueError(
            f"expected xs of shape [batch, time, {params.U.shape[0]}], received {xs.shape}"
        )
    if labels.shape != xs.shape[:2] or not jnp.issubdtype(labels.dtype, jnp.integer):
        raise ValueError(
            f"expected integer labels of shape {xs.shape[:2]} [batch, time], received "
            f"{labels.dtype} {labels.shape}"
        )
    if readout.V.shape[0] != params.W.shape[0]:
        raise ValueError(
            f"expected readout V with {params.W.shape[0]} rows (hidden size), received "
            f"{readout.V.shape}"
        )
    if h0 is not None and h0.shape != (xs.shape[0], params.W.shape[0]):
        raise ValueError(
            f"expected h0 of shape {(xs.shape[0], params.W.shape[0])}, received {h0.shape}"
        )


def step_weights(labels: jax.Array, mask: jax.Array | None, reduction: str) -> jax.Array:
    """Per-step loss weights `[batch, time]` from a 0/1 `mask` and the `reduction`."""
    if reduction not in ("sum", "mean"):
        raise ValueError(f"expected reduction 'sum' or 'mean', received {reduction!r}")
    if mask is not None and mask.shape != labels.shape:
        raise ValueError(f"expected mask of shape {labels.shape}, received {mask.shape}")
    weights = jnp.ones(labels.shape) if mask is None else mask.astype(jnp.result_type(float))
    if reduction == "mean":
        weights = weights / jnp.maximum(jnp.sum(weights), 1.0)
    return weights


def forward(
    params: VanillaParams, readout: LinearParams, xs: jax.Array, h0: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """States and logits: `xs [batch, time, in]`, `h0 [batch, hidden]` -> `s [batch, time,
    hidden]`, `o [batch, time, out]`."""

    def body(s_prev, x_proj):
        s = jnp.tanh(x_proj + s_prev @ params.W)  # s(t) = tanh(b + W s(t-1) + U x(t))
        return s, s

    xs_proj = affine(jnp.swapaxes(xs, 0, 1), params.U, params.b)  # [time, batch, hidden]
    _, s = jax.lax.scan(body, h0, xs_proj)
    s = jnp.swapaxes(s, 0, 1)
    return s, affine(s, readout.V, readout.c)  # o(t) = c + V s(t)


def _forward_losses(params, readout, xs, labels, h0):
    """`s`, `o` and the per-step losses L(t) = -log softmax(o(t))[y(t)], `[batch, time]`."""
    s, o = forward(params, readout, xs, h0)
    per_step = -jnp.take_along_axis(jax.nn.log_softmax(o), labels[..., None], axis=-1)[..., 0]
    return s, o, per_step


def _weighted_loss(params, readout, xs, labels, weights, h0):
    return jnp.sum(weights * _forward_losses(params, readout, xs, labels, h0)[2])


def backward(
    params: VanillaParams,
    readout: LinearParams,
    xs: jax.Array,
    labels: jax.Array,
    weights: jax.Array,
    h0: jax.Array,
    s: jax.Array,
    o: jax.Array,
) -> tuple[BPTTGrads, jax.Array, jax.Array]:
    """The notes' backward pass from the forward's `s` and `o`.

    Args:
      xs: `[batch, time, in]`; labels: `[batch, time]` ints; weights: `[batch, time]`.
      h0: `[batch, hidden]`; s: `[batch, time, hidden]`; o: `[batch, time, out]`.
    Returns:
      `(grads, dL_ds [batch, time, hidden], dL_dxs [batch, time, in])`.
    """
    y_hat = jax.nn.softmax(o)
    onehot = jax.nn.one_hot(labels, o.shape[-1], dtype=o.dtype)
    dL_do = weights[..., None] * (y_hat - onehot)  # dL/do(t) = y_hat(t) - onehot(y(t))
    from_output = dL_do @ readout.V.T  # V^T dL/do(t), [batch, time, hidden]

    def body(dL_da_next, inputs):
        from_output_t, s_t = inputs
        # dL/ds(t) = W^T diag(1 - s(t+1)^2) dL/ds(t+1) + V^T dL/do(t); diag(...) dL/ds(t+1)
        # is dL/da(t+1), zero after the last step.
        dL_ds_t = dL_da_next @ params.W.T + from_output_t
        dL_da_t = (1.0 - s_t**2) * dL_ds_t  # dL/da(t) = diag(1 - s(t)^2) dL/ds(t)
        return dL_da_t, (dL_ds_t, dL_da_t)

    time_major = lambda a: jnp.swapaxes(a, 0, 1)
    dL_da_first, (dL_ds, dL_da) = jax.lax.scan(
        body, jnp.zeros_like(h0), (time_major(from_output), time_major(s)), reverse=True
    )
    dL_ds, dL_da = time_major(dL_ds), time_major(dL_da)
    s_prev = jnp.concatenate([h0[:, None], s[:, :-1]], axis=1)  # s(t-1), with s(0) = h0
    grads = BPTTGrads(
        cell=VanillaParams(
            U=jnp.einsum("bti,bth->ih", xs, dL_da),  # sum_t x(t) dL/da(t)^T
            W=jnp.einsum("btj,bth->jh", s_prev, dL_da),  # sum_t s(t-1) dL/da(t)^T
            b=jnp.sum(dL_da, axis=(0, 1)),  # sum_t dL/da(t)
        ),
        readout=LinearParams(
            V=jnp.einsum("bth,bto->ho", s, dL_do),  # sum_t s(t) dL/do(t)^T
            c=jnp.sum(dL_do, axis=(0, 1)),  # sum_t dL/do(t)
        ),
        h0=dL_da_first @ params.W.T,  # dL/ds(0) = W^T dL/da(1)
    )
    return grads, dL_ds, dL_da @ params.U.T


def bptt(
    params: VanillaParams,
    readout: LinearParams,
    xs: jax.Array,
    labels: jax.Array,
    *,
    mask: jax.Array | None = None,
    h0: jax.Array | None = None,
    reduction: str = "sum",
) -> tuple[jax.Array, BPTTGrads, jax.Array]:
    """Loss, hand-derived gradients and every dL/ds(t), from one forward and one backward scan.

    Args:
      params: vanilla tanh cell params (U [in, hidden], W [hidden, hidden], b [hidden]).
      readout: linear readout params (V [hidden, out], c [out]).
      xs: `[batch, time, in]` inputs; labels: `[batch, time]` integer targets y(t).
      mask: optional `[batch, time]`, 0 on steps that carry no loss.
      h0: optional `[batch, hidden]` initial state s(0) (zeros when None).
      reduction: "sum" (the notes' L) or "mean" over valid steps.
    Returns:
      `(L, grads, dL_ds [batch, time, hidden])`.
    """
    h0 = jnp.zeros((xs.shape[0], params.W.shape[0]), xs.dtype) if h0 is None else h0
    _check(params, readout, xs, labels, h0)
    weights = step_weights(labels, mask, reduction).astype(xs.dtype)
    s, o, per_step = _forward_losses(params, readout, xs, labels, h0)
    grads, dL_ds, _ = backward(params, readout, xs, labels, weights, h0, s, o)
    return jnp.sum(weights * per_step), grads, dL_ds


@jax.custom_vjp
def _weighted_loss_hand(params, readout, xs, labels, weights, h0):
    return _weighted_loss(params, readout, xs, labels, weights, h0)


def _hand_fwd(params, readout, xs, labels, weights, h0):
    s, o, per_step = _forward_losses(params, readout, xs, labels, h0)
    residuals = (params, readout, xs, labels, weights, h0, s, o, per_step)
    return jnp.sum(weights * per_step), residuals


def _hand_bwd(residuals, dL):
    params, readout, xs, labels, weights, h0, s, o, per_step = residuals
    grads, _, dL_dxs = backward(params, readout, xs, labels, weights, h0, s, o)
    scale = lambda tree: jax.tree.map(lambda g: dL * g, tree)
    # labels are integers: no cotangent (None); dL/dweights(t) = L(t).
    return scale(grads.cell), scale(grads.readout), dL * dL_dxs, None, dL * per_step, dL * grads.h0


_weighted_loss_hand.defvjp(_hand_fwd, _hand_bwd)


def _loss(loss_fn, params, readout, xs, labels, mask, h0, reduction):
    h0 = jnp.zeros((xs.shape[0], params.W.shape[0]), xs.dtype) if h0 is None else h0
    _check(params, readout, xs, labels, h0)
    weights = step_weights(labels, mask, reduction).astype(xs.dtype)
    return loss_fn(params, readout, xs, labels, weights, h0)


def loss(params, readout, xs, labels, *, mask=None, h0=None, reduction="sum") -> jax.Array:
    """`L = sum_t weight(t) L(t)` (arguments as in `bptt`); `jax.grad` differentiates it."""
    return _loss(_weighted_loss, params, readout, xs, labels, mask, h0, reduction)


def loss_hand_bptt(params, readout, xs, labels, *, mask=None, h0=None, reduction="sum"):
    """The same loss as `loss`, but `jax.grad` of it runs the hand-derived backward scan."""
    return _loss(_weighted_loss_hand, params, readout, xs, labels, mask, h0, reduction)
