"""What every layer shares about sequences: masks, padding-aware reversal, per-example select,
resetting carried state, and the checks of what `unroll` and `unroll_tokens` receive.

The ground floor of the library: it imports only JAX, NumPy and the cell contract, so cells,
`unroll`, the hand-written BPTT, models and the training loop all build on it without a way back.
Arrays are batch-major: `[batch, time, ...]`; masks `[batch, time]` are True on valid steps.

Each check raises a ValueError naming what was expected and what was received, before anything
is computed; under `jit` the checks read only shapes and dtypes, so they cost nothing at run
time. What only the values can tell (lengths under `jit`) is made safe instead: `clamp_lengths`.
"""

from typing import Any

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


def check_lengths(lengths: jax.Array, batch: int, time: int) -> None:
    """Integer `[batch]` lengths; concrete ones must lie in [0, time] (traced: `clamp_lengths`)."""
    if not jnp.issubdtype(jnp.asarray(lengths).dtype, jnp.integer):
        raise ValueError(f"expected integer lengths, received dtype {jnp.asarray(lengths).dtype}")
    if jnp.shape(lengths) != (batch,):
        raise ValueError(f"expected lengths of shape ({batch},), received {jnp.shape(lengths)}")
    if not isinstance(lengths, jax.core.Tracer):
        values = np.asarray(lengths)
        if values.min(initial=0) < 0 or values.max(initial=0) > time:
            raise ValueError(
                f"expected lengths in [0, {time}] (the time axis), received min {values.min()} "
                f"and max {values.max()}"
            )


def clamp_lengths(lengths: jax.Array, time: int) -> jax.Array:
    """Lengths clipped to [0, time]: under `jit` a length > time means the whole sequence and
    a negative one an empty sequence, so no reversal or gather reads outside the time axis."""
    return jnp.clip(lengths, 0, time)


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
