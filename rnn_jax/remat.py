"""The memory option of every unroll, `remat`: one vocabulary for every backward pass.

    False       keep every step's activations for the backward pass;
    True (or 1) keep only each step's carry; the backward recomputes each step's internals
                (on the autodiff path `jax.checkpoint` of every step, in the hand-written BPTT
                the gates of a span of steps at once): the same trade on both paths;
    k >= 2      chunked checkpointing: keep the carry every k steps and recompute inside each
                chunk in the backward pass; memory O(time/k + k) steps of state;
    "sqrt"      chunked with k = ceil(sqrt(time)).

`remat=1` is a chunk of one step, i.e. `True`. `mode` names the three for the code:
"off" (False), "step" (True or 1), "chunk" (k >= 2 or "sqrt").

This module also holds the chunked unroll of ANY cell through autodiff (`autodiff_chunked`);
the hand-written BPTT's chunked mode lives in `rnn_jax.bptt.engine`.
"""

import math
from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell
from rnn_jax.sequence import select_valid


def check_remat(remat: Any) -> None:
    """Raises a ValueError naming the accepted values of `remat`."""
    valid = isinstance(remat, bool) or remat == "sqrt"
    valid = valid or (isinstance(remat, int) and remat >= 1)
    if not valid:
        raise ValueError(
            f"expected remat False, True, an int chunk size >= 1 or 'sqrt', received {remat!r}"
        )


def chunk_size(remat: Any, time: int) -> int | None:
    """Steps per checkpointed chunk, or None when `remat` asks for no chunking."""
    if isinstance(remat, bool):
        return None
    k = math.ceil(math.sqrt(max(time, 1))) if remat == "sqrt" else remat
    return None if k <= 1 else k


def is_chunked(remat: Any) -> bool:
    """True for k >= 2 or "sqrt" (chunked checkpointing), False for False, True and 1."""
    return not isinstance(remat, bool) and remat != 1


def mode(remat: Any, time: int) -> tuple[str, int]:
    """`(mode, k)`: ("off", 1), ("step", span of the gates' recomputation) or ("chunk", k)."""
    chunk = chunk_size(remat, time)
    if chunk is not None:
        return "chunk", chunk
    if remat:  # the backward recomputes the gates sqrt(time) steps at a time
        return "step", math.ceil(math.sqrt(max(time, 1)))
    return "off", 1


def pad_time(inputs, mask, pad):
    """Appends `pad` padded (masked-out) steps to time-major inputs and mask."""
    if pad == 0:
        return inputs, mask
    time, batch = inputs.shape[:2]
    mask = jnp.ones((time, batch), bool) if mask is None else mask
    inputs = jnp.concatenate([inputs, jnp.zeros((pad,) + inputs.shape[1:], inputs.dtype)])
    return inputs, jnp.concatenate([mask, jnp.zeros((pad, batch), bool)])


def autodiff_chunked(
    cell: Cell, params: Any, xs: jax.Array, carry: Any, mask: jax.Array | None, chunk: int,
    unroll: int | None,
) -> tuple[jax.Array, Any]:
    """Autodiff through a scan of `jax.checkpoint`-ed chunks of `chunk` steps (any cell).

    Time-major: xs `[time, batch, in]`, mask `[time, batch]` -> ys `[time, batch, hidden]`.
    """
    time = xs.shape[0]
    xs, mask = pad_time(xs, mask, -time % chunk)
    xs_proj = cell.project_inputs(params, xs)

    def step(carry, inputs):
        x_proj, valid = inputs
        new_carry, h = cell.step(params, carry, x_proj)
        if valid is None:
            return new_carry, h
        return select_valid(valid, (new_carry, h), (carry, jnp.zeros_like(h)))

    @jax.checkpoint
    def chunk_body(carry, inputs):
        return jax.lax.scan(step, carry, inputs, unroll=unroll or 1)

    split = lambda a: None if a is None else a.reshape((-1, chunk) + a.shape[1:])
    carry, ys = jax.lax.scan(chunk_body, carry, (split(xs_proj), split(mask)))
    return ys.reshape((-1,) + ys.shape[2:])[:time], carry
