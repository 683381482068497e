"""What every layer shares about sequences: masks, padding-aware reversal, per-example select,
resetting carried state, the checks of what `unroll` and `unroll_tokens` receive, and the one
front end of every unroll entry point (`prologue`/`time_major` and its inverse `epilogue`).

The ground floor of the library: it imports only JAX, NumPy and the cell contract, so cells,
`unroll`, the hand-written BPTT, models and the training loop all build on it without a way back.
Arrays are batch-major: `[batch, time, ...]`; masks `[batch, time]` are True on valid steps.

Each check raises a ValueError naming what was expected and what was received, before anything
is computed; under `jit` the checks read only shapes and dtypes, so they cost nothing at run
time. `lengths` may be any array-like of ints (a list, a NumPy or JAX array).

Traced values: the one policy of every entry point
--------------------------------------------------
Values are checked only where they are concrete: eagerly, lengths outside [0, time] and token
ids outside [0, vocab) raise a ValueError naming the range and the values received. Under
`jit`, `grad` or `vmap` a value cannot raise, so each has one documented meaning, the same in
`unroll`, `unroll_bidirectional`, `unroll_stack`, `unroll_tokens`, `deer_unroll`,
`parallel_unroll` and the seq2seq model, loss, decoder and accuracy:
- Lengths are clamped to [0, time] (`clamp_lengths`): a length > time means the whole
  sequence, a negative one an empty sequence (in seq2seq, an empty source: the encoder's
  initial carries and zero attention weights). Lengths outside the range are mostly a
  batch's bookkeeping, and the clamped meaning is the natural one.
- A token id outside [0, vocab) reads a row of NaN (`take_tokens`; a negative id does not
  wrap around to the last rows, as plain indexing would), so every output that depends on it
  is NaN, and so is the loss: the training loop stops on the non-finite loss as a diverged
  step instead of training on another token's embedding. An id at a padded step (past its
  sequence's length) is never read, so it changes nothing.

Dtypes: the params decide the dtype of the computation. Floating inputs of another dtype
(float32 data into bfloat16 or float64 params) are cast to the params' floating dtype
(`cast_inputs`) by `unroll`, `unroll_tokens` and `deer_unroll`, as flax's modules compute in
their params' dtype; a carry of another dtype is refused (`check_carry` names both).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells.base import Cell


def sequence_mask(lengths: jax.Array, time: int) -> jax.Array:
    """`[batch, time]` boolean mask, True on each sequence's valid steps `t < lengths[b]`."""
    return jnp.arange(time)[None, :] < lengths[:, None]


def reverse_padded(xs: jax.Array, lengths: jax.Array | None) -> jax.Array:
    """Reverses the valid prefix of each sequence; padded steps are set to zero.

    `[batch, time, ...] -> [batch, time, ...]`, with out[b, t] = xs[b, lengths[b] - 1 - t].
    Applying it twice restores the valid prefix.
    """
    time = xs.shape[1]
    if lengths is None:
        return jnp.flip(xs, axis=1)
    lengths = clamp_lengths(lengths, time)  # never an index past the time axis
    index = lengths[:, None] - 1 - jnp.arange(time)[None, :]  # [batch, time]
    valid = index >= 0
    index = jnp.where(valid, index, 0).reshape(index.shape + (1,) * (xs.ndim - 2))
    gathered = jnp.take_along_axis(xs, index, axis=1)
    return jnp.where(valid.reshape(valid.shape + (1,) * (xs.ndim - 2)), gathered, 0)


def select_valid(valid: jax.Array, new: Any, old: Any) -> Any:
    """Per-example select on pytrees with leaves `[batch, ...]` (valid: `[batch]`)."""

    def select(a, b):
        return jnp.where(valid.reshape(valid.shape + (1,) * (a.ndim - valid.ndim)), a, b)

    return jax.tree.map(select, new, old)


def reset_state(state: Any, reset: jax.Array) -> Any:
    """Zeros the carried state where `reset` is True.

    Args:
      state: pytree of `[batch, ...]` arrays (e.g. the stream a language model carries from
        batch to batch).
      reset: bool scalar (all rows) or `[batch]` (per row).
    """
    reset = jnp.asarray(reset, bool)

    def zero(leaf):
        mask = reset.reshape(reset.shape + (1,) * (leaf.ndim - reset.ndim))
        return jnp.where(mask, jnp.zeros_like(leaf), leaf)

    return jax.tree.map(zero, state)


