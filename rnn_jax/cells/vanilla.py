"""Vanilla (Elman) RNN, exactly as in the notes.

    a(t) = b + W s(t-1) + U x(t)        U: [in, hidden], W: [hidden, hidden], b: [hidden]
    s(t) = phi(a(t))                    phi in {tanh, relu, identity}

The readout `o(t) = c + V s(t)` lives in `rnn_jax.readout`, so any cell can share it.
With phi = identity, U = [[1]], W = [[1]], b = 0 the cell computes a running sum.
The IRNN (Le, Jaitly & Hinton 2015) is phi = relu with `recurrent_init="identity"`.

`step_for(activation)` returns one function object per activation, so the hand-written BPTT
(`rnn_jax.bptt`) recognises the library's step by identity; a cell whose `step` was replaced
runs its own step.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import (
    Cell, affine, check_params, check_sizes, check_step, get_activation, zeros_carry,
)


class VanillaParams(NamedTuple):
    U: jax.Array  # [in, hidden] input-to-hidden
    W: jax.Array  # [hidden, hidden] hidden-to-hidden
    b: jax.Array  # [hidden]


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
    recurrent_init: str = "orthogonal",
    spectral_radius: float | None = None,
) -> VanillaParams:
    """Glorot-uniform U, recurrent W from `recurrent_init` scaled to `spectral_radius`, zero b.

    `spectral_radius` None: 1 for "orthogonal" and "identity", the unscaled draw for "glorot"
    (`initializers.recurrent_init`).
    """
    check_sizes("vanilla", input_size=input_size, hidden_size=hidden_size)
    key_u, key_w = jax.random.split(key)
    return VanillaParams(
        U=initializers.glorot_uniform(key_u, (input_size, hidden_size), dtype),
        W=initializers.recurrent_init(recurrent_init, spectral_radius)(
            key_w, (hidden_size, hidden_size), dtype
        ),
        b=jnp.zeros((hidden_size,), dtype),
    )


def initial_carry(params: VanillaParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    """s(0) = 0, `[*batch_shape, hidden]`."""
    return zeros_carry(params.W.shape[0], batch_shape, params.W.dtype)


def project_inputs(params: VanillaParams, xs: jax.Array) -> jax.Array:
    """`b + U x(t)` for every step at once: `[..., time, in] -> [..., time, hidden]`."""
    return affine(xs, params.U, params.b)


def _shapes(params: VanillaParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.U.shape[0], params.W.shape[0]
    return {"U": (size_in, hidden), "W": (hidden, hidden), "b": (hidden,)}


def input_size(params: VanillaParams) -> int:
    """The input width; a ValueError unless `params` are vanilla params of consistent shapes."""
    check_params("vanilla", params, VanillaParams, _shapes)
    return params.U.shape[0]


@functools.cache
def step_for(activation: str):
    """`step(params, s(t-1), x_proj(t)) -> (s(t), s(t))` with nonlinearity `activation`; the
    same function object for every call with the same name."""
    phi = get_activation(activation)

    def step(params: VanillaParams, s_prev: jax.Array, x_proj: jax.Array):
        hidden = params.W.shape[0]
        check_step(f"vanilla_{activation}", x_proj, hidden, s=(s_prev, hidden))
        s = phi(x_proj + s_prev @ params.W)  # s(t) = phi(b + W s(t-1) + U x(t))
        return s, s

    return step


def make_cell(activation: str = "tanh", **init_options) -> Cell:
    """A vanilla cell with nonlinearity `activation`; `init_options` become init defaults."""
    step = step_for(activation)
    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell(f"vanilla_{activation}", cell_init, initial_carry, project_inputs, step, input_size)
