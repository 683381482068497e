"""The linear-recurrence cells (minGRU, minLSTM, LRU) evaluated in parallel over time.

Their gates read only x(t), so every step is an affine map of the carry,
`s(t) = a(t) * s(t-1) + b(t)` with `(a, b)` computed from the inputs for all steps at once
(the cell's `linear_form`, written in its file), and `rnn_jax.parallel.linear_scan` solves it
by one `jax.lax.associative_scan` (Feng et al. 2024, arXiv 2410.01201; Orvieto et al. 2023,
arXiv 2303.06349). `parallel_unroll` has `rnn_jax.unroll`'s signature and semantics (padding,
reverse, unbatched inputs) and returns the same outputs and final carry; its gradients are
autodiff through the scan. `unroll` itself still runs these cells step by step.

A cell is linear when it carries a `linear_form` (`rnn_jax.cells.fast_paths.LinearForm`),
never by its name: a cell whose `step` was replaced loses the form and is refused. The input
side (lengths, reverse, unbatched inputs, time-major) is `rnn_jax.sequence.prologue`.
"""

from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax import sequence
from rnn_jax.cells.base import Cell
from rnn_jax.cells.fast_paths import LinearForm
from rnn_jax.parallel.linear_scan import linear_scan, log_linear_scan


def linear_form(cell: Cell) -> LinearForm:
    """The cell's `LinearForm`; a ValueError for a cell that carries none (not a linear cell,
    or one whose `step` was replaced: `Cell._replace` drops the form written for the old one)."""
    if cell.linear_form is None:
        raise ValueError(
            f"expected a linear-recurrence cell (one carrying a linear_form: minGRU, minLSTM, "
            f"LRU), received cell {cell.name!r} with step "
            f"{getattr(cell.step, '__module__', '?')}.{getattr(cell.step, '__name__', cell.step)}"
        )
    return cell.linear_form


def parallel_unroll(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    *,
    carry: Any = None,
    lengths: jax.Array | None = None,
    reverse: bool = False,
    log_space: bool | None = None,
) -> tuple[jax.Array, Any]:
    """`rnn_jax.unroll(cell, params, xs, ...)` by one associative scan over time.

    Args:
      cell: minGRU, minLSTM or LRU (`linear_form`).
      params, xs, carry, lengths, reverse: as `rnn_jax.unroll`; xs `[batch, time, features]`
        or `[time, features]`, lengths `[batch]`.
      log_space: solve in log space (minGRU/minLSTM, as the paper does: gates multiply as sums
        of logs). None: the cell's own choice (log space where it has one).
    Returns:
      `(ys, final_carry)` as `unroll`: ys `[batch, time, hidden]`, zeros at padded steps.
    """
    form = linear_form(cell)
    if log_space is None:
        log_space = form.log_coefficients is not None
    if log_space and form.log_coefficients is None:
        raise ValueError(
            f"{cell.name}: expected log_space False or None (its coefficients are not all "
            f"positive: no log-space form), received {log_space!r}"
        )
    frame = sequence.prologue(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
    x_proj = cell.project_inputs(params, frame.inputs)  # [time, batch, gates]
    coefficients = form.log_coefficients if log_space else form.coefficients
    scan = log_linear_scan if log_space else linear_scan
    a, b = coefficients(params, x_proj)
    states, carry = scan(a, b, frame.carry, mask=frame.mask)
    ys = states if form.emit is None else form.emit(params, states, x_proj)
    if frame.mask is not None:
        ys = jnp.where(frame.mask[..., None], ys, jnp.zeros_like(ys))
    return sequence.epilogue(frame, ys, carry)
