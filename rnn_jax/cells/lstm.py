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
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, check_step, zeros_carry

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


def make_cell(**init_options) -> Cell:
    """The LSTM cell; `init_options` (e.g. `forget_bias=0.0`) become init defaults."""

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell("lstm", cell_init, initial_carry, project_inputs, step, input_size)
