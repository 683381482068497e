"""Per-cell pieces of the hand-written BPTT: one forward step, one backward step, and the
parameter gradients as sums over time (one large matmul each, after the reverse scan).

The vanilla kernel is the general form of the notes' derivation in `rnn_jax.bptt.notes`
(there for the tanh RNN with softmax outputs, here for any nonlinearity and any loss: the
loss enters as the cotangent of the outputs); the LSTM and GRU kernels apply the same rule to
their gates. `rnn_jax.bptt.engine` runs them under `jax.custom_vjp`.

Every kernel is a `Kernel` of pure functions; arrays may carry any leading axes (one step
`[batch, ...]`, or all steps `[time, batch, ...]` at once when gates are recomputed):

    forward(params, carry_prev, x_proj) -> (carry, saved)       saved: what backward needs
    backward_weights(params) -> weights       the recurrent weights transposed (W^T), made
                                              once before the reverse scan
    backward(weights, saved, carry_prev, carry, dcarry) -> (dcarry_prev, delta)
    param_grads(params, carries_prev, saved, deltas) -> grads    (params-shaped; U, b zero)
    output(carry) -> h                                           the emitted output h(t)
    add_output_grad(dcarry, dh) -> dcarry                        dL/dh(t) joins the carry's

`delta(t)` is dL/d(pre-activation) of the fused gates, i.e. dL/dx_proj(t); the input-weight
and bias gradients follow from it through the input projection's VJP (one matmul over all
steps), as the notes derive: dL/dW = sum_t h(t-1)^T delta(t), dL/dU = sum_t x(t)^T delta(t).

Gate nonlinearities use one tanh for all gates: sigma(x) = (1 + tanh(x / 2)) / 2.

The reverse step's `delta(t) @ W^T` multiplies by a W^T materialised once (`backward_weights`)
rather than by W with a transposed contraction: the transpose is paid once, outside the loop,
and XLA:CPU's per-step dot is no slower for it (measured in benchmarks/README.md, "tried and
rejected").
"""

from functools import lru_cache
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.cells import gru, lstm, vanilla
from rnn_jax.cells.base import ACTIVATIONS


class Kernel(NamedTuple):
    name: str
    forward: Callable[..., Any]
    backward_weights: Callable[[Any], Any]
    backward: Callable[..., Any]
    param_grads: Callable[..., Any]
    output: Callable[[Any], jax.Array]
    add_output_grad: Callable[[Any, jax.Array], Any]


def _row(v: jax.Array, like: jax.Array) -> jax.Array:
    """Broadcasts a `[features]` vector against `like: [..., features]` (explicit ranks)."""
    return jnp.broadcast_to(v, like.shape)


