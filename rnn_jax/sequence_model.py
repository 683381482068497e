"""Cell + linear readout: the model every experiment trains (the notes' vanilla RNN with any
cell in place of `s = tanh(a)`).

    params = init(key, cell, input_size, hidden_size, out_size)
    outputs = apply(cell, params, xs)           # o(t) = c + V s(t): [batch, time, out]
    last = apply(cell, params, xs, many_to_one=True, lengths=lengths)   # [batch, out]
    params = init(key, cell, input_size, hidden_size, out_size, bidirectional=True)
    outputs = apply(cell, params, xs, lengths=lengths)  # o(t) = c + V [s_fw(t); s_bw(t)]
"""

from typing import Any, NamedTuple

import jax

from rnn_jax import readout
from rnn_jax.cells import Cell
from rnn_jax.unroll import (
    BidirectionalParams,
    init_bidirectional,
    output_size,
    unroll,
    unroll_bidirectional,
)


class ModelParams(NamedTuple):
    cell: Any  # the cell's params
    readout: readout.LinearParams  # V: [cell outputs, out], c: [out]


def init(key: jax.Array, cell: Cell, input_size: int, hidden_size: int, out_size: int, *,
         bidirectional: bool = False, **cell_options) -> ModelParams:
    """The cell's init (with `cell_options`, e.g. `forget_bias`) and a Glorot readout.

    `bidirectional`: a forward and a backward cell of `hidden_size` each
    (`unroll.init_bidirectional`), the readout over both halves.
    """
    key_cell, key_out = jax.random.split(key)
    if bidirectional:
        cell_params = init_bidirectional(cell, key_cell, input_size, hidden_size, **cell_options)
        width = 2 * output_size(cell, cell_params.forward)
    else:
        cell_params = cell.init(key_cell, input_size, hidden_size, **cell_options)
        width = output_size(cell, cell_params)
    return ModelParams(cell_params, readout.init_linear(key_out, width, out_size))


def apply(cell: Cell, params: ModelParams, xs: jax.Array, *, lengths: jax.Array | None = None,
          many_to_one: bool = False, **unroll_options) -> jax.Array:
    """`xs [batch, time, in]` -> `o [batch, time, out]`, or the last valid step's `[batch, out]`
    with `many_to_one` (step `lengths - 1` when lengths are given). Params from
    `init(..., bidirectional=True)` run `unroll_bidirectional` (the backward half starts at each
    sequence's last valid step)."""
    run = unroll_bidirectional if isinstance(params.cell, BidirectionalParams) else unroll
    hs, _ = run(cell, params.cell, xs, lengths=lengths, **unroll_options)
    outputs = readout.linear(params.readout, hs)
    return readout.last_valid(outputs, lengths) if many_to_one else outputs
