"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201, section 3.2).

    f(t)  = sigma(U_f x(t) + b_f)                  forget gate: no h(t-1)
    i(t)  = sigma(U_i x(t) + b_i)                  input gate: no h(t-1)
    h~(t) = g(U_h x(t) + b_h)                      candidate, g as in `mingru`
    f'(t) = f / (f + i),  i'(t) = i / (f + i)      normalised: length-independent scale
    h(t)  = f'(t) * h(t-1) + i'(t) * h~(t)         = a(t) h(t-1) + b(t)

No cell state and no output gate: h is the whole carry and the output. With
`d = softplus(-k_f) - softplus(-k_i)` (k the pre-activations), `f' = sigma(-d)` and
`i' = sigma(d)`, and in log space `log f' = -softplus(d)`, `log i' = -softplus(-d)`
(the paper's appendix B.2 code).

Fused layout, gate order (f, i, h): U `[in, 3*hidden]`, b `[3*hidden]`; Glorot-uniform U,
zero biases. `rnn_jax.parallel.linear_cells` evaluates all steps at once by an associative scan.

`make_cell(transition_range="signed")` maps the transition to (-1, 1) as `mingru` explains:
`a(t) = 2 f'(t) - 1 = tanh(-d / 2)`, `b(t) = i'(t) h~(t)` (no log-space scan).
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, zeros_carry
from rnn_jax.cells.fast_paths import LinearForm
from rnn_jax.cells.mingru import check_real, check_transition_range, g, log_g


class MinLSTMParams(NamedTuple):
    U: jax.Array  # [in, 3*hidden], gates (f, i, h)
    b: jax.Array  # [3*hidden]


def init(key: jax.Array, input_size: int, hidden_size: int, *, dtype=jnp.float32) -> MinLSTMParams:
    """Glorot-uniform U, zero biases."""
    check_sizes("minlstm", input_size=input_size, hidden_size=hidden_size)
    return MinLSTMParams(
        U=initializers.glorot_uniform(key, (input_size, 3 * hidden_size), dtype),
        b=jnp.zeros((3 * hidden_size,), dtype),
    )


def initial_carry(params: MinLSTMParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    return zeros_carry(params.b.shape[0] // 3, batch_shape, params.b.dtype)


def project_inputs(params: MinLSTMParams, xs: jax.Array) -> jax.Array:
    """`U x(t) + b` for all steps and gates: `[..., time, in] -> [..., time, 3*hidden]`."""
    return affine(xs, params.U, params.b)


def _gate_difference(x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`d = log f - log i = softplus(-k_f) - softplus(-k_i)` and the candidate's k_h."""
    k_f, k_i, k_h = jnp.split(x_proj, 3, axis=-1)
    return jax.nn.softplus(-k_f) - jax.nn.softplus(-k_i), k_h


def coefficients(params: MinLSTMParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b) = (f', i' * g(k_h))`, each `[..., hidden]`; `f' = sigma(-d)`, `i' = sigma(d)`."""
    d, k_h = _gate_difference(x_proj)
    return jax.nn.sigmoid(-d), jax.nn.sigmoid(d) * g(k_h)


def log_coefficients(params: MinLSTMParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(log a, log b) = (-softplus(d), -softplus(-d) + log g(k_h))`."""
    d, k_h = _gate_difference(x_proj)
    return -jax.nn.softplus(d), -jax.nn.softplus(-d) + log_g(k_h)


def signed_coefficients(params: MinLSTMParams,
                        x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b) = (2 f' - 1, i' * g(k_h))`, the transition in (-1, 1); `2 sigma(-d) - 1 =
    tanh(-d/2)`."""
    d, k_h = _gate_difference(x_proj)
    return jnp.tanh(-0.5 * d), jax.nn.sigmoid(d) * g(k_h)


def step(params: MinLSTMParams, h_prev: jax.Array,
         x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    a, b = coefficients(params, x_proj)
    h = a * h_prev + b
    return h, h


def signed_step(params: MinLSTMParams, h_prev: jax.Array,
                x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`step` with the transition range (-1, 1) (`signed_coefficients`)."""
    a, b = signed_coefficients(params, x_proj)
    h = a * h_prev + b
    return h, h


# the associative scan's view of `step` and `signed_step` (`rnn_jax.parallel.linear_cells`);
# the signed transition can be negative, so it has no log-space form
LINEAR_FORM = LinearForm(coefficients, log_coefficients)
SIGNED_LINEAR_FORM = LinearForm(signed_coefficients)


def _shapes(params: MinLSTMParams) -> dict[str, tuple[int, ...]]:
    hidden = params.b.shape[0] // 3
    return {"U": (params.U.shape[0], 3 * hidden), "b": (3 * hidden,)}


def input_size(params: MinLSTMParams) -> int:
    """The input width; a ValueError unless `params` are real minLSTM params of one shape."""
    check_params("minlstm", params, MinLSTMParams, _shapes)
    check_real("minlstm", params)
    return params.U.shape[0]


def make_cell(transition_range: str = "unit", **init_options) -> Cell:
    """The minLSTM cell, its transition in (0, 1) ('unit') or (-1, 1) ('signed');
    `init_options` become init defaults."""
    check_transition_range("minlstm", transition_range)
    cell_init = functools.partial(init, **init_options)
    signed = transition_range == "signed"
    return Cell("minlstm", cell_init, initial_carry, project_inputs,
                signed_step if signed else step, input_size,
                linear_form=SIGNED_LINEAR_FORM if signed else LINEAR_FORM)
