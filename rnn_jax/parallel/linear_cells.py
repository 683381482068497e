"""The linear-recurrence cells (minGRU, minLSTM, LRU) evaluated in parallel over time.

Their gates read only x(t), so every step is an affine map of the carry,
`s(t) = a(t) * s(t-1) + b(t)` with `(a, b)` computed from the inputs for all steps at once
(the cell module's `coefficients`), and `rnn_jax.parallel.linear_scan` solves the recurrence
by one `jax.lax.associative_scan` (Feng et al. 2024, arXiv 2410.01201; Orvieto et al. 2023,
arXiv 2303.06349). `parallel_unroll` has `rnn_jax.unroll`'s signature and semantics (padding,
reverse, unbatched inputs) and returns the same outputs and final carry; its gradients are
autodiff through the scan. `unroll` itself still runs these cells step by step.

A cell is recognised by its `step` function (by identity, as `rnn_jax.bptt.kernel_for` does),
never by name: a cell with a replaced `step` is no longer known to be linear and is refused.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import sequence
from rnn_jax.cells import lru, mingru, minlstm
from rnn_jax.cells.base import Cell
from rnn_jax.parallel.linear_scan import linear_scan, log_linear_scan


class LinearForm(NamedTuple):
    """What the parallel unroll needs of a linear cell (x_proj: `project_inputs`' output)."""

    coefficients: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]  # -> (a, b)
    log_coefficients: Callable | None  # -> (log a, log b) where a > 0, b >= 0; None: no log form
    emit: Callable | None  # (params, states, x_proj) -> outputs; None: the states themselves


FORMS = {
    mingru.step: LinearForm(mingru.coefficients, mingru.log_coefficients, None),
    minlstm.step: LinearForm(minlstm.coefficients, minlstm.log_coefficients, None),
    mingru.signed_step: LinearForm(mingru.signed_coefficients, None, None),  # a in (-1, 1)
    minlstm.signed_step: LinearForm(minlstm.signed_coefficients, None, None),
    lru.step: LinearForm(lru.coefficients, None, lru.emit),
}


def linear_form(cell: Cell) -> LinearForm:
    """The `LinearForm` of `cell`; a ValueError for a cell whose step is not a known linear one."""
    form = FORMS.get(cell.step)
    if form is None:
        known = ", ".join(sorted(f"{step.__module__}.{step.__name__}" for step in FORMS))
        raise ValueError(
            f"expected a linear-recurrence cell (its step one of {known}), received cell "
            f"{cell.name!r} with step {getattr(cell.step, '__module__', '?')}."
            f"{getattr(cell.step, '__name__', cell.step)}"
        )
    return form


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
    sequence.check_inputs(cell, params, xs)
    xs = sequence.cast_inputs(params, xs)
    form = linear_form(cell)
    if log_space is None:
        log_space = form.log_coefficients is not None
    if log_space and form.log_coefficients is None:
        raise ValueError(
            f"{cell.name}: expected log_space False or None (its coefficients are not all "
            f"positive: no log-space form), received {log_space!r}"
        )
    if xs.ndim == 2:  # one unbatched sequence
        carry = None if carry is None else carry[None]
        lengths = None if lengths is None else jnp.reshape(lengths, (1,))
        ys, carry = _batched(cell, form, params, xs[None], carry, lengths, reverse, log_space)
        return ys[0], carry[0]
    return _batched(cell, form, params, xs, carry, lengths, reverse, log_space)


def _batched(cell, form, params, xs, carry, lengths, reverse, log_space):
    batch, time = xs.shape[:2]
    if carry is None:
        carry = cell.initial_carry(params, (batch,))
    sequence.check_carry(cell, params, carry, batch)
    mask = None
    if lengths is not None:
        sequence.check_lengths(lengths, batch, time)
        mask = sequence.sequence_mask(sequence.clamp_lengths(lengths, time), time)
        # padded inputs become zeros before they meet the params (as in unroll)
        xs = jnp.where(mask[..., None], xs, jnp.zeros_like(xs))
        mask = jnp.swapaxes(mask, 0, 1)  # [time, batch]
    x_proj = cell.project_inputs(params, jnp.swapaxes(xs, 0, 1))  # [time, batch, gates]
    coefficients = form.log_coefficients if log_space else form.coefficients
    scan = log_linear_scan if log_space else linear_scan
    a, b = coefficients(params, x_proj)
    states, carry = scan(a, b, carry, mask=mask, reverse=reverse)
    ys = states if form.emit is None else form.emit(params, states, x_proj)
    if mask is not None:
        ys = jnp.where(mask[..., None], ys, jnp.zeros_like(ys))
    return jnp.swapaxes(ys, 0, 1), carry
