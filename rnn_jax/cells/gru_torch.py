"""Gated recurrent unit in the PyTorch/cuDNN convention: the reset gate after the recurrent matmul.

    r(t)  = sigma(U_r x(t) + W_r h(t-1) + b_r)                   reset gate
    z(t)  = sigma(U_z x(t) + W_z h(t-1) + b_z)                   update gate
    n(t)  = tanh (U_n x(t) + b_n + r(t) * (W_n h(t-1) + b_hn))   candidate
    h(t)  = z(t) * h(t-1) + (1 - z(t)) * n(t)

This is `torch.nn.GRU`'s (and cuDNN's, and flax's `GRUCell`'s) definition: Cho et al. (2014)
apply r to h(t-1) before the matmul (`rnn_jax.cells.gru`, the notes' GRU); here it scales the
matmul's result, so all three gates' recurrent matmuls are one `h @ W` per step. The second
candidate bias `b_hn` sits inside the reset gate's product, so it cannot be merged with `b_n`;
PyTorch's other recurrent biases (`b_hr`, `b_hz`) add to `b_r`, `b_z` and are merged into `b`.

Fused layout, gate order (r, z, n), PyTorch's: U: [in, 3*hidden], W: [hidden, 3*hidden],
b: [3*hidden] (input side), b_hn: [hidden].
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, check_step, zeros_carry


class GRUTorchParams(NamedTuple):
    U: jax.Array  # [in, 3*hidden], gates (r, z, n)
    W: jax.Array  # [hidden, 3*hidden], gates (r, z, n)
    b: jax.Array  # [3*hidden]: b_r, b_z (input and recurrent biases summed), b_n
    b_hn: jax.Array  # [hidden], inside the reset gate's product


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
    recurrent_init: str = "orthogonal",
) -> GRUTorchParams:
    """Glorot U, per-gate orthogonal recurrent matrices, zero biases (as `cells.gru`)."""
    check_sizes("gru_torch", input_size=input_size, hidden_size=hidden_size)
    key_u, key_w = jax.random.split(key)
    w_init = initializers.recurrent_init(recurrent_init)
    shape = (hidden_size, hidden_size)
    return GRUTorchParams(
        U=initializers.glorot_uniform(key_u, (input_size, 3 * hidden_size), dtype),
        W=jnp.concatenate([w_init(k, shape, dtype) for k in jax.random.split(key_w, 3)], -1),
        b=jnp.zeros((3 * hidden_size,), dtype),
        b_hn=jnp.zeros((hidden_size,), dtype),
    )


def initial_carry(params: GRUTorchParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    return zeros_carry(params.W.shape[0], batch_shape, params.W.dtype)


def project_inputs(params: GRUTorchParams, xs: jax.Array) -> jax.Array:
    """`U x(t) + b` for all steps and gates: `[..., time, in] -> [..., time, 3*hidden]`."""
    return affine(xs, params.U, params.b)


def step(
    params: GRUTorchParams, h_prev: jax.Array, x_proj: jax.Array
) -> tuple[jax.Array, jax.Array]:
    hidden = params.W.shape[0]
    check_step("gru_torch", x_proj, 3 * hidden, h=(h_prev, hidden))
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    h_r, h_z, h_n = jnp.split(h_prev @ params.W, 3, axis=-1)  # one matmul for all gates
    r = jax.nn.sigmoid(x_r + h_r)
    z = jax.nn.sigmoid(x_z + h_z)
    candidate = jnp.tanh(x_n + r * (h_n + jnp.broadcast_to(params.b_hn, h_n.shape)))
    h = z * h_prev + (1.0 - z) * candidate
    return h, h


def _shapes(params: GRUTorchParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.U.shape[0], params.W.shape[0]
    return {
        "U": (size_in, 3 * hidden), "W": (hidden, 3 * hidden), "b": (3 * hidden,),
        "b_hn": (hidden,),
    }


def input_size(params: GRUTorchParams) -> int:
    """The input width; a ValueError unless `params` are GRUTorchParams of consistent shapes."""
    check_params("gru_torch", params, GRUTorchParams, _shapes)
    return params.U.shape[0]


def make_cell(**init_options) -> Cell:
    """The PyTorch-convention GRU cell; `init_options` become init defaults."""

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell("gru_torch", cell_init, initial_carry, project_inputs, step, input_size)
