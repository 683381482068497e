"""Token inputs: embedding followed by the input projection is itself a lookup table.

For 1-of-K inputs (the notes: "the first layer is a lookup table"),
`embedding[token] @ U + b == (embedding @ U + b)[token]`, so the time-parallel projection
becomes a gather from a `[vocab, gates]` table and its backward pass a scatter-add into that
table, instead of two `[batch*time, in] x [in, gates]` matmuls.
"""

from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax import sequence
from rnn_jax.bptt import engine
from rnn_jax.cells.base import Cell
from rnn_jax.unroll import check_options
from rnn_jax.unroll import unroll as plain_unroll


def gather_rows(table: jax.Array, tokens: jax.Array) -> jax.Array:
    """`table: [vocab, gates]`, `tokens: [...]` ints -> `[..., gates]`; an id outside [0, vocab)
    reads NaN (`sequence.take_tokens`)."""
    return sequence.take_tokens(table, tokens)


def unroll_tokens(
    cell: Cell,
    params: Any,
    embedding: jax.Array,
    tokens: jax.Array,
    *,
    carry: Any = None,
    lengths: jax.Array | None = None,
    reverse: bool = False,
    unroll: int | None = None,
    remat: bool | int | str = False,
    backward: str = "handwritten",
) -> tuple[jax.Array, Any]:
    """`rnn_jax.unroll(cell, params, embedding[tokens], ...)` with the projection as a gather.

    Args:
      cell, params: as for `rnn_jax.unroll`.
      embedding: `[vocab, in]` embedding matrix (inputs of the cell).
      tokens: `[batch, time]` integer tokens in [0, vocab): checked when concrete; under `jit`
        an id outside reads NaN, so its outputs are NaN (`rnn_jax.sequence`'s policy).
      carry, lengths, reverse, unroll, remat, backward: as for `rnn_jax.unroll`.
    Returns:
      `(ys [batch, time, hidden], final_carry)`, equal to `unroll` on the embedded tokens.
    """
    if not jnp.issubdtype(tokens.dtype, jnp.integer) or tokens.ndim != 2:
        raise ValueError(
            f"expected integer tokens [batch, time], received dtype {tokens.dtype} and shape "
            f"{tokens.shape}"
        )
    if embedding.ndim != 2 or embedding.shape[1] != cell.input_size(params):
        raise ValueError(
            f"expected embedding [vocab, {cell.input_size(params)}], received {embedding.shape}"
        )
    sequence.check_tokens(tokens, embedding.shape[0])
    check_options(remat, backward)
    embedding = sequence.cast_inputs(params, embedding)  # rnn_jax.sequence: dtypes
    kernel = None
    if backward == "handwritten":
        kernel = engine.usable_kernel(cell, (params, embedding, carry))
    if kernel is None or tokens.shape[1] == 0:  # the gather feeds the plain unroll's projection
        return plain_unroll(
            cell, params, gather_rows(embedding, tokens), carry=carry, lengths=lengths,
            reverse=reverse, unroll=unroll, remat=remat, backward=backward,
        )
    # padded ids become 0, never read (no NaN row there); ids [time, batch]
    frame = sequence.time_major(cell, params, tokens, carry=carry, lengths=lengths,
                                reverse=reverse)
    table = cell.project_inputs(params, embedding)  # [vocab, gates] = embedding U + b
    ys, carry = engine.run_kernel(
        kernel, gather_rows, params, table, frame.inputs, frame.carry, frame.mask,
        remat=remat, unroll=unroll, per_step=True,
    )
    return sequence.epilogue(frame, ys, carry)
