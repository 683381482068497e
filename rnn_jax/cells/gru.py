"""Gated recurrent unit (Cho et al. 2014), as in the notes.

    r(t)  = sigma(U_r x(t) + W_r h(t-1) + b_r)            reset gate
    z(t)  = sigma(U_z x(t) + W_z h(t-1) + b_z)            update gate
    h~(t) = tanh (U_n x(t) + W_n (r(t) * h(t-1)) + b_n)   candidate
    h(t)  = z(t) * h(t-1) + (1 - z(t)) * h~(t)

Naming: across rnn_jax `U` multiplies the input and `W` the previous state (the vanilla RNN's
convention in the notes); the notes' GRU slide writes these the other way round.
Fused layout, gate order (r, z, n): U: [in, 3*hidden], b: [3*hidden], W: [hidden, 2*hidden]
for (r, z), W_n: [hidden, hidden].

Relation to PyTorch's nn.GRU: same gate order and the same update convention (z keeps the old
state), but PyTorch applies the reset gate *after* the matmul, `n = tanh(U_n x + b_in +
r * (W_n h + b_hn))`, and has a second bias b_hn. The two agree exactly only when r = 1.

Fast paths (`cells/fast_paths.py`), written for `step` and carried by the cell:
- `BPTT_KERNEL`: the hand-written BPTT, saved = (r, z, n) with n = h~(t):
      delta_n = dh (1 - z) tanh'(n),   d(r h(t-1)) = delta_n W_n^T
      delta_rz = [d(r h(t-1)) h(t-1) r', dh (h(t-1) - n) z']
      dh(t-1) = dh z + d(r h(t-1)) r + delta_rz W^T
- `jacobian_diagonal` (quasi-DEER), with s' = sigma' = s (1 - s):
      d h_i / d h_i(t-1) = z_i + (h_i(t-1) - n_i) z'_i Wz_ii
                           + (1 - z_i) n'_i [r_i Wn_ii + sum_k Wr_ik r'_k h_k(t-1) Wn_ki]
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, check_step, zeros_carry
from rnn_jax.cells.fast_paths import Kernel, sigmoid_by_tanh, sum_outer, with_batch_axes


class GRUParams(NamedTuple):
    U: jax.Array  # [in, 3*hidden], gates (r, z, n)
    W: jax.Array  # [hidden, 2*hidden], gates (r, z)
    W_n: jax.Array  # [hidden, hidden], candidate
    b: jax.Array  # [3*hidden]


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
    recurrent_init: str = "orthogonal",
) -> GRUParams:
    """Glorot U, per-gate orthogonal recurrent matrices, zero biases."""
    check_sizes("gru", input_size=input_size, hidden_size=hidden_size)
    key_u, key_r, key_z, key_n = jax.random.split(key, 4)
    w_init = initializers.recurrent_init(recurrent_init)
    shape = (hidden_size, hidden_size)
    return GRUParams(
        U=initializers.glorot_uniform(key_u, (input_size, 3 * hidden_size), dtype),
        W=jnp.concatenate([w_init(key_r, shape, dtype), w_init(key_z, shape, dtype)], axis=-1),
        W_n=w_init(key_n, shape, dtype),
        b=jnp.zeros((3 * hidden_size,), dtype),
    )


def initial_carry(params: GRUParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    return zeros_carry(params.W_n.shape[0], batch_shape, params.W_n.dtype)


def project_inputs(params: GRUParams, xs: jax.Array) -> jax.Array:
    """`U x(t) + b` for all steps and gates: `[..., time, in] -> [..., time, 3*hidden]`."""
    return affine(xs, params.U, params.b)


def step(params: GRUParams, h_prev: jax.Array, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    hidden = params.W_n.shape[0]
    check_step("gru", x_proj, 3 * hidden, h=(h_prev, hidden))
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    rz = jax.nn.sigmoid(jnp.concatenate([x_r, x_z], axis=-1) + h_prev @ params.W)
    r, z = jnp.split(rz, 2, axis=-1)
    candidate = jnp.tanh(x_n + (r * h_prev) @ params.W_n)
    h = z * h_prev + (1.0 - z) * candidate
    return h, h


def _shapes(params: GRUParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.U.shape[0], params.W_n.shape[0]
    return {
        "U": (size_in, 3 * hidden), "W": (hidden, 2 * hidden), "W_n": (hidden, hidden),
        "b": (3 * hidden,),
    }


def input_size(params: GRUParams) -> int:
    """The input width; a ValueError unless `params` are GRU params of consistent shapes."""
    check_params("gru", params, GRUParams, _shapes)
    return params.U.shape[0]


# ---- the hand-written BPTT, gates (r, z, n); saved = (r, z, n) ----


def _kernel_forward(params: GRUParams, h_prev: jax.Array, x_proj: jax.Array):
    hidden = params.W_n.shape[0]
    rz = sigmoid_by_tanh(x_proj[..., : 2 * hidden] + h_prev @ params.W)
    r, z = rz[..., :hidden], rz[..., hidden:]
    n = jnp.tanh(x_proj[..., 2 * hidden :] + (r * h_prev) @ params.W_n)  # candidate h~(t)
    h = z * h_prev + (1.0 - z) * n  # h(t) = z h(t-1) + (1 - z) h~(t)
    return h, (r, z, n)


def _kernel_backward(weights, saved, h_prev, h, dh):
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


def _kernel_param_grads(params, carries_prev, saved, deltas):
    r = saved[0]
    hidden = params.W_n.shape[0]
    return GRUParams(
        U=jnp.zeros_like(params.U),
        W=sum_outer(carries_prev, deltas[..., : 2 * hidden]),
        W_n=sum_outer(r * carries_prev, deltas[..., 2 * hidden :]),
        b=jnp.zeros_like(params.b),
    )


BPTT_KERNEL = Kernel(
    "gru",
    _kernel_forward,
    lambda params: (params.W.T, params.W_n.T),
    _kernel_backward,
    _kernel_param_grads,
    output=lambda h: h,
    add_output_grad=lambda dh_carry, dh: dh_carry + dh,
)


def jacobian_diagonal(params: GRUParams, h_prev: jax.Array, x_proj: jax.Array) -> jax.Array:
    """`diag(d h(t) / d h(t-1))` `[..., hidden]` (module docstring)."""
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    W_r, W_z = jnp.split(params.W, 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_prev @ W_r)
    z = jax.nn.sigmoid(x_z + h_prev @ W_z)
    n = jnp.tanh(x_n + (r * h_prev) @ params.W_n)
    # d a_n,i / d h_i = r_i Wn_ii + sum_k Wr_ik r'_k h_k Wn_ki  (r depends on every h_k)
    through_r = (r * (1.0 - r) * h_prev) @ (W_r * params.W_n.T).T
    d_candidate = (1.0 - n * n) * (r * with_batch_axes(jnp.diagonal(params.W_n), n) + through_r)
    d_update = (h_prev - n) * z * (1.0 - z) * with_batch_axes(jnp.diagonal(W_z), z)
    return z + d_update + (1.0 - z) * d_candidate


def make_cell(**init_options) -> Cell:
    """The GRU cell; `init_options` become init defaults."""

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell("gru", cell_init, initial_carry, project_inputs, step, input_size,
                bptt_kernel=BPTT_KERNEL, jacobian_diagonal=jacobian_diagonal)
