"""Cell + linear readout: the model every experiment trains (the notes' vanilla RNN with any
cell in place of `s = tanh(a)`).

    params = init(key, cell, input_size, hidden_size, out_size)
    outputs = apply(cell, params, xs)           # o(t) = c + V s(t): [batch, time, out]
    last = apply(cell, params, xs, many_to_one=True, lengths=lengths)   # [batch, out]
"""

from typing import Any, NamedTuple

import jax

from rnn_jax import readout
from rnn_jax.cells import Cell
from rnn_jax.unroll import output_size, unroll


class ModelParams(NamedTuple):
    cell: Any  # the cell's params
    readout: readout.LinearParams  # V: [cell outputs, out], c: [out]


def init(key: jax.Array, cell: Cell, input_size: int, hidden_size: int, out_size: int,
         **cell_options) -> ModelParams:
    """The cell's init (with `cell_options`, e.g. `forget_bias`) and a Glorot readout."""
    key_cell, key_out = jax.random.split(key)
    cell_params = cell.init(key_cell, input_size, hidden_size, **cell_options)
    return ModelParams(cell_params, readout.init_linear(
        key_out, output_size(cell, cell_params), out_size))


def apply(cell: Cell, params: ModelParams, xs: jax.Array, *, lengths: jax.Array | None = None,
          many_to_one: bool = False, **unroll_options) -> jax.Array:
    """`xs [batch, time, in]` -> `o [batch, time, out]`, or the last valid step's `[batch, out]`
    with `many_to_one` (step `lengths - 1` when lengths are given)."""
    hs, _ = unroll(cell, params.cell, xs, lengths=lengths, **unroll_options)
    outputs = readout.linear(params.readout, hs)
    return readout.last_valid(outputs, lengths) if many_to_one else outputs