def _sum_outer(a: jax.Array, b: jax.Array) -> jax.Array:
    """sum over all leading axes of a^T b: `[..., m], [..., n] -> [m, n]`, one matmul."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def _sigmoid(z: jax.Array) -> jax.Array:
    return 0.5 * jnp.tanh(0.5 * z) + 0.5  # sigma(z) = (1 + tanh(z/2)) / 2


# ---- LSTM, gates (i, f, g, o); saved = (i, f, g, o, tanh(c(t))), five [.., H] arrays ----
# Saved as separate arrays, not one [.., 4H] `act`: XLA:CPU compiles a loop fusion that reads
# several column slices of one scanned array into slower code than one reading whole arrays
# (measured in benchmarks/README.md).


def _lstm_scale(hidden: int, dtype) -> jax.Array:
    """1/2 on the sigmoid gates (i, f, o), 1 on the candidate g: act = s tanh(s z) + 1 - s."""
    half = jnp.full((hidden,), 0.5, dtype)
    return jnp.concatenate([half, half, jnp.ones((hidden,), dtype), half])


def _lstm_forward(params: lstm.LSTMParams, carry: lstm.LSTMState, x_proj: jax.Array):
    z = x_proj + carry.h @ params.W  # [.., 4H] pre-activations of (i, f, g, o)
    scale = _row(_lstm_scale(params.W.shape[0], z.dtype), z)
    act = scale * jnp.tanh(scale * z) + (1.0 - scale)  # one tanh for all four gates
    i, f, g, o = lstm.split_gates(act)
    c = f * carry.c + i * g  # c(t) = f c(t-1) + i g
    tanh_c = jnp.tanh(c)
    return lstm.LSTMState(h=o * tanh_c, c=c), (i, f, g, o, tanh_c)


def _lstm_backward(W_T: jax.Array, saved, carry_prev, carry, dcarry):
    del carry
    i, f, g, o, tanh_c = saved
    dc = dcarry.c + dcarry.h * o * (1.0 - tanh_c * tanh_c)  # dL/dc(t), through h = o tanh(c)
    # delta = dL/d(pre-activations): sigma' = s (1 - s) for i, f, o; tanh' = 1 - g^2 for g
    delta = jnp.concatenate(
        [
            dc * g * (i * (1.0 - i)),
            dc * carry_prev.c * (f * (1.0 - f)),
            dc * i * (1.0 - g * g),
            dcarry.h * tanh_c * (o * (1.0 - o)),
        ],
        axis=-1,
    )
    return lstm.LSTMState(h=delta @ W_T, c=dc * f), delta  # W_T: [4H, H]


def _lstm_param_grads(params, carries_prev, saved, deltas):
    del saved
    return lstm.LSTMParams(
        U=jnp.zeros_like(params.U), W=_sum_outer(carries_prev.h, deltas), b=jnp.zeros_like(params.b)
    )


LSTM = Kernel(
    "lstm",
    _lstm_forward,
    lambda params: params.W.T,
    _lstm_backward,
    _lstm_param_grads,
    output=lambda carry: carry.h,
    add_output_grad=lambda dcarry, dh: dcarry._replace(h=dcarry.h + dh),
)


# ---- GRU, gates (r, z, n); saved = (r, z, n) ----


def _gru_forward(params: gru.GRUParams, h_prev: jax.Array, x_proj: jax.Array):
    hidden = params.W_n.shape[0]
    rz = _sigmoid(x_proj[..., : 2 * hidden] + h_prev @ params.W)
    r, z = rz[..., :hidden], rz[..., hidden:]
    n = jnp.tanh(x_proj[..., 2 * hidden :] + (r * h_prev) @ params.W_n)  # candidate h~(t)
    h = z * h_prev + (1.0 - z) * n  # h(t) = z h(t-1) + (1 - z) h~(t)
    return h, (r, z, n)


def _gru_backward(weights, saved, h_prev, h, dh):
    del h
    W_T, W_n_T = weights  # [2H, H], [H, H]
    r, z, n = saved
    d_n = dh * (1.0 - z) * (1.0 - n * n)  # dL/d(pre-activation of the candidate)
    d_rh = d_n @ W_n_T  # dL/d(r * h(t-1))
    d_rz = jnp.concatenate(
        [d_rh * h_prev * r * (1.0 - r), dh * (h_prev - n) * z * (1.0 - z)], axis=-1
    )
    dh_prev = dh * z + d_rh * r + d_rz @ W_T
    return dh_prev, jnp.concatenate([d_rz, d_n], axis=-1)


def _gru_param_grads(params, carries_prev, saved, deltas):
    r = saved[0]
    hidden = params.W_n.shape[0]
    return gru.GRUParams(
        U=jnp.zeros_like(params.U),
        W=_sum_outer(carries_prev, deltas[..., : 2 * hidden]),
        W_n=_sum_outer(r * carries_prev, deltas[..., 2 * hidden :]),
        b=jnp.zeros_like(params.b),
    )


GRU = Kernel(
    "gru",
    _gru_forward,
    lambda params: (params.W.T, params.W_n.T),
    _gru_backward,
    _gru_param_grads,
    output=lambda h: h,
    add_output_grad=lambda dh_carry, dh: dh_carry + dh,
)


# ---- vanilla, s(t) = phi(x_proj + s(t-1) W); phi' from the output s(t) ----



@lru_cache(maxsize=None)
def vanilla_kernel(activation: str) -> Kernel | None:
    """The kernel for a vanilla cell with nonlinearity `activation` (None if unknown)."""
    if activation not in ACTIVATIONS:
        return None
    phi, phi_prime, _ = ACTIVATIONS[activation]  # phi' written from the output s(t)

    def forward(params: vanilla.VanillaParams, s_prev, x_proj):
        return phi(x_proj + s_prev @ params.W), ()

    def backward(W_T, saved, s_prev, s, ds):
        del saved, s_prev
        delta = ds * phi_prime(s)  # dL/da(t) = phi'(a(t)) dL/ds(t)
        return delta @ W_T, delta

    def param_grads(params, carries_prev, saved, deltas):
        del saved
        return vanilla.VanillaParams(
            U=jnp.zeros_like(params.U),
            W=_sum_outer(carries_prev, deltas),
            b=jnp.zeros_like(params.b),
        )

    return Kernel(
        f"vanilla_{activation}",
        forward,
        lambda params: params.W.T,
        backward,
        param_grads,
        output=lambda s: s,
        add_output_grad=lambda ds_carry, ds: ds_carry + ds,
    )


def kernel_for(cell, params) -> Kernel | None:
    """The hand-written kernel for `cell`, or None when it has none (autodiff is used).

    A kernel replaces the cell's `step` and is fed by its `project_inputs`, so it is chosen only
    when both are the library's own function objects (by identity, never by name): a cell with
    a replaced `step` or `project_inputs` runs its own functions through autodiff.
    """
    if isinstance(params, lstm.LSTMParams):
        own = cell.step is lstm.step and cell.project_inputs is lstm.project_inputs
        return LSTM if own else None
    if isinstance(params, gru.GRUParams):
        own = cell.step is gru.step and cell.project_inputs is gru.project_inputs
        return GRU if own else None
    if isinstance(params, vanilla.VanillaParams) and cell.project_inputs is vanilla.project_inputs:
        for activation in ACTIVATIONS:
            if cell.step is vanilla.step_for(activation):
                return vanilla_kernel(activation)
    return None
