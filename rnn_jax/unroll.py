"""Unrolling cells over time with `jax.lax.scan`: lengths/masks, reverse, bidirectional, stacks.

The rule: `carry(t), h(t) = cell.step(params, carry(t-1), x_proj(t))`, one `jax.lax.scan` over
time, with `x_proj = cell.project_inputs(params, xs)` for all steps as one matmul before it
(only the recurrent part runs inside the scan). Public arrays are batch-major,
`xs: [batch, time, features]` (or unbatched `[time, features]`); one transpose makes them
time-major for the scan. Its gradients are `jax.grad` of that scan.

Padding: with `lengths: [batch]`, steps `t >= lengths[b]` keep the carry unchanged and emit
zeros, so the final carry is the state after each sequence's last real step. Padded inputs are
replaced by zeros before they meet the params (the "double where"), so whatever they hold
(NaN, inf) reaches neither the outputs nor the gradients of the valid steps.
Lengths may be any array-like of ints. Concrete lengths outside [0, time] raise a ValueError;
traced ones (under `jit`) are clipped to [0, time]: a length > time means the whole sequence
(the one policy for traced values of every entry point: `rnn_jax.sequence`'s docstring).

The input side (checks, dtype, carry, lengths and mask, reverse, time-major, and back) is
`rnn_jax.sequence.prologue`/`epilogue`, shared with `unroll_tokens`, `parallel_unroll` and
`deer_unroll`. The same outputs can come with another backward pass: the hand-written BPTT of
`rnn_jax.bptt` for a cell that carries one (`cell.bptt_kernel`: the library's LSTM, GRU and
vanilla cells), and chunked checkpointing (`rnn_jax.remat`) for any other cell when `remat`
asks for chunks. Both equal the plain scan's gradients.
"""

from typing import Any, NamedTuple, Sequence

import jax
import jax.numpy as jnp

from rnn_jax import remat as remat_option
from rnn_jax import sequence
from rnn_jax.bptt import engine
from rnn_jax.cells.base import Cell
from rnn_jax.sequence import select_valid, sequence_mask

BACKWARDS = ("handwritten", "autodiff")


