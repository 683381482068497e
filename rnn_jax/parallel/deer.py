"""Any cell evaluated in parallel over time by Newton iterations: DEER and quasi-DEER.

`deer_unroll(cell, params, xs)` returns what `rnn_jax.unroll` returns (to the tolerance), plus
a `NewtonInfo`: the whole trajectory is the root of `f(s(t-1), x(t)) - s(t)` for all t, found
by Newton's method whose every iteration is a linear recurrence solved by
`jax.lax.associative_scan` (the method, its references and the adjoint: `deer_grad.py`).

- `jacobian="full"`: DEER (Lim et al., ICLR 2024, arXiv 2309.12252): exact Newton with the
  `[D, D]` Jacobians of the step; few iterations, but O(T D^3) work in the scan.
- `jacobian="diagonal"`: quasi-DEER (Gonzalez et al., NeurIPS 2024, arXiv 2407.19115): only
  the Jacobians' diagonals in the scan, O(T D); more iterations. A cell that carries a
  `jacobian_diagonal` (the library's vanilla, GRU and LSTM: closed forms at one step's cost,
  written and derived in each cell's file) gives it directly; for any other `step` it is read
  off the full Jacobian (D JVPs per step), so there only the scan is cheaper.
- `jacobian="diagonal", damping=lambda > 0`: quasi-ELK (the same paper, sec. 4): each step is
  the Levenberg-Marquardt step with the trust-region penalty `lambda * |s - s^k|^2`, a Kalman
  smoother solved by associative scans; it trades speed of convergence for stability where
  the Jacobians' products grow (an unstable or barely stable network). Same fixed point.
  Padded steps (past `lengths`) are identities, exact under linearisation, so they are not
  damped (`deer_grad._per_step_damping`): a padded batch converges in about the iterations
  of an unpadded one, instead of creeping along its padded tail.

The carry pytree is flattened into one state vector per example (the LSTM's (h, c) becomes
`[2*hidden]`), so any cell runs through its `step`; its carry must be real floating point.
Lengths and reverse mean what they mean for `unroll`: a padded step is the identity on the
state (its Jacobian is I) and emits zeros.

Non-convergence (residual still > tol after `max_iterations`) is detected by the returned
`NewtonInfo.converged`, and `on_failure` chooses what follows:
- "sequential" (default): the trajectory is recomputed by the sequential scan (inside the
  program, by `lax.cond`, so it works under `jit`), so the outputs are always right and a
  diverging Newton never reaches the caller; outside `jit` a `RuntimeWarning` names the
  residual and the iterations. The choice follows the issue's option of a fallback: training
  must not stop because one batch made the network less contractive.
- "raise": a `RuntimeError` with the residual and the iterations; needs concrete values (not
  under `jit` or `grad`), otherwise a ValueError says so before anything runs.
- "return": the last Newton iterate as it is; read `NewtonInfo.converged`.
The adjoint solve in the backward pass always falls back to the sequential scan.

Under `vmap` the `lax.cond` of "sequential" becomes a select, so the sequential scan always
runs as well: use "return" there and read the info (which is then per member).

Default tolerance on the absolute residual max_t |f(s(t-1), x(t)) - s(t)|: `DEFAULT_TOL` by
dtype, well above the rounding of a state of order one (the scan's products round at each of
its log T levels), well below what a model's outputs notice.
"""

import warnings
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import sequence
from rnn_jax.cells.base import Cell
from rnn_jax.parallel.deer_grad import NewtonInfo, linearize, make_solve
from rnn_jax.unroll import empty_outputs

JACOBIANS = ("full", "diagonal")
ON_FAILURE = ("sequential", "raise", "return")
_TRACED_RAISE = (
    "on_failure='raise' needs concrete values (not under jit, grad or vmap), received traced "
    "inputs; use 'sequential' or 'return' and read NewtonInfo.converged"
)
DEFAULT_TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-10}


