"""Which unroll runs: the hand-written BPTT (`engine`) where a kernel exists, else autodiff.

`remat` (the memory option of `rnn_jax.unroll`):
    False          keep every step's gate activations for the backward pass (fastest);
    True (or 1)    keep only the carries; the backward recomputes the gates (sqrt(time) steps
                   at a time, one large matmul each);
    k >= 2         chunked checkpointing: keep the carry every k steps and recompute inside a
                   chunk in the backward pass; memory O(time/k + k) steps of state;
    "sqrt"         chunked with k = ceil(sqrt(time)).
`backward`: "fast" (hand-written BPTT where the cell has a kernel, autodiff otherwise) or
"autodiff" (`jax.grad` through `jax.lax.scan`, for every cell).

The hand-written BPTT is a `jax.custom_vjp`, which has no forward mode; when the operands are
forward-mode (JVP) tracers, `effective_backward` switches to autodiff, so `jax.jvp` and
`jax.jacfwd` of a function that unrolls work on the default path.
"""

import math
from typing import Any, Callable

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell
from rnn_jax.fast import engine
from rnn_jax.fast.kernels import Kernel, kernel_for
from rnn_jax.sequence import select_valid

try:  # the tracer type of jax.jvp; reverse mode (jax.grad, jax.vjp) traces with another type
    from jax._src.interpreters.ad import JVPTracer as _JVPTracer
except ImportError:  # pragma: no cover - a JAX without it: forward mode needs "autodiff"
    _JVPTracer = ()

BACKWARDS = ("fast", "autodiff")
# The hand-written BPTT's default scan unroll (`unroll=None`). With unroll=2 XLA slices two
# steps at a time out of each saved array, and loop fusions that read two slices of one scanned
# array compile to slow code (`python -m benchmarks.slice_probe`). With the LSTM's gates saved
# as separate arrays, 1 runs about as fast as 2 (`python -m benchmarks.train_step --variants
# "rnn_jax lstm gather+fast,rnn_jax lstm gather+fast (unroll=2)" --rounds 8`: 53.4 vs 54.0 ms at
# B32 H256; `--full`: 63.6 vs 70.7 ms, and 369.2 vs 354.6 ms at B64 H512) and its first step is
# 0.2-0.35 s shorter (1.02 vs 1.22 s, 1.30 vs 1.65 s); benchmarks/README.md, "saved gates".
FAST_UNROLL = 1


def check_options(remat: Any, backward: str) -> None:
    """Raises a ValueError naming the accepted values of `remat` and `backward`."""
    if backward not in BACKWARDS:
        raise ValueError(f"expected backward in {BACKWARDS}, received {backward!r}")
    valid = isinstance(remat, bool) or remat == "sqrt"
    valid = valid or (isinstance(remat, int) and remat >= 1)
    if not valid:
        raise ValueError(
            f"expected remat False, True, an int chunk size >= 1 or 'sqrt', received {remat!r}"
        )


def effective_backward(backward: str, operands: Any) -> str:
    """`backward`, or "autodiff" when any leaf of `operands` is being forward-differentiated."""
    forward_mode = any(isinstance(leaf, _JVPTracer) for leaf in jax.tree.leaves(operands))
    return "autodiff" if forward_mode else backward


def chunk_size(remat: Any, time: int) -> int | None:
    """Steps per checkpointed chunk, or None when `remat` asks for no chunking."""
    if isinstance(remat, bool):
        return None
    k = math.ceil(math.sqrt(max(time, 1))) if remat == "sqrt" else remat
    return None if k <= 1 else k


def handles(cell: Cell, params: Any, remat: Any, backward: str) -> bool:
    """True when `unroll` should call this package instead of its plain scan."""
    chunked = not isinstance(remat, bool) and remat != 1
    return chunked or (backward == "fast" and kernel_for(cell, params) is not None)


def _pad_time(inputs, mask, pad):
    """Appends `pad` padded (masked-out) steps to time-major inputs and mask."""
    if pad == 0:
        return inputs, mask
    time, batch = inputs.shape[:2]
    mask = jnp.ones((time, batch), bool) if mask is None else mask
    inputs = jnp.concatenate([inputs, jnp.zeros((pad,) + inputs.shape[1:], inputs.dtype)])
    return inputs, jnp.concatenate([mask, jnp.zeros((pad, batch), bool)])


def run_kernel(
    kernel: Kernel,
    project: Callable,
    params: Any,
    proj_params: Any,
    inputs: jax.Array,
    carry: Any,
    mask: jax.Array | None,
    *,
    remat: Any = False,
    unroll: int | None = None,
    per_step: bool = False,
) -> tuple[jax.Array, Any]:
    """Hand-written-BPTT unroll, time-major: inputs `[time, batch, ...]` -> ys `[time, batch, h]`.

    `project(proj_params, inputs)` gives the gate pre-activations' input part for all steps;
    `per_step`: the forward applies it one step at a time inside the loop (for gathers).
    """
    time = inputs.shape[0]
    chunk = chunk_size(remat, time)
    if chunk is not None:
        mode, k = "chunk", chunk
    elif remat:  # step remat: the backward recomputes gates sqrt(time) steps at a time
        mode, k = "step", math.ceil(math.sqrt(max(time, 1)))
    else:
        mode, k = "save", 1
    inputs, mask = _pad_time(inputs, mask, 0 if mode == "save" else -time % k)
    unroll = FAST_UNROLL if unroll is None else unroll
    ys, carry = engine.make_unroll(kernel, project, mode, k, unroll, per_step)(
        params, proj_params, inputs, carry, mask
    )
    return ys[:time], carry


def _autodiff_chunked(cell, params, xs, carry, mask, chunk, unroll):
    """Autodiff through a scan of `jax.checkpoint`-ed chunks (any cell), time-major."""
    time = xs.shape[0]
    xs, mask = _pad_time(xs, mask, -time % chunk)
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


def unroll(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    carry: Any,
    mask: jax.Array | None,
    *,
    remat: Any = False,
    backward: str = "fast",
    unroll: int | None = None,
) -> tuple[jax.Array, Any]:
    """Batch-major entry used by `rnn_jax.unroll`: xs `[batch, time, in]`, mask `[batch, time]`.

    Returns ys `[batch, time, hidden]` (zeros at padded steps) and the final carry.
    """
    xs = jnp.swapaxes(xs, 0, 1)
    mask = None if mask is None else jnp.swapaxes(mask, 0, 1)
    kernel = kernel_for(cell, params) if backward == "fast" else None
    if kernel is not None:
        ys, carry = run_kernel(
            kernel, cell.project_inputs, params, params, xs, carry, mask, remat=remat, unroll=unroll
        )
    else:
        chunk = chunk_size(remat, xs.shape[0])
        ys, carry = _autodiff_chunked(cell, params, xs, carry, mask, chunk or 1, unroll)
    return jnp.swapaxes(ys, 0, 1), carry