def check_inputs(cell: Cell, params: Any, xs: jax.Array) -> None:
    """xs `[batch, time, features]` or `[time, features]`, floating, features from `params`."""
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise ValueError(
            f"{cell.name}: expected floating-point inputs xs, received dtype {xs.dtype}; "
            "one-hot encode or embed integer tokens first"
        )
    if xs.ndim not in (2, 3):
        raise ValueError(
            f"{cell.name}: expected xs of rank 3 [batch, time, features] or rank 2 "
            f"[time, features], received shape {xs.shape}"
        )
    expected = cell.input_size(params)  # also checks that params are this cell's
    if xs.shape[-1] != expected:
        raise ValueError(
            f"{cell.name}: expected {expected} input features (params), received xs with "
            f"shape {xs.shape} ({xs.shape[-1]} features)"
        )


def _dtype(values: Any) -> np.dtype:
    """The dtype of an array, a tracer or any array-like (a list: NumPy's reading of it)."""
    return np.dtype(values.dtype) if hasattr(values, "dtype") else np.asarray(values).dtype


def cast_inputs(params: Any, xs: jax.Array) -> jax.Array:
    """`xs` in the params' floating dtype (module docstring), when the params' floating leaves
    share one and xs is floating of another; otherwise `xs` unchanged."""
    dtypes = {np.dtype(leaf.dtype) for leaf in jax.tree.leaves(params)
              if jnp.issubdtype(leaf.dtype, jnp.floating)}
    if len(dtypes) != 1 or not jnp.issubdtype(xs.dtype, jnp.floating) or xs.dtype in dtypes:
        return xs
    return xs.astype(dtypes.pop())


def check_lengths(lengths: Any, batch: int, time: int) -> None:
    """Integer `[batch]` lengths (any array-like); concrete ones must lie in [0, time] (traced:
    `clamp_lengths`, the module docstring's policy)."""
    dtype, shape = _dtype(lengths), np.shape(lengths)  # static, also of a tracer
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"expected integer lengths, received dtype {dtype}")
    if shape != (batch,):
        raise ValueError(f"expected lengths of shape ({batch},), received {shape}")
    if not isinstance(lengths, jax.core.Tracer):
        values = np.asarray(lengths)
        if values.min(initial=0) < 0 or values.max(initial=0) > time:
            raise ValueError(
                f"expected lengths in [0, {time}] (the time axis), received min {values.min()} "
                f"and max {values.max()}"
            )


def clamp_lengths(lengths: Any, time: int) -> jax.Array:
    """Lengths (any array-like of ints) as an array clipped to [0, time]: under `jit` a length
    > time means the whole sequence and a negative one an empty sequence (module docstring),
    so no reversal or gather reads outside the time axis."""
    return jnp.clip(jnp.asarray(lengths), 0, time)


def check_tokens(tokens: Any, size: int, what: str = "tokens") -> None:
    """A ValueError unless `tokens` are integers, and (when concrete) in [0, size), every
    position checked; traced ids follow the module docstring's policy (`take_tokens`)."""
    dtype = _dtype(tokens)
    if not jnp.issubdtype(dtype, jnp.integer):
        raise ValueError(f"expected integer {what}, received dtype {dtype}")
    if isinstance(tokens, jax.core.Tracer) or np.size(tokens) == 0:
        return
    values = np.asarray(tokens)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= size:
        raise ValueError(f"expected {what} in [0, {size}) (the vocabulary, the embedding's "
                         f"rows), received min {low} and max {high}")


def take_tokens(table: jax.Array, tokens: jax.Array) -> jax.Array:
    """Rows of `table [vocab, features]` for `tokens [...]` ints -> `[..., features]`; an id
    outside [0, vocab), negative ones included, reads a row of NaN (the traced-value policy,
    module docstring)."""
    vocab = table.shape[0]
    inside = (tokens >= 0) & (tokens < vocab)
    return jnp.take(table, jnp.where(inside, tokens, vocab), axis=0, mode="fill",
                    fill_value=jnp.nan)