def check_options(
    jacobian: str, tol: Any, max_iterations: Any, on_failure: str, damping: Any = 0.0
) -> None:
    """A ValueError naming the expected and the received value of each Newton option."""
    if not (isinstance(damping, (int, float)) and np.isfinite(damping) and damping >= 0):
        raise ValueError(f"expected damping a finite number >= 0, received {damping!r}")
    if damping and jacobian != "diagonal":
        raise ValueError(
            f"expected jacobian='diagonal' with damping > 0 (quasi-ELK), received "
            f"jacobian={jacobian!r} with damping={damping!r}"
        )
    if jacobian not in JACOBIANS:
        raise ValueError(f"expected jacobian in {JACOBIANS}, received {jacobian!r}")
    if on_failure not in ON_FAILURE:
        raise ValueError(f"expected on_failure in {ON_FAILURE}, received {on_failure!r}")
    if tol is not None and not (isinstance(tol, (int, float)) and np.isfinite(tol) and tol > 0):
        raise ValueError(f"expected tol a finite number > 0 (or None), received {tol!r}")
    is_int = isinstance(max_iterations, (int, np.integer)) and not isinstance(max_iterations, bool)
    if not is_int or max_iterations < 1:
        raise ValueError(f"expected max_iterations an int >= 1, received {max_iterations!r}")


def _check_carry_dtype(cell: Cell, carry: Any) -> jnp.dtype:
    dtypes = {jnp.asarray(leaf).dtype for leaf in jax.tree.leaves(carry)}
    if len(dtypes) != 1 or not jnp.issubdtype(next(iter(dtypes)), jnp.floating):
        raise ValueError(
            f"{cell.name}: DEER needs a real floating-point carry of one dtype (its Jacobian "
            f"is real), received carry dtypes {sorted(map(str, dtypes))}"
        )
    return next(iter(dtypes))


def flattener(carry: Any):
    """`(flat, unflat)` between a carry pytree `[*batch, ...]` and `[*batch, D]` arrays;
    `unflat` accepts any leading axes."""
    leaves, tree = jax.tree.flatten(carry)
    batch_ndim = leaves[0].ndim - 1  # carries are `[*batch, features...]`; cells here have 1
    tails = [leaf.shape[batch_ndim:] for leaf in leaves]
    sizes = [int(np.prod(tail)) for tail in tails]

    def flat(c):
        return jnp.concatenate(
            [leaf.reshape(*leaf.shape[: leaf.ndim - len(t)], -1)
             for leaf, t in zip(jax.tree.leaves(c), tails)], axis=-1,
        )

    def unflat(s):
        parts = jnp.split(s, np.cumsum(sizes)[:-1].tolist(), axis=-1)
        return jax.tree.unflatten(
            tree, [p.reshape(*p.shape[:-1], *t) for p, t in zip(parts, tails)]
        )

    return flat, unflat


def deer_unroll(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    *,
    carry: Any = None,
    lengths: jax.Array | None = None,
    reverse: bool = False,
    jacobian: str = "full",
    tol: float | None = None,
    max_iterations: int = 100,
    on_failure: str = "sequential",
    damping: float = 0.0,
) -> tuple[jax.Array, Any, NewtonInfo]:
    """`rnn_jax.unroll`'s outputs computed by (quasi-)Newton iterations over the whole time axis.

    Args:
      cell, params, xs, carry, lengths, reverse: as for `rnn_jax.unroll`; xs
        `[batch, time, features]` or `[time, features]`.
      jacobian: "full" (DEER) or "diagonal" (quasi-DEER).
      tol: stop when max_t |f(s(t-1), x(t)) - s(t)| <= tol; None: `DEFAULT_TOL` of the dtype.
      max_iterations: Newton updates at most (>= 1).
      on_failure: "sequential", "raise" or "return" (module docstring).
      damping: 0, or > 0 with `jacobian="diagonal"`: quasi-ELK's damped steps (module
        docstring).
    Returns:
      `(ys [batch, time, hidden], final_carry, NewtonInfo)`; gradients through ys and the carry
      come from DEER's adjoint recurrence (`deer_grad.make_solve`).
    """
    check_options(jacobian, tol, max_iterations, on_failure, damping)
    if on_failure == "raise" and isinstance(xs, jax.core.Tracer):
        raise ValueError(_TRACED_RAISE)
    frame = sequence.prologue(cell, params, xs, carry=carry, lengths=lengths, reverse=reverse)
    dtype = _check_carry_dtype(cell, frame.carry)
    if frame.inputs.shape[0] == 0:
        info = NewtonInfo(jnp.int32(0), jnp.zeros((), dtype), jnp.bool_(True))
        return *sequence.epilogue(frame, empty_outputs(cell, params, frame), frame.carry), info
    options = dict(jacobian=jacobian, max_iterations=max_iterations, damping=damping,
                   tol=DEFAULT_TOL.get(np.dtype(dtype), 1e-5) if tol is None else tol,
                   fall_back=on_failure == "sequential")
    ys, carry, info = _solve(cell, params, frame, options)
    _report_failure(info, on_failure)
    return *sequence.epilogue(frame, ys, carry), info


