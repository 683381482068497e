"""Checks of what `unroll` and `unroll_tokens` receive, at trace time (shapes, dtypes, sizes).

Each check raises a ValueError naming what was expected and what was received, before anything
is computed; under `jit` the checks read only shapes and dtypes, so they cost nothing at run
time. What only the values can tell (lengths under `jit`) is made safe instead: `clamp_lengths`.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.cells.base import Cell


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
