"""Readouts from RNN outputs: many-to-many, many-to-one, and one-to-many generation.

The linear readout is the notes' `o(t) = c + V s(t)`, V: [hidden, out], c: [out].
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers, sequence
from rnn_jax.cells.base import Cell, affine


class LinearParams(NamedTuple):
    V: jax.Array  # [hidden, out]
    c: jax.Array  # [out]


def init_linear(key: jax.Array, hidden_size: int, output_size: int, *, dtype=jnp.float32):
    """Glorot-uniform V, zero c."""
    return LinearParams(
        V=initializers.glorot_uniform(key, (hidden_size, output_size), dtype),
        c=jnp.zeros((output_size,), dtype),
    )


def linear(params: LinearParams, hs: jax.Array) -> jax.Array:
    """Many-to-many readout `o(t) = c + V s(t)`: `[..., hidden] -> [..., out]`."""
    return affine(hs, params.V, params.c)


def last_valid(ys: jax.Array, lengths: jax.Array | None = None) -> jax.Array:
    """Many-to-one: each sequence's output at its last valid step, `[batch, time, f] -> [batch, f]`.

    Sequences of length 0 give zeros.
    """
    if lengths is None:
        return ys[:, -1]
    lengths = sequence.clamp_lengths(lengths, ys.shape[1])  # the traced-value policy
    index = jnp.clip(lengths - 1, 0, ys.shape[1] - 1)[:, None, None]
    last = jnp.take_along_axis(ys, index, axis=1)[:, 0]
    return jnp.where((lengths > 0)[:, None], last, 0)


def generate(
    cell: Cell,
    params: Any,
    carry: Any,
    x0: jax.Array,
    num_steps: int,
    feedback: Callable[[jax.Array], tuple[jax.Array, jax.Array]],
) -> tuple[jax.Array, Any]:
    """One-to-many: start from `carry` and input `x0`, feed each step's output back as input.

    Args:
      carry: initial carry, e.g. an encoded vector, batch leading.
      x0: `[batch, in]` first input.
      feedback: `h_t -> (y_t, x_next)`, e.g. a readout and its output as the next input.
    Returns:
      `(ys [batch, num_steps, out], final_carry)`.
    """

    def body(state, _):
        carry, x = state
        x_proj = cell.project_inputs(params, x)
        carry, h = cell.step(params, carry, x_proj)
        y, x_next = feedback(h)
        return (carry, x_next), y

    (carry, _), ys = jax.lax.scan(body, (carry, x0), None, length=num_steps)
    return jnp.swapaxes(ys, 0, 1), carry