def _solve(cell: Cell, params: Any, frame: sequence.Frame, options: dict):
    """Newton's iterations on the time-major frame: `(ys [time, batch, hidden], final carry,
    NewtonInfo)`."""
    xs = frame.inputs  # [time, batch, in]
    valid = jnp.ones(xs.shape[:2], bool) if frame.mask is None else frame.mask  # [time, batch]
    xs_proj = cell.project_inputs(params, xs)  # [time, batch, gates]
    flat, unflat = flattener(frame.carry)

    def F(p, prev, inputs):  # the step on flat states; a padded step keeps the state
        x_proj, ok = inputs
        new = flat(cell.step(p, unflat(prev), x_proj)[0])
        return jnp.where(ok[..., None], new, prev)

    closed_form = cell.jacobian_diagonal if options["jacobian"] == "diagonal" else None

    def diagonal(p, prev, inputs):  # diag(dF/dprev); a padded step's is 1
        x_proj, ok = inputs
        return jnp.where(ok[..., None], flat(closed_form(p, unflat(prev), x_proj)), 1.0)

    s0 = flat(frame.carry)
    _check_linearizable(cell, F, params, s0[None], (xs_proj[:1], valid[:1]))
    solve = make_solve(F, options, None if closed_form is None else diagonal)
    states, info = solve(params, s0, (xs_proj, valid))
    prev = jnp.concatenate([s0[None], states[:-1]], axis=0)
    ys = cell.step(params, unflat(prev), xs_proj)[1]  # every output at once from s(t-1)
    ys = jnp.where(valid[..., None], ys, jnp.zeros_like(ys))
    return ys, unflat(states[-1]), info


def _check_linearizable(cell: Cell, F, params, s0, inputs) -> None:
    """A ValueError when JAX cannot take the forward-mode Jacobian of the step in its carry."""
    try:
        jax.eval_shape(lambda s: linearize(lambda v, u: F(params, v, u), s, inputs, "full"), s0)
    except (TypeError, NotImplementedError) as error:
        raise ValueError(
            f"{cell.name}: expected a step whose carry Jacobian JAX can linearize (jax.jvp), "
            f"received one that cannot: {error}"
        ) from error


def _report_failure(info: NewtonInfo, on_failure: str) -> None:
    """The warning or the error of `on_failure`, where the info holds concrete values."""
    if on_failure == "return":
        return
    if isinstance(info.converged, jax.core.Tracer):
        if on_failure == "raise":  # e.g. params traced by jax.grad while xs are concrete
            raise ValueError(_TRACED_RAISE)
        return
    if bool(info.converged):
        return
    message = (
        f"Newton iterations did not converge: residual {float(info.residual):.3g} after "
        f"{int(info.iterations)} iterations"
    )
    if on_failure == "raise":
        raise RuntimeError(message + "; raise max_iterations or tol, or use on_failure="
                           "'sequential'")
    warnings.warn(message + "; the trajectory was recomputed sequentially", RuntimeWarning)
