"""Vanilla (Elman) RNN, exactly as in the notes.

    a(t) = b + W s(t-1) + U x(t)        U: [in, hidden], W: [hidden, hidden], b: [hidden]
    s(t) = phi(a(t))                    phi in {tanh, relu, identity}

The readout `o(t) = c + V s(t)` lives in `rnn_jax.readout`, so any cell can share it.
With phi = identity, U = [[1]], W = [[1]], b = 0 the cell computes a running sum.
The IRNN (Le, Jaitly & Hinton 2015) is phi = relu with `recurrent_init="identity"`.

Fast paths (`cells/fast_paths.py`), written for `step_for(activation)` and carried by the
cell, with phi' written from the output s(t) (`rnn_jax.cells.base.ACTIVATIONS`):
- `bptt_kernel(activation)`: the notes' BPTT (`rnn_jax.bptt.notes`) for any phi and loss,
      delta(t) = phi'(a(t)) dL/ds(t),   dL/ds(t-1) = delta(t) W^T,   dL/dW = sum_t s(t-1)^T delta(t)
- `jacobian_diagonal(activation)` (quasi-DEER): d s_i / d s_i(t-1) = phi'(a_i) W_ii.
Each builder returns one object per activation, so equal cells compare equal (jit's caches).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import (
    Cell,
    activation_entry,
    affine,
    check_params,
    check_sizes,
    check_step,
    get_activation,
    zeros_carry,
)
from rnn_jax.cells.fast_paths import Kernel, sum_outer, with_batch_axes


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


@functools.cache
def bptt_kernel(activation: str) -> Kernel:
    """The hand-written BPTT of `step_for(activation)` (module docstring)."""
    phi, phi_prime, _ = activation_entry(activation)  # phi' written from the output s(t)

    def forward(params: VanillaParams, s_prev, x_proj):
        return phi(x_proj + s_prev @ params.W), ()

    def backward(W_T, saved, s_prev, s, ds):
        del saved, s_prev
        delta = ds * phi_prime(s)  # dL/da(t) = phi'(a(t)) dL/ds(t)
        return delta @ W_T, delta

    def param_grads(params, carries_prev, saved, deltas):
        del saved
        return VanillaParams(
            U=jnp.zeros_like(params.U),
            W=sum_outer(carries_prev, deltas),
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


@functools.cache
def jacobian_diagonal(activation: str):
    """`(params, s(t-1), x_proj) -> diag(d s(t) / d s(t-1))` `[..., hidden]`: phi'(a_i) W_ii."""
    entry = activation_entry(activation)

    def diagonal(params: VanillaParams, s_prev: jax.Array, x_proj: jax.Array):
        s = entry.phi(x_proj + s_prev @ params.W)
        return entry.derivative(s) * with_batch_axes(jnp.diagonal(params.W), s)

    return diagonal


def make_cell(activation: str = "tanh", **init_options) -> Cell:
    """A vanilla cell with nonlinearity `activation`; `init_options` become init defaults."""
    step = step_for(activation)
    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell(f"vanilla_{activation}", cell_init, initial_carry, project_inputs, step, input_size,
                bptt_kernel=bptt_kernel(activation),
                jacobian_diagonal=jacobian_diagonal(activation))
