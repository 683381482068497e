"""The diagonal of a step's carry Jacobian in closed form, for quasi-DEER.

quasi-DEER's scan needs only `diag(df/ds)` at every step; read off the full Jacobian it costs
D JVPs of the step (O(D^3) for a dense cell), what DEER pays. For the library's vanilla, GRU and
LSTM steps the diagonal has a closed form of one step's cost, O(D^2), derived here from the
cells' equations (their docstrings; `W[k, j]` multiplies h_k into unit j, as `h @ W`):

- vanilla, s = phi(a), a = x_proj + s(t-1) W:        d s_i / d s_i(t-1) = phi'(a_i) W_ii
- GRU (gates r, z, candidate n from `rnn_jax.cells.gru`), with s' = sigma' = s (1 - s):
      d h_i / d h_i(t-1) = z_i + (h_i(t-1) - n_i) z'_i Wz_ii
                           + (1 - z_i) n'_i [r_i Wn_ii + sum_k Wr_ik r'_k h_k(t-1) Wn_ki]
- LSTM, carry (h, c): only d h_i/d h_i(t-1) and d c_i/d c_i(t-1) are on the diagonal,
      d c_i / d c_i(t-1) = f_i
      d h_i / d h_i(t-1) = o'_i Wo_ii tanh(c_i) + o_i tanh'(c_i)
                           * (f'_i Wf_ii c_i(t-1) + i'_i Wi_ii g_i + i_i g'_i Wg_ii)
  (i, f, o the gates after the sigmoid, g after tanh, primes their derivatives).

`diagonal_for(cell)` finds the closed form by the cell's `step` function (by identity, as
`rnn_jax.bptt.kernel_for` does): a cell whose step was replaced gets None, and DEER reads its
diagonal off the Jacobian as before. Each function maps `(params, carry, x_proj)` with leading
batch axes to a pytree shaped like the carry. `tests/test_deer_diagonals.py` checks every form
against `jax.jacfwd` in float64.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rnn_jax.cells import gru, lstm, vanilla
from rnn_jax.cells.base import ACTIVATIONS, Cell


def _like(v: jax.Array, x: jax.Array) -> jax.Array:
    """The vector `v` `[hidden]` with x's leading batch axes (size 1): no rank promotion."""
    return v.reshape((1,) * (x.ndim - 1) + v.shape)


def _vanilla(activation: str) -> Callable:
    entry = ACTIVATIONS[activation]

    def diagonal(params: vanilla.VanillaParams, s_prev: jax.Array, x_proj: jax.Array):
        s = entry.phi(x_proj + s_prev @ params.W)
        return entry.derivative(s) * _like(jnp.diagonal(params.W), s)  # phi'(a_i) W_ii

    return diagonal


def _gru(params: gru.GRUParams, h_prev: jax.Array, x_proj: jax.Array) -> jax.Array:
    x_r, x_z, x_n = jnp.split(x_proj, 3, axis=-1)
    W_r, W_z = jnp.split(params.W, 2, axis=-1)
    r = jax.nn.sigmoid(x_r + h_prev @ W_r)
    z = jax.nn.sigmoid(x_z + h_prev @ W_z)
    n = jnp.tanh(x_n + (r * h_prev) @ params.W_n)
    # d a_n,i / d h_i = r_i Wn_ii + sum_k Wr_ik r'_k h_k Wn_ki  (r depends on every h_k)
    through_r = (r * (1.0 - r) * h_prev) @ (W_r * params.W_n.T).T
    d_candidate = (1.0 - n * n) * (r * _like(jnp.diagonal(params.W_n), n) + through_r)
    return z + (h_prev - n) * z * (1.0 - z) * _like(jnp.diagonal(W_z), z) + (1.0 - z) * d_candidate


def _lstm(params: lstm.LSTMParams, carry: lstm.LSTMState, x_proj: jax.Array) -> lstm.LSTMState:
    a_i, a_f, a_g, a_o = lstm.split_gates(x_proj + carry.h @ params.W)
    W_ii, W_ff, W_gg, W_oo = (_like(d, a_i) for d in lstm.split_gates(jnp.diagonal(
        params.W.reshape(params.W.shape[0], 4, -1), axis1=0, axis2=2).reshape(-1)))
    i, f, o, g = jax.nn.sigmoid(a_i), jax.nn.sigmoid(a_f), jax.nn.sigmoid(a_o), jnp.tanh(a_g)
    tanh_c = jnp.tanh(f * carry.c + i * g)
    d_c = f * (1.0 - f) * W_ff * carry.c + i * (1.0 - i) * W_ii * g + i * (1.0 - g * g) * W_gg
    d_h = o * (1.0 - o) * W_oo * tanh_c + o * (1.0 - tanh_c * tanh_c) * d_c
    return lstm.LSTMState(h=d_h, c=f)


DIAGONALS = {
    gru.step: _gru,
    lstm.step: _lstm,
    **{vanilla.step_for(name): _vanilla(name) for name in ACTIVATIONS},
}


def diagonal_for(cell: Cell) -> Callable[[Any, Any, jax.Array], Any] | None:
    """`(params, carry, x_proj) -> diag(d carry(t) / d carry(t-1))` shaped like the carry, for
    the library's own vanilla, GRU and LSTM steps; None for any other step."""
    return DIAGONALS.get(cell.step)