def unroll(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    *,
    carry: Any = None,
    lengths: jax.Array | None = None,
    reverse: bool = False,
    unroll: int | None = None,
    remat: bool | int | str = False,
    backward: str = "handwritten",
) -> tuple[jax.Array, Any]:
    """Runs `cell` over the time axis of `xs`.

    Args:
      cell: a `Cell`.
      params: that cell's params.
      xs: `[batch, time, features]`, or `[time, features]` for one unbatched sequence; cast
        to the params' floating dtype when it differs (`rnn_jax.sequence`'s dtype rule).
      carry: initial carry (batch leading); zeros from `cell.initial_carry` when None.
      lengths: `[batch]` ints in [0, time]; steps past a sequence's length are padding (under
        `jit`, values outside [0, time] are clipped to it).
      reverse: run each sequence from its last valid step back to its first; outputs are
        returned in the original time order.
      unroll: `jax.lax.scan`'s unroll factor; None: 1 (on the hand-written BPTT path
        `rnn_jax.bptt.engine.DEFAULT_UNROLL`, which says why).
      remat: memory of the backward pass (`rnn_jax.remat`): False keeps every step's
        activations; True (or 1) keeps only each step's carry and recomputes each step's
        internals; an int k >= 2 (or "sqrt": k = ceil(sqrt(time))) keeps the carry every k
        steps and recomputes inside each chunk.
      backward: "handwritten" (default) uses the hand-written BPTT of `rnn_jax.bptt` where the
        cell carries one (`cell.bptt_kernel`: the library's LSTM, GRU and vanilla cells, not
        a cell whose step was replaced) and autodiff elsewhere; "autodiff" always
        differentiates the scan with `jax.grad`. Both give the same gradients. The
        hand-written BPTT is reverse mode only: forward mode (`jax.jvp`, `jax.jacfwd`) of a
        function calling `unroll` runs autodiff by itself (`bptt.engine.usable_kernel`), but
        `jax.jvp` of an already-jitted function or of `jax.linearize` cannot be seen from
        here and needs `backward="autodiff"`.
    Returns:
      `(ys, final_carry)`: ys `[batch, time, hidden]` (zeros at padded steps), and the carry
      after each sequence's last valid step. An empty time axis gives empty ys and the
      initial carry.
    """
    check_options(remat, backward)
    frame = sequence.prologue(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
    if frame.inputs.shape[0] == 0:
        return sequence.epilogue(frame, empty_outputs(cell, params, frame), frame.carry)
    return sequence.epilogue(frame, *_run(cell, params, frame, unroll, remat, backward))


def _run(cell, params, frame, unroll_factor, remat, backward):
    """`(ys [time, batch, hidden], final carry)` by one of three paths with the same outputs:
    the hand-written BPTT (`engine.usable_kernel`), chunked autodiff (remat k >= 2 or
    "sqrt"), or the plain scan (`_scan`)."""
    xs, carry, mask = frame.inputs, frame.carry, frame.mask  # time-major: [time, batch, in]
    kernel = engine.usable_kernel(cell, (params, xs, carry)) if backward == "handwritten" else None
    if kernel is not None:
        return engine.run_kernel(kernel, cell.project_inputs, params, params, xs, carry, mask,
                                 remat=remat, unroll=unroll_factor)
    if remat_option.is_chunked(remat):
        chunk = remat_option.chunk_size(remat, xs.shape[0])
        return remat_option.autodiff_chunked(cell, params, xs, carry, mask, chunk or 1,
                                             unroll_factor)
    return _scan(cell, params, xs, carry, mask, remat, unroll_factor)


def empty_outputs(cell: Cell, params: Any, frame: sequence.Frame) -> jax.Array:
    """`[0, batch, hidden]` outputs of an empty time axis, with the step's width and dtype."""
    _, batch, features = frame.inputs.shape
    x_t = jax.ShapeDtypeStruct((batch, features), frame.inputs.dtype)
    one_step = lambda p, c, x: cell.step(p, c, cell.project_inputs(p, x))[1]
    h = jax.eval_shape(one_step, params, frame.carry, x_t)
    return jnp.zeros((0, batch) + h.shape[1:], h.dtype)


def _scan(cell, params, xs, carry, mask, remat, unroll_factor):
    """The rule itself, time-major: xs `[time, batch, in]`, mask `[time, batch]` or None."""
    xs_proj = cell.project_inputs(params, xs)  # [time, batch, gates], one matmul
    step = jax.checkpoint(cell.step) if remat else cell.step  # remat=True: keep only carries
    # the per-sequence part of the step (cells/base.py), once, outside the loop
    step_params = params if cell.prepare is None else cell.prepare(params, xs.shape[1:-1])

    if mask is None:

        def body(carry, x_proj):
            return step(step_params, carry, x_proj)

        carry, ys = jax.lax.scan(body, carry, xs_proj, unroll=unroll_factor or 1)
    else:

        def body(carry, inputs):
            x_proj, valid = inputs
            new_carry, h = step(step_params, carry, x_proj)
            return select_valid(valid, (new_carry, h), (carry, jnp.zeros_like(h)))

        carry, ys = jax.lax.scan(body, carry, (xs_proj, mask), unroll=unroll_factor or 1)
    return ys, carry


def check_options(remat: Any, backward: str) -> None:
    """Raises a ValueError naming the accepted values of `remat` and `backward`."""
    if backward not in BACKWARDS:
        renamed = '; "fast" was renamed "handwritten"' if backward == "fast" else ""
        raise ValueError(f"expected backward in {BACKWARDS}, received {backward!r}{renamed}")
    remat_option.check_remat(remat)


class BidirectionalParams(NamedTuple):
    forward: Any
    backward: Any


def init_bidirectional(cell: Cell, key: jax.Array, input_size: int, hidden_size: int, **options):
    """Independent params for the forward and the backward direction."""
    key_fw, key_bw = jax.random.split(key)
    return BidirectionalParams(
        forward=cell.init(key_fw, input_size, hidden_size, **options),
        backward=cell.init(key_bw, input_size, hidden_size, **options),
    )


def unroll_bidirectional(
    cell: Cell,
    params: BidirectionalParams,
    xs: jax.Array,
    *,
    carry: tuple[Any, Any] | None = None,
    lengths: jax.Array | None = None,
    **unroll_options,
) -> tuple[jax.Array, tuple[Any, Any]]:
    """Forward and reversed unroll, outputs concatenated: `[batch, time, 2*hidden]`.

    At step t the forward half summarises x(1..t) and the backward half x(t..length); under
    padding the backward pass starts at each sequence's last valid step.
    """
    carry_fw, carry_bw = (None, None) if carry is None else carry
    ys_fw, carry_fw = unroll(
        cell, params.forward, xs, carry=carry_fw, lengths=lengths, **unroll_options
    )
    ys_bw, carry_bw = unroll(
        cell, params.backward, xs, carry=carry_bw, lengths=lengths, reverse=True, **unroll_options
    )
    return jnp.concatenate([ys_fw, ys_bw], axis=-1), (carry_fw, carry_bw)


def output_size(cell: Cell, params: Any) -> int:
    """Width of the outputs `ys` that `cell` emits with `params` (shape inference, no compute)."""
    xs = jax.ShapeDtypeStruct((1, 1, cell.input_size(params)), jnp.float32)
    ys = jax.eval_shape(lambda p, x: unroll(cell, p, x)[0], params, xs)
    return ys.shape[-1]


def init_stack(
    key: jax.Array,
    cells: Sequence[Cell],
    input_size: int,
    hidden_sizes: Sequence[int],
    *,
    bidirectional: bool = False,
    **options,
) -> tuple[Any, ...]:
    """Params for a deep RNN: layer l is `cells[l]` with `hidden_sizes[l]` units, fed by the
    outputs of layer l-1 (the inputs for l = 0)."""
    if len(cells) != len(hidden_sizes):
        raise ValueError(
            f"expected one hidden size per cell, received {len(cells)} cells and "
            f"{len(hidden_sizes)} hidden sizes"
        )
    layers = []
    for cell, hidden_size, layer_key in zip(cells, hidden_sizes, jax.random.split(key, len(cells))):
        if bidirectional:
            params = init_bidirectional(cell, layer_key, input_size, hidden_size, **options)
            input_size = 2 * output_size(cell, params.forward)
        else:
            params = cell.init(layer_key, input_size, hidden_size, **options)
            input_size = output_size(cell, params)
        layers.append(params)
    return tuple(layers)


def unroll_stack(
    cells: Sequence[Cell],
    params: Sequence[Any],
    xs: jax.Array,
    *,
    carries: Sequence[Any] | None = None,
    lengths: jax.Array | None = None,
    bidirectional: bool = False,
    residual: bool = False,
    **unroll_options,
) -> tuple[jax.Array, tuple[Any, ...]]:
    """Runs a deep RNN: `[batch, time, in] -> [batch, time, out of the last layer]`.

    With `residual=True`, a layer whose output width equals its input width adds its input to
    its output (a skip connection); layers that change width are left as they are.
    Returns the last layer's outputs and a tuple of every layer's final carry.
    """
    if len(cells) != len(params):
        raise ValueError(f"expected one params per cell, received {len(cells)} and {len(params)}")
    carries = (None,) * len(cells) if carries is None else carries
    run = unroll_bidirectional if bidirectional else unroll
    final_carries = []
    for cell, layer_params, carry in zip(cells, params, carries):
        ys, carry = run(cell, layer_params, xs, carry=carry, lengths=lengths, **unroll_options)
        if residual and ys.shape[-1] == xs.shape[-1]:
            skip = xs if lengths is None else jnp.where(sequence_mask(
                sequence.clamp_lengths(lengths, xs.shape[1]), xs.shape[1])[..., None], xs, 0.0)
            ys = ys + skip  # padded steps stay zero
        xs = ys
        final_carries.append(carry)
    return xs, tuple(final_carries)
