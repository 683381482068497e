"""The Newton solve of DEER / quasi-DEER over flat states, and its adjoint as a `custom_vjp`.

A trajectory `s(t) = f(s(t-1), u(t))`, t = 1..T, from a given s(0), is the root of the residual
`r(t) = f(s(t-1), u(t)) - s(t)`. Newton's method (Lim et al. 2024, "Parallelizing non-linear
sequential models over the sequence length", arXiv 2309.12252, eq. 5) linearises f around the
current guess s^k and solves the linear recurrence

    s^{k+1}(t) = J(t) s^{k+1}(t-1) + [f(s^k(t-1), u(t)) - J(t) s^k(t-1)],   J(t) = df/ds at s^k(t-1)

with one `jax.lax.associative_scan` over the pairs `(J(t), b(t))`, composed as
`(A_i, b_i) o (A_j, b_j) = (A_j A_i, A_j b_i + b_j)`. "full" keeps the `[D, D]` Jacobians
(exact Newton: quadratic convergence, O(T D^3) work); "diagonal" keeps only their diagonal
(quasi-DEER, Gonzalez et al. 2024, "Towards scalable and stable parallelization of nonlinear
RNNs", arXiv 2407.19115: O(T D) in the scan). Either way the first k states are exact after k
iterations, so T iterations always suffice in exact arithmetic; the fixed point is the
sequential trajectory, whichever Jacobian is used.

Gradients (DEER's section 3.3): at the solution, the cotangent `g(t)` of the states flows back
through the adjoint recurrence `lambda(t) = g(t) + J(t+1)^T lambda(t+1)`, lambda(T) = g(T), a
linear recurrence in reverse time solved by the same Newton solver (one iteration with "full";
quasi-Newton iterations with "diagonal"); then one batched VJP of f at every step at once gives
the params', inputs' and s(0)'s cotangents. Nothing of the forward iterations is stored.

Arrays are time-major here: states `[T, *batch, D]`, inputs leaves `[T, *batch, ...]`; f acts
on any leading axes (every step independently), as a cell's `step` does.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.parallel.linear_scan import linear_scan


class NewtonInfo(NamedTuple):
    """What the Newton solve did (scalars over the whole batch)."""

    iterations: jax.Array  # [] int32, Newton updates made
    residual: jax.Array  # [] max_t |f(s(t-1), u(t)) - s(t)| at the Newton iterate returned
    converged: jax.Array  # [] bool, residual <= tol within max_iterations


def linear_scan_full(A: jax.Array, b: jax.Array) -> jax.Array:
    """`s(t) = A(t) s(t-1) + b(t)` from s(0) = 0 for all t at once (associative scan).

    A: `[T, *batch, D, D]`, b: `[T, *batch, D]` -> s `[T, *batch, D]`.
    """

    def combine(earlier, later):
        A_i, b_i = earlier
        A_j, b_j = later
        return A_j @ A_i, jnp.einsum("...ij,...j->...i", A_j, b_i) + b_j

    return jax.lax.associative_scan(combine, (A, b))[1]


def damped_scan_diagonal(a, b, guess, damping) -> jax.Array:
    """The Levenberg-Marquardt step of quasi-ELK (Gonzalez et al. 2024, sec. 4): per state
    coordinate, the s minimising

        sum_t (s(t) - a(t) s(t-1) - b(t))^2 + damping * sum_t (s(t) - guess(t))^2,  s(0) = 0,

    i.e. the mean of a Kalman smoother with dynamics noise 1 and observations `guess` of noise
    1/damping, by the parallel filter and smoother of Saerkkae & Garcia-Fernandez (2021,
    "Temporal parallelization of Bayesian smoothers", eqs. 11-16 and 19-22), scalar here.
    damping = 0 is the undamped quasi-DEER step; a large one keeps the step near the guess.
    `damping` may vary per step (an array broadcasting against `a`): a step with damping 0 has
    no observation and is fixed by the dynamics alone (`newton_solve` gives padded steps 0).
    a, b, guess: `[T, *batch, D]` -> `[T, *batch, D]`.
    """
    # with r = 1/damping the observation noise and gain = 1/(1 + r) the Kalman gain, written in
    # damping alone (r * gain = 1/(1 + damping)) so that damping 0 divides by nothing
    gain = damping / (1.0 + damping)
    r_gain = 1.0 / (1.0 + damping)
    # filtering elements (A, b, C, eta, J) of p(s(t) | s(t-1), guess(t)); the first is exact
    A = (a * r_gain).at[0].set(0.0)
    mean = b + gain * (guess - b)  # the first: predicted mean b(1), variance 1, then updated
    C = jnp.broadcast_to(r_gain, a.shape).astype(a.dtype)
    eta = (a * (guess - b) * gain).at[0].set(0.0)
    J = (a * a * gain).at[0].set(0.0)

    def combine(earlier, later):
        A_i, b_i, C_i, eta_i, J_i = earlier
        A_j, b_j, C_j, eta_j, J_j = later
        d = 1.0 + C_i * J_j
        return (A_j * A_i / d, A_j * (b_i + C_i * eta_j) / d + b_j, A_j * A_j * C_i / d + C_j,
                A_i * (eta_j - J_j * b_i) / d + eta_i, A_i * A_i * J_j / d + J_i)

    _, m, P, _, _ = jax.lax.associative_scan(combine, (A, mean, C, eta, J))
    # smoothing: s(t) = E(t) s(t+1) + g(t), a reverse linear recurrence, E(T) = 0
    a_next = jnp.concatenate([a[1:], jnp.zeros_like(a[:1])], axis=0)
    b_next = jnp.concatenate([b[1:], jnp.zeros_like(b[:1])], axis=0)
    E = P * a_next / (a_next * a_next * P + 1.0)
    return linear_scan(E, m - E * (a_next * m + b_next), reverse=True)[0]


def linearize(f: Callable, prev: jax.Array, inputs: Any, jacobian: str,
              diagonal: Callable | None = None):
    """`f(prev, inputs)` and its Jacobian in `prev`: `[T, *batch, D, D]` or the diagonal.

    The columns come from D JVPs batched by `vmap` (each step's Jacobian is independent of the
    others, so one tangent per state coordinate serves every step); "diagonal" keeps only
    J_ii, which is what the scan needs, not what it costs to get for a general `step`, unless
    `diagonal(prev, inputs) -> [T, *batch, D]` gives it directly (a cell's `jacobian_diagonal`).
    """
    if jacobian == "diagonal" and diagonal is not None:
        return f(prev, inputs), diagonal(prev, inputs)
    fs, jvp = jax.linearize(lambda s: f(s, inputs), prev)
    size = prev.shape[-1]
    eye = jnp.eye(size, dtype=prev.dtype).reshape(size, *(1,) * (prev.ndim - 1), size)
    columns = jax.vmap(jvp)(jnp.broadcast_to(eye, (size, *prev.shape)))  # [D_in, T, *b, D_out]
    J = jnp.moveaxis(columns, 0, -1)  # [T, *batch, D_out, D_in]
    return fs, (J if jacobian == "full" else jnp.diagonal(J, axis1=-2, axis2=-1))


def _shift(s0: jax.Array, states: jax.Array) -> jax.Array:
    """`s(t-1)` for t = 1..T: `[T, *batch, D]`, s(0) first."""
    return jnp.concatenate([s0[None], states[:-1]], axis=0)


def sequential(f: Callable, s0: jax.Array, inputs: Any) -> jax.Array:
    """The reference trajectory: one `jax.lax.scan` over time. `[T, *batch, D]`."""

    def body(s, u):
        s = f(s, u)
        return s, s

    return jax.lax.scan(body, s0, inputs)[1]


def newton_solve(
    f: Callable, s0: jax.Array, inputs: Any, *, jacobian: str, tol: float, max_iterations: int,
    damping: float = 0.0, diagonal: Callable | None = None,
) -> tuple[jax.Array, NewtonInfo]:
    """Newton (or quasi-Newton) iterations from the zero guess until the residual <= tol.

    Args:
      f: `(prev [..., D], inputs leaves [..., *]) -> [..., D]`, acting on any leading axes.
      s0: `[*batch, D]` the state before the first step.
      inputs: pytree of `[T, *batch, ...]` arrays.
      jacobian: "full" (DEER) or "diagonal" (quasi-DEER).
      damping: > 0 (with "diagonal"): each step is quasi-ELK's damped one
        (`damped_scan_diagonal`); the fixed point is the same. A float, or per step an array
        `[T, *batch, 1]` (`make_solve` gives the identity steps of padding 0).
      diagonal: with "diagonal", `(prev, inputs) -> [T, *batch, D]` the Jacobian's diagonal
        in closed form; None: read off D JVPs (`linearize`).
    Returns:
      `(states [T, *batch, D], NewtonInfo)`: the last iterate, converged or not.
    """
    # part A's diagonal scan for quasi-DEER; the [D, D] one here
    scan = linear_scan_full if jacobian == "full" else lambda a, b: linear_scan(a, b)[0]
    damped = not isinstance(damping, (int, float)) or damping > 0

    def point(states):
        prev = _shift(s0, states)
        fs, J = linearize(f, prev, inputs, jacobian, diagonal)
        return fs, J, prev

    def update(states, fs, J, prev):
        # eq. 5: b(t) = f(s^k(t-1)) - J(t) s^k(t-1); s(0) is known, so b(1) = f(s(0)) exactly
        Jprev = jnp.einsum("...ij,...j->...i", J, prev) if jacobian == "full" else J * prev
        b = (fs - Jprev).at[0].set(fs[0])
        return damped_scan_diagonal(J, b, states, damping) if damped else scan(J, b)

    def cond(state):
        k, states, fs, _, _ = state
        residual = max_error(fs, states)
        return (residual > tol) & (k < max_iterations)  # a NaN residual stops at once

    def body(state):
        k, states, fs, J, prev = state
        states = update(states, fs, J, prev)
        return (k + 1, states, *point(states))

    states = jnp.zeros((jax.tree.leaves(inputs)[0].shape[0], *s0.shape), s0.dtype)
    k, states, fs, _, _ = jax.lax.while_loop(
        cond, body, (jnp.int32(0), states, *point(states))
    )
    residual = max_error(fs, states)
    return states, NewtonInfo(k, residual, residual <= tol)


def max_error(fs: jax.Array, states: jax.Array) -> jax.Array:
    """max |f(s(t-1)) - s(t)|, NaN when any entry is NaN: XLA's CPU max reduction can skip
    NaNs, which would make a diverged iteration look converged (and skip the fall-back)."""
    error = jnp.abs(fs - states)
    return jnp.where(jnp.any(jnp.isnan(error)), jnp.nan, jnp.max(error))


def solve_or_fall_back(f, s0, inputs, options) -> tuple[jax.Array, NewtonInfo]:
    """`newton_solve`, then the sequential scan where it did not converge (unless
    `options["fall_back"]` is False). Under `vmap` the `cond` becomes a select, so both run."""
    fall_back = options["fall_back"]
    solve_options = {k: v for k, v in options.items() if k != "fall_back"}
    states, info = newton_solve(f, s0, inputs, **solve_options)
    if fall_back:
        states = jax.lax.cond(
            info.converged, lambda: states, lambda: sequential(f, s0, inputs)
        )
    return states, info


def _per_step_damping(damping: float, nonlinear: jax.Array, dtype) -> float | jax.Array:
    """quasi-ELK's damping only on the steps whose linearisation can be wrong: `[T, *batch, 1]`,
    `damping` where `nonlinear` and 0 elsewhere (0.0 itself when damping is 0).

    Why: a padded step is the identity, so its Jacobian (1) and its Newton step are exact; a
    trust-region penalty there only slows the solve (the state creeps along a padded tail one
    damped step per iteration: a GRU at T = 64 and damping 0.5 took 30 times the iterations
    with one sequence padded to half its length). Undamped, the tail is exact once the last
    valid state is; the fixed point is the same either way.
    """
    if not damping:
        return 0.0
    return jnp.where(nonlinear, damping, 0.0).astype(dtype)[..., None]


def make_solve(F: Callable, options: dict, diagonal: Callable | None = None) -> Callable:
    """`solve(params, s0, (inputs, valid)) -> (states, NewtonInfo)` with DEER's adjoint.

    F: `(params, prev [..., D], (inputs, valid)) -> [..., D]`; `inputs` is the differentiable
    leaf `[T, *batch, ...]`, `valid` a bool `[T, *batch]` passed through untouched.
    options: `jacobian`, `tol`, `max_iterations`, `damping`, `fall_back`
      (`newton_solve`, `solve_or_fall_back`).
    diagonal: None, or `(params, prev, (inputs, valid)) -> [..., D]` the diagonal of F's
      Jacobian in `prev` (used with jacobian "diagonal", forward and adjoint).
    """

    def bound(params):
        return None if diagonal is None else lambda s, u: diagonal(params, s, u)

    @jax.custom_vjp
    def solve(params, s0, inputs):
        damping = _per_step_damping(options["damping"], inputs[1], s0.dtype)
        return solve_or_fall_back(lambda s, u: F(params, s, u), s0, inputs,
                                  {**options, "diagonal": bound(params), "damping": damping})

    def forward(params, s0, inputs):
        states, info = solve(params, s0, inputs)
        return (states, info), (params, s0, inputs, states)

    def backward(residuals, cotangents):
        params, s0, (xs, valid), states = residuals
        g = cotangents[0]  # [T, *batch, D]; the info's cotangents are zero
        prev = _shift(s0, states)

        def adjoint_step(lam_next, u):
            # lambda(t) = g(t) + J(t+1)^T lambda(t+1), J(t+1) at s(t) with the inputs u(t+1)
            g_t, s_t, x_next, valid_next, exists = u
            vjp = jax.vjp(lambda s: F(params, s, (x_next, valid_next)), s_t)[1]
            return g_t + jnp.where(exists[..., None], vjp(lam_next)[0], 0.0)

        time = states.shape[0]
        shift_left = lambda a: jnp.concatenate([a[1:], a[-1:]], axis=0)
        exists = jnp.broadcast_to(
            (jnp.arange(time) < time - 1).reshape((time,) + (1,) * (valid.ndim - 1)), valid.shape
        )
        adjoint_inputs = (g, states, shift_left(xs), shift_left(valid), exists)
        flip = lambda tree: jax.tree.map(lambda a: jnp.flip(a, axis=0), tree)
        scale = jnp.maximum(1.0, jnp.max(jnp.abs(g)))  # the tolerance relative to the cotangents
        adjoint_options = {**options, "tol": options["tol"] * scale, "fall_back": True,
                           "diagonal": None, "damping": _per_step_damping(
                               options["damping"], flip(shift_left(valid) & exists), s0.dtype)}
        if diagonal is not None:  # diag(J(t+1)^T) = diag(J(t+1)); no step after the last
            adjoint_options["diagonal"] = lambda lam, u: jnp.where(
                u[4][..., None], diagonal(params, u[1], (u[2], u[3])), 0.0)
        lam, _ = solve_or_fall_back(
            adjoint_step, jnp.zeros_like(s0), flip(adjoint_inputs), adjoint_options
        )
        lam = jnp.flip(lam, axis=0)
        pullback = jax.vjp(lambda p, s, x: F(p, s, (x, valid)), params, prev, xs)[1]
        d_params, d_prev, d_xs = pullback(lam)
        return d_params, d_prev[0], (d_xs, None)

    solve.defvjp(forward, backward)
    return solve
