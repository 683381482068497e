"""Long short-term memory (Hochreiter & Schmidhuber 1997; forget gate: Gers et al. 2000).

    i(t) = sigma(U_i x(t) + W_i h(t-1) + b_i)       input gate
    f(t) = sigma(U_f x(t) + W_f h(t-1) + b_f)       forget gate
    g(t) = tanh (U_g x(t) + W_g h(t-1) + b_g)       candidate
    o(t) = sigma(U_o x(t) + W_o h(t-1) + b_o)       output gate
    c(t) = f(t) * c(t-1) + i(t) * g(t)
    h(t) = o(t) * tanh(c(t))

Fused weights, gate order (i, f, g, o) along the last axis (PyTorch's order):
U: [in, 4*hidden], W: [hidden, 4*hidden], b: [4*hidden]. The forget-gate bias starts at
`forget_bias` (default 1.0, Jozefowicz et al. 2015), every other bias at 0.

Fast paths (`cells/fast_paths.py`), written for `step` and carried by the cell:
- `BPTT_KERNEL`: the hand-written BPTT (`unroll`'s default backward). With the gate outputs
  i, f, o (sigmoid), g (tanh) and s' their derivatives (s (1 - s), 1 - g^2):
      dc(t)    = dc + dh o tanh'(c(t))                    (dL/dc(t), through h = o tanh(c))
      delta(t) = [dc g i', dc c(t-1) f', dc i g', dh tanh(c(t)) o']   (gate pre-activations)
      dh(t-1)  = delta(t) W^T,   dc(t-1) = dc(t) f
- `jacobian_diagonal` (quasi-DEER): only d h_i/d h_i(t-1) and d c_i/d c_i(t-1) are on the
  diagonal (`W[k, j]` multiplies h_k into unit j, as `h @ W`):
      d c_i / d c_i(t-1) = f_i
      d h_i / d h_i(t-1) = o'_i Wo_ii tanh(c_i) + o_i tanh'(c_i)
                           * (f'_i Wf_ii c_i(t-1) + i'_i Wi_ii g_i + i_i g'_i Wg_ii)
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, check_step, zeros_carry
from rnn_jax.cells.fast_paths import Kernel, row, sum_outer, with_batch_axes

GATE_ORDER = ("i", "f", "g", "o")


class LSTMParams(NamedTuple):
    U: jax.Array  # [in, 4*hidden]
    W: jax.Array  # [hidden, 4*hidden]
    b: jax.Array  # [4*hidden]


class LSTMState(NamedTuple):
    h: jax.Array  # [..., hidden] hidden state
    c: jax.Array  # [..., hidden] memory cell


def split_gates(z: jax.Array) -> tuple[jax.Array, ...]:
    """Splits fused pre-activations `[..., 4*hidden]` into (i, f, g, o), each `[..., hidden]`."""
    return tuple(jnp.split(z, len(GATE_ORDER), axis=-1))


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
    forget_bias: float = 1.0,
    recurrent_init: str = "orthogonal",
) -> LSTMParams:
    """Glorot U, per-gate orthogonal W, zero biases but `forget_bias` on f."""
    check_sizes("lstm", input_size=input_size, hidden_size=hidden_size)
    key_u, key_w = jax.random.split(key)
    w_init = initializers.recurrent_init(recurrent_init)
    W = jnp.concatenate(
        [w_init(k, (hidden_size, hidden_size), dtype) for k in jax.random.split(key_w, 4)], axis=-1
    )
    b = jnp.zeros((4, hidden_size), dtype).at[GATE_ORDER.index("f")].set(forget_bias)
    return LSTMParams(
        U=initializers.glorot_uniform(key_u, (input_size, 4 * hidden_size), dtype),
        W=W,
        b=b.reshape(-1),
    )


def initial_carry(params: LSTMParams, batch_shape: tuple[int, ...] = ()) -> LSTMState:
    hidden_size = params.W.shape[0]
    # two distinct buffers, so a donated train state may hold both
    return LSTMState(
        h=zeros_carry(hidden_size, batch_shape, params.W.dtype),
        c=zeros_carry(hidden_size, batch_shape, params.W.dtype),
    )


def project_inputs(params: LSTMParams, xs: jax.Array) -> jax.Array:
    """`U x(t) + b` for all steps and gates: `[..., time, in] -> [..., time, 4*hidden]`."""
    return affine(xs, params.U, params.b)


def step(params: LSTMParams, carry: LSTMState, x_proj: jax.Array) -> tuple[LSTMState, jax.Array]:
    hidden = params.W.shape[0]
    check_step("lstm", x_proj, 4 * hidden, h=(carry.h, hidden), c=(carry.c, hidden))
    i, f, g, o = split_gates(x_proj + carry.h @ params.W)
    c = jax.nn.sigmoid(f) * carry.c + jax.nn.sigmoid(i) * jnp.tanh(g)
    h = jax.nn.sigmoid(o) * jnp.tanh(c)
    return LSTMState(h=h, c=c), h


def _shapes(params: LSTMParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.U.shape[0], params.W.shape[0]
    return {"U": (size_in, 4 * hidden), "W": (hidden, 4 * hidden), "b": (4 * hidden,)}


def input_size(params: LSTMParams) -> int:
    """The input width; a ValueError unless `params` are LSTM params of consistent shapes."""
    check_params("lstm", params, LSTMParams, _shapes)
    return params.U.shape[0]


# ---- the hand-written BPTT; saved = (i, f, g, o, tanh(c(t))), five [.., H] arrays ----
# Saved as separate arrays, not one [.., 4H] `act`: XLA:CPU compiles a loop fusion that reads
# several column slices of one scanned array into slower code than one reading whole arrays
# (measured in benchmarks/README.md).


def _gate_scale(hidden: int, dtype) -> jax.Array:
    """1/2 on the sigmoid gates (i, f, o), 1 on the candidate g: act = s tanh(s z) + 1 - s."""
    half = jnp.full((hidden,), 0.5, dtype)
    return jnp.concatenate([half, half, jnp.ones((hidden,), dtype), half])


def _kernel_forward(params: LSTMParams, carry: LSTMState, x_proj: jax.Array):
    z = x_proj + carry.h @ params.W  # [.., 4H] pre-activations of (i, f, g, o)
    scale = row(_gate_scale(params.W.shape[0], z.dtype), z)
    act = scale * jnp.tanh(scale * z) + (1.0 - scale)  # one tanh for all four gates
    i, f, g, o = split_gates(act)
    c = f * carry.c + i * g  # c(t) = f c(t-1) + i g
    tanh_c = jnp.tanh(c)
    return LSTMState(h=o * tanh_c, c=c), (i, f, g, o, tanh_c)


def _kernel_backward(W_T: jax.Array, saved, carry_prev, carry, dcarry):
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
    return LSTMState(h=delta @ W_T, c=dc * f), delta  # W_T: [4H, H]


def _kernel_param_grads(params, carries_prev, saved, deltas):
    del saved
    return LSTMParams(
        U=jnp.zeros_like(params.U), W=sum_outer(carries_prev.h, deltas), b=jnp.zeros_like(params.b)
    )


BPTT_KERNEL = Kernel(
    "lstm",
    _kernel_forward,
    lambda params: params.W.T,
    _kernel_backward,
    _kernel_param_grads,
    output=lambda carry: carry.h,
    add_output_grad=lambda dcarry, dh: dcarry._replace(h=dcarry.h + dh),
)


def jacobian_diagonal(params: LSTMParams, carry: LSTMState, x_proj: jax.Array) -> LSTMState:
    """`diag(d carry(t) / d carry(t-1))` as an `LSTMState` (module docstring), batch axes kept."""
    a_i, a_f, a_g, a_o = split_gates(x_proj + carry.h @ params.W)
    W_ii, W_ff, W_gg, W_oo = (with_batch_axes(d, a_i) for d in split_gates(jnp.diagonal(
        params.W.reshape(params.W.shape[0], 4, -1), axis1=0, axis2=2).reshape(-1)))
    i, f, o, g = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o), jnp.tanh(a_g)
    tanh_c = jnp.tanh(f * carry.c + i * g)
    d_c = f * (1.0 - f) * W_ff * carry.c + i * (1.0 - i) * W_ii * g + i * (1.0 - g * g) * W_gg
    d_h = o * (1.0 - o) * W_oo * tanh_c + o * (1.0 - tanh_c * tanh_c) * d_c
    return LSTMState(h=d_h, c=f)


def make_cell(**init_options) -> Cell:
    """The LSTM cell; `init_options` (e.g. `forget_bias=0.0`) become init defaults."""

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell("lstm", cell_init, initial_carry, project_inputs, step, input_size,
                bptt_kernel=BPTT_KERNEL, jacobian_diagonal=jacobian_diagonal)
