"""The unroll with a hand-written backward pass (`jax.custom_vjp`), generic over `Kernel`s.

Time-major inside: `inputs: [time, batch, ...]`, `mask: [time, batch]` (True on valid steps;
padded steps keep the carry and emit zeros), `ys: [time, batch, hidden]`. The per-cell pieces
are each cell's `bptt_kernel` (`rnn_jax.cells.fast_paths.Kernel`, written in the cell's file);
`rnn_jax.unroll` and `rnn_jax.tokens` call `run_kernel` with `usable_kernel(cell, operands)`.

The reverse scan holds only `delta(t) @ W^T` and the elementwise gate math; the recurrent
weight gradients (`sum_t h(t-1)^T delta(t)`) and the input projection's VJP (input weights,
bias, inputs) run after it as large matmuls over all steps of a span. The memory option is
`rnn_jax.remat`'s `remat`, as a mode (`rnn_jax.remat.mode`):

    remat=False  ("off")    save the gate activations of every step (k is ignored)
    remat=True   ("step")   save only the carry of every step; the backward recomputes the
                            gates of k steps at a time with one large matmul, so the extra
                            memory is k steps of gates; no sequential recomputation
    remat=k      ("chunk")  save the carry every k steps; the backward re-runs each chunk
                            forward, then its reverse scan (chunked checkpointing). Memory
                            O(time/k carries + k steps of gates).
In "step" and "chunk" modes time must be a multiple of k (`run_kernel` pads with masked steps).
"""

import functools
from functools import lru_cache
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import jax_state
from rnn_jax import remat as remat_option
from rnn_jax.cells.base import Cell
from rnn_jax.cells.fast_paths import Kernel
from rnn_jax.sequence import select_valid

tree_map = jax.tree.map


def _shift(carry0: Any, carries: Any) -> Any:
    """Carries before each step: `[carry0, carries[0], ..., carries[-2]]`."""
    return tree_map(lambda c0, cs: jnp.concatenate([c0[None], cs[:-1]], axis=0), carry0, carries)


def _forward_span(kernel: Kernel, params, xs, carry, mask, unroll, save, project_step=None):
    """Scan over one span: returns (final carry, carries per step, saved per step or None).

    `xs` are the projected inputs, or, with `project_step`, raw inputs projected one step at a
    time inside the loop (`project_step(x(t)) -> x_proj(t)`, e.g. a row gather for tokens).
    """

    def body(carry, inputs):
        x, valid = inputs
        x_proj = x if project_step is None else project_step(x)
        new_carry, saved = kernel.forward(params, carry, x_proj)
        if valid is not None:
            new_carry = select_valid(valid, new_carry, carry)
        return new_carry, (new_carry, saved if save else None)

    final, (carries, saved) = jax.lax.scan(body, carry, (xs, mask), unroll=unroll)
    return final, carries, saved


def _outputs(kernel: Kernel, carries, mask):
    ys = kernel.output(carries)
    return ys if mask is None else select_valid(mask, ys, jnp.zeros_like(ys))


def _backward_span(
    kernel: Kernel, params, weights, carry0, carries, saved, mask, dys, dcarry, unroll
):
    """Reverse scan over one span: returns (dcarry before the span, param grads, deltas).

    `weights = kernel.backward_weights(params)` (W^T), made once by the caller for all spans.
    """
    carries_prev = _shift(carry0, carries)

    def body(dcarry, inputs):
        saved_t, prev_t, carry_t, dy, valid = inputs
        if valid is not None:
            dy = jnp.where(valid[:, None], dy, 0.0)  # padded outputs are constant zeros
        dcarry_t = kernel.add_output_grad(dcarry, dy)
        dprev, delta = kernel.backward(weights, saved_t, prev_t, carry_t, dcarry_t)
        if valid is not None:
            dprev = select_valid(valid, dprev, dcarry)  # padded steps pass the carry through
            delta = jnp.where(valid[:, None], delta, 0.0)
        return dprev, delta

    xs = (saved, carries_prev, carries, dys, mask)
    dcarry0, deltas = jax.lax.scan(body, dcarry, xs, reverse=True, unroll=unroll)
    return dcarry0, kernel.param_grads(params, carries_prev, saved, deltas), deltas


