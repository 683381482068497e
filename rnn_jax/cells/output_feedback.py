"""Output-to-hidden recurrence (Jordan network; the notes' "output to hidden unit connection").

The hidden layer sees the previous *output* instead of the previous hidden state:

    a(t) = b + W o(t-1) + U x(t)        U: [in, hidden], W: [out, hidden], b: [hidden]
    s(t) = phi(a(t))
    o(t) = c + V s(t)                   V: [hidden, out], c: [out]

The carry is o(t-1) (o(0) = 0) and the cell emits o(t). Because only o(t-1) crosses time, the
network can be trained with teacher forcing: feed the previous *target* y(t-1) in place of
o(t-1), which makes every step independent (`teacher_forced`, one parallel pass, no scan).
`init(key, input_size, hidden_size, output_size=...)`; output_size defaults to input_size.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import (
    Cell,
    affine,
    check_params,
    check_sizes,
    check_step,
    get_activation,
    zeros_carry,
)


class OutputFeedbackParams(NamedTuple):
    U: jax.Array  # [in, hidden]
    W: jax.Array  # [out, hidden] previous output to hidden
    b: jax.Array  # [hidden]
    V: jax.Array  # [hidden, out]
    c: jax.Array  # [out]


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    output_size: int | None = None,
    dtype=jnp.float32,
) -> OutputFeedbackParams:
    """Glorot U, W and V; zero biases."""
    output_size = input_size if output_size is None else output_size
    check_sizes(
        "output_feedback", input_size=input_size, hidden_size=hidden_size, output_size=output_size
    )
    key_u, key_w, key_v = jax.random.split(key, 3)
    return OutputFeedbackParams(
        U=initializers.glorot_uniform(key_u, (input_size, hidden_size), dtype),
        W=initializers.glorot_uniform(key_w, (output_size, hidden_size), dtype),
        b=jnp.zeros((hidden_size,), dtype),
        V=initializers.glorot_uniform(key_v, (hidden_size, output_size), dtype),
        c=jnp.zeros((output_size,), dtype),
    )


def initial_carry(params: OutputFeedbackParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    """o(0) = 0, `[*batch_shape, out]`."""
    return zeros_carry(params.V.shape[1], batch_shape, params.V.dtype)


def project_inputs(params: OutputFeedbackParams, xs: jax.Array) -> jax.Array:
    """`b + U x(t)` for every step: `[..., time, in] -> [..., time, hidden]`."""
    return affine(xs, params.U, params.b)


def _shapes(params: OutputFeedbackParams) -> dict[str, tuple[int, ...]]:
    (size_in, hidden), size_out = params.U.shape, params.V.shape[1]
    return {
        "U": (size_in, hidden), "W": (size_out, hidden), "b": (hidden,),
        "V": (hidden, size_out), "c": (size_out,),
    }


def input_size(params: OutputFeedbackParams) -> int:
    """The input width; a ValueError unless `params` are this cell's, of consistent shapes."""
    check_params("output_feedback", params, OutputFeedbackParams, _shapes)
    return params.U.shape[0]


def teacher_forced(
    params: OutputFeedbackParams, xs: jax.Array, previous_targets: jax.Array, activation="tanh"
) -> jax.Array:
    """Outputs o(t) with y(t-1) fed in place of o(t-1), all steps in parallel.

    Args:
      xs: `[..., time, in]` inputs.
      previous_targets: `[..., time, out]`, y(t-1) at position t (zeros at t = 0).
    Returns:
      `[..., time, out]` outputs o(t).
    """
    s = get_activation(activation)(project_inputs(params, xs) + previous_targets @ params.W)
    return affine(s, params.V, params.c)


def make_cell(activation: str = "tanh", **init_options) -> Cell:
    """The output-feedback cell with nonlinearity `activation`."""
    phi = get_activation(activation)

    def step(params: OutputFeedbackParams, o_prev: jax.Array, x_proj: jax.Array):
        (size_out, hidden) = params.W.shape
        check_step(f"output_feedback_{activation}", x_proj, hidden, o=(o_prev, size_out))
        s = phi(x_proj + o_prev @ params.W)  # s(t) = phi(b + W o(t-1) + U x(t))
        o = affine(s, params.V, params.c)  # o(t) = c + V s(t)
        return o, o

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell(
        f"output_feedback_{activation}", cell_init, initial_carry, project_inputs, step, input_size
    )