def check_carry(cell: Cell, params: Any, carry: Any, batch: int) -> None:
    """The carry has the structure, shapes `[batch, ...]` and dtypes of `cell.initial_carry`."""
    leaves, tree = jax.tree.flatten(carry)
    for leaf in leaves:
        if jnp.ndim(leaf) < 2 or jnp.shape(leaf)[0] != batch:
            raise ValueError(
                f"carry batch mismatch: xs has batch size {batch}, received a carry leaf of "
                f"shape {jnp.shape(leaf)} (expected [{batch}, ...])"
            )
    expected = jax.eval_shape(lambda p: cell.initial_carry(p, (batch,)), params)
    expected_leaves, expected_tree = jax.tree.flatten(expected)
    describe = lambda ls: [f"{jnp.dtype(a.dtype).name}{list(jnp.shape(a))}" for a in ls]
    if tree != expected_tree:
        raise ValueError(
            f"{cell.name}: expected a carry structured as {expected_tree}, received {tree}"
        )
    received = [jax.ShapeDtypeStruct(jnp.shape(a), jnp.result_type(a)) for a in leaves]
    if describe(received) != describe(expected_leaves):
        raise ValueError(
            f"{cell.name}: expected carry leaves {describe(expected_leaves)} (from the params), "
            f"received {describe(received)}"
        )


# ---- the front end of `unroll`, `unroll_tokens`, `parallel_unroll` and `deer_unroll` ----


class Frame(NamedTuple):
    """Inputs as an unroll's core receives them, and what `epilogue` needs to undo that."""

    inputs: jax.Array  # [time, batch, ...]: padded steps zero, valid prefixes reversed if asked
    carry: Any  # [batch, ...] leaves, checked against `cell.initial_carry`
    mask: jax.Array | None  # [time, batch], True on valid steps; None without lengths
    lengths: jax.Array | None  # [batch], clamped to [0, time]
    reverse: bool
    unbatched: bool  # the caller passed one sequence without a batch axis


def prologue(
    cell: Cell, params: Any, xs: jax.Array, *, carry: Any = None, lengths: Any = None,
    reverse: bool = False,
) -> Frame:
    """The front end of an unroll of floating inputs: checks `xs` (`check_inputs`), casts it to
    the params' dtype (`cast_inputs`), then `time_major`.

    xs: `[batch, time, features]`, or `[time, features]` for one sequence (then `carry` and
    `lengths` have no batch axis either: `[...]` and a scalar).
    """
    check_inputs(cell, params, xs)
    xs = cast_inputs(params, xs)  # the params' dtype (module docstring: dtypes)
    return time_major(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse,
                      unbatched=xs.ndim == 2)


def time_major(
    cell: Cell, params: Any, inputs: jax.Array, *, carry: Any = None, lengths: Any = None,
    reverse: bool = False, unbatched: bool = False,
) -> Frame:
    """`inputs [batch, time, ...]` (features, or token ids `[batch, time]`) as a `Frame`.

    In order: a batch axis added when `unbatched`; the carry from `cell.initial_carry` when
    None, then checked (`check_carry`); lengths checked (`check_lengths`) and clamped, and
    padded inputs replaced by zeros before they meet the params (so whatever they hold, NaN
    included, reaches neither outputs nor gradients of valid steps; a padded token id reads
    row 0); each valid prefix reversed when `reverse` (`reverse_padded`); time-major.
    """
    if unbatched:
        inputs = inputs[None]
        carry = None if carry is None else jax.tree.map(lambda leaf: leaf[None], carry)
        lengths = None if lengths is None else jnp.reshape(lengths, (1,))
    batch, time = inputs.shape[:2]
    carry = cell.initial_carry(params, (batch,)) if carry is None else carry
    check_carry(cell, params, carry, batch)
    mask = None
    if lengths is not None:
        check_lengths(lengths, batch, time)
        lengths = clamp_lengths(lengths, time)
        valid = sequence_mask(lengths, time)  # [batch, time]
        inputs = jnp.where(valid.reshape(valid.shape + (1,) * (inputs.ndim - 2)), inputs,
                           jnp.zeros_like(inputs))
        mask = jnp.swapaxes(valid, 0, 1)
    if reverse:
        inputs = reverse_padded(inputs, lengths)
    return Frame(jnp.swapaxes(inputs, 0, 1), carry, mask, lengths, reverse, unbatched)


def epilogue(frame: Frame, ys: jax.Array, carry: Any) -> tuple[jax.Array, Any]:
    """The inverse of `time_major` on the results: ys `[time, batch, ...]` -> batch-major, in
    the original time order, without the batch axis where the inputs had none; so the carry."""
    ys = jnp.swapaxes(ys, 0, 1)  # [batch, time, ...]
    if frame.reverse:
        ys = reverse_padded(ys, frame.lengths)
    if frame.unbatched:
        return ys[0], jax.tree.map(lambda leaf: leaf[0], carry)
    return ys, carry