def _projection_vjp(project: Callable, proj_params, inputs, deltas):
    """VJP of `project(proj_params, inputs)`; integer inputs (tokens) get no cotangent."""
    if jnp.issubdtype(inputs.dtype, jnp.integer):
        _, vjp = jax.vjp(lambda p: project(p, inputs), proj_params)
        return vjp(deltas)[0], None
    _, vjp = jax.vjp(project, proj_params, inputs)
    return vjp(deltas)


def _forward_inputs(project, proj_params, inputs, per_step):
    """(xs, project_step) for `_forward_span`: projected inputs, or raw ones projected per step."""
    if per_step:
        return inputs, functools.partial(project, proj_params)
    return project(proj_params, inputs), None


def _chunks(a, chunk):
    return None if a is None else a.reshape((a.shape[0] // chunk, chunk) + a.shape[1:])


class _Spec(NamedTuple):
    """What `make_unroll` fixes: the kernel, the projection and the memory mode."""

    kernel: Kernel
    project: Callable
    mode: str
    k: int
    unroll: int
    per_step: bool


def _forward(spec: _Spec, params, proj_params, inputs, carry0, mask):
    """The custom VJP's forward: `((ys, final), residuals)`; "chunk" keeps each chunk's start."""
    kernel, project, per_step = spec.kernel, spec.project, spec.per_step
    if spec.mode != "chunk":
        xs, project_step = _forward_inputs(project, proj_params, inputs, per_step)
        final, carries, saved = _forward_span(
            kernel, params, xs, carry0, mask, spec.unroll, spec.mode == "off", project_step
        )
        ys = _outputs(kernel, carries, mask)
        return (ys, final), (params, proj_params, inputs, carry0, mask, carries, saved)

    def chunk_body(carry, chunk_inputs):
        inputs_c, mask_c = chunk_inputs
        xs, project_step = _forward_inputs(project, proj_params, inputs_c, per_step)
        final, carries, _ = _forward_span(
            kernel, params, xs, carry, mask_c, spec.unroll, False, project_step
        )
        return final, (carry, _outputs(kernel, carries, mask_c))

    final, (starts, ys) = jax.lax.scan(
        chunk_body, carry0, (_chunks(inputs, spec.k), _chunks(mask, spec.k))
    )
    ys = ys.reshape((-1,) + ys.shape[2:])
    return (ys, final), (params, proj_params, inputs, carry0, mask, starts, None)


def _backward(spec: _Spec, residuals, cotangents):
    """The custom VJP's backward: `(grads, dproj, dinputs, dcarry0, None)`."""
    params, proj_params, inputs, carry0, mask, carries, saved = residuals
    dys, dfinal = cotangents
    weights = spec.kernel.backward_weights(params)  # W^T, laid out once for the reverse dots
    if spec.mode == "off":
        dcarry0, grads, deltas = _backward_span(
            spec.kernel, params, weights, carry0, carries, saved, mask, dys, dfinal, spec.unroll
        )
        dproj, dinputs = _projection_vjp(spec.project, proj_params, inputs, deltas)
        return grads, dproj, dinputs, dcarry0, None
    k = spec.k
    if spec.mode == "chunk":
        starts, carries = carries, None
    else:  # the carry before each span of k steps
        ends = tree_map(lambda a: a[k - 1 :: k][:-1], carries)
        starts = tree_map(lambda c0, e: jnp.concatenate([c0[None], e]), carry0, ends)
        carries = tree_map(lambda a: _chunks(a, k), carries)
    span_inputs = (starts, carries, _chunks(inputs, k), _chunks(mask, k), _chunks(dys, k))
    dcarry0, grads, dproj, dinputs = _backward_spans(
        spec, params, proj_params, weights, span_inputs, dfinal
    )
    if dinputs is not None:
        dinputs = dinputs.reshape(inputs.shape)
    return grads, dproj, dinputs, dcarry0, None


def _backward_spans(spec: _Spec, params, proj_params, weights, span_inputs, dfinal):
    """Reverse scan over spans of k steps ("step" and "chunk" modes): each span recomputes its
    gates (all k at once, or by re-running the chunk's forward), then its reverse scan."""
    kernel, project, per_step = spec.kernel, spec.project, spec.per_step

    def span_body(state, span):
        dcarry, grads, dproj = state
        start, carries_c, inputs_c, mask_c, dys_c = span
        if spec.mode == "chunk":  # re-run the chunk's forward scan from its saved carry
            xs, project_step = _forward_inputs(project, proj_params, inputs_c, per_step)
            _, carries_c, saved_c = _forward_span(
                kernel, params, xs, start, mask_c, spec.unroll, True, project_step
            )
        else:  # every carry is saved: all k steps' gates at once, one large matmul
            xs_proj = project(proj_params, inputs_c)
            saved_c = kernel.forward(params, _shift(start, carries_c), xs_proj)[1]
        dcarry, grads_c, deltas = _backward_span(
            kernel, params, weights, start, carries_c, saved_c, mask_c, dys_c, dcarry,
            spec.unroll,
        )
        dproj_c, dinputs_c = _projection_vjp(project, proj_params, inputs_c, deltas)
        state = (dcarry, tree_map(jnp.add, grads, grads_c), tree_map(jnp.add, dproj, dproj_c))
        return state, dinputs_c

    zeros = (tree_map(jnp.zeros_like, params), tree_map(jnp.zeros_like, proj_params))
    (dcarry0, grads, dproj), dinputs = jax.lax.scan(
        span_body, (dfinal, *zeros), span_inputs, reverse=True
    )
    return dcarry0, grads, dproj, dinputs


@lru_cache(maxsize=None)
def make_unroll(
    kernel: Kernel, project: Callable, mode: str, k: int, unroll: int, per_step: bool = False
):
    """`f(params, proj_params, inputs, carry0, mask) -> (ys, final_carry)` with a custom VJP.

    `mode, k`: the memory mode and its span (module docstring; `rnn_jax.remat.mode`).
    `project(proj_params, inputs) -> xs_proj [time, batch, gates]` is the time-parallel input
    projection (e.g. `cell.project_inputs`, or a gather from a `[vocab, gates]` table). With
    `per_step` the forward scans project one step at a time instead (cheap projections only,
    such as the gather: no `[time, batch, gates]` buffer is written and read back).
    """
    if mode not in ("off", "step", "chunk"):
        raise ValueError(f"expected mode 'off', 'step' or 'chunk', received {mode!r}")
    spec = _Spec(kernel, project, mode, k, unroll, per_step)

    @jax.custom_vjp
    def run(params, proj_params, inputs, carry0, mask):
        return _forward(spec, params, proj_params, inputs, carry0, mask)[0]

    run.defvjp(functools.partial(_forward, spec), functools.partial(_backward, spec))
    return run


# The default scan unroll (`unroll=None`) of the hand-written BPTT. With unroll=2 XLA slices two
# steps at a time out of each saved array, and XLA:CPU compiles a loop fusion that reads two
# slices of one scanned array into slower code; with the LSTM's gates saved as separate arrays,
# 1 runs as fast as 2 and compiles sooner.
DEFAULT_UNROLL = 1


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
    `remat`: as for `rnn_jax.unroll` (`rnn_jax.remat`); `unroll`: None is `DEFAULT_UNROLL`.
    """
    time = inputs.shape[0]
    mode, k = remat_option.mode(remat, time)
    inputs, mask = remat_option.pad_time(inputs, mask, 0 if mode == "off" else -time % k)
    unroll = DEFAULT_UNROLL if unroll is None else unroll
    ys, carry = make_unroll(kernel, project, mode, k, unroll, per_step)(
        params, proj_params, inputs, carry, mask
    )
    return ys[:time], carry


def usable_kernel(cell: Cell, operands: Any) -> Kernel | None:
    """The cell's `bptt_kernel`, or None where it cannot run: the cell has none, or a leaf of
    `operands` is being forward-differentiated (`jax.jvp`, `jax.jacfwd`), which a
    `jax.custom_vjp` does not support, so autodiff runs instead.

    The one place the library asks about forward mode (`rnn_jax.jax_state`, tested there).
    `jax.jvp` of an already-jitted function or of `jax.linearize` cannot be seen from here.
    """
    if cell.bptt_kernel is None or jax_state.is_forward_mode(operands):
        return None
    return cell.bptt_kernel
