"""The largest Lyapunov exponent of a cell's trajectory, from its step Jacobians.

Along the trajectory h(t) = step(h(t-1), x(t)) of one input sequence, with the step Jacobians
J(t) = dh(t)/dh(t-1) `[D, D]` (the carry flattened to a real vector as in
`rnn_jax.diagnostics.flatten_carry`), the largest Lyapunov exponent is the mean log growth of
a tangent vector (Benettin et al. 1980, Meccanica 15:9; the power-iteration column of their QR
method):

    v(0) a unit vector,   w(t) = J(t) v(t-1),   v(t) = w(t) / ||w(t)||,
    lambda_1 = (1/T) sum_{t=1..T} log ||w(t)||.

Each J(t) v(t-1) is one `jax.jvp` of the step at h(t-1) (no Jacobian matrix is formed), inside
the same `lax.scan` that advances h, so the cost is about two sequential unrolls. For a linear
step h(t) = W h(t-1) + u(t) with a diagonalisable W, lambda_1 -> log rho(W) (the spectral
radius) as T grows, when v(0) has a component along the top eigenvector(s); v(0) aligns with
the top direction only after a transient, which biases the finite-T value by O(1/T).

lambda_1 < 0: nearby trajectories converge (the network forgets its state); > 0: they diverge.
Gonzalez et al. ("Predictability enables parallelization of nonlinear state space models",
NeurIPS 2025, arXiv 2508.16817) tie the Newton iterations of DEER and quasi-DEER
(`rnn_jax.parallel.deer`) to its sign.
"""

from typing import Any

import jax
import jax.numpy as jnp

from rnn_jax import sequence
from rnn_jax.cells.base import Cell
from rnn_jax.diagnostics import add_to_carry, flatten_carry


def _check(cell: Cell, params: Any, inputs: jax.Array, carry: Any) -> None:
    """inputs `[batch, time >= 1, in]` floating for these params; a carry shaped as the cell's."""
    if jnp.ndim(inputs) != 3 or jnp.shape(inputs)[1] < 1:
        raise ValueError(
            f"{cell.name}: expected inputs of shape [batch, time >= 1, features], received "
            f"{jnp.shape(inputs)}"
        )
    sequence.check_inputs(cell, params, inputs)
    if carry is not None:
        sequence.check_carry(cell, params, carry, inputs.shape[0])


def start_vector(shape: tuple[int, ...], dtype, key: jax.Array | None = None) -> jax.Array:
    """Unit vectors `[batch, D]`: all entries 1/sqrt(D) (key None), else Gaussian directions."""
    v = jnp.ones(shape, dtype) if key is None else jax.random.normal(key, shape, dtype)
    return v / jnp.linalg.norm(v, axis=-1, keepdims=True)


def largest_lyapunov(
    cell: Cell, params: Any, inputs: jax.Array, carry: Any = None, *, key: jax.Array | None = None
) -> jax.Array:
    """lambda_1 of each sequence's trajectory (module docstring's equation).

    Args:
      cell, params: the cell and its params.
      inputs: `[batch, time, in]` raw inputs (projected by `cell.project_inputs`).
      carry: initial carry `[batch, ...]` (None: `cell.initial_carry`).
      key: draws v(0) as a random direction per sequence; None: v(0) = (1, ..., 1)/sqrt(D).

    Returns:
      `[batch]` exponents in nats per step, in the carry's real dtype; -inf where a step maps
      the tangent vector to exactly zero (e.g. a zero recurrent matrix).
    """
    _check(cell, params, inputs, carry)
    batch = inputs.shape[0]
    carry = cell.initial_carry(params, (batch,)) if carry is None else carry
    flat = flatten_carry(carry)
    zero = jnp.zeros_like(flat)

    def body(state, x_proj):
        carry, v, log_growth = state

        def next_state(delta):  # h(t) of a perturbation of h(t-1): ([batch, D], the carry)
            new = cell.step(params, add_to_carry(carry, delta), x_proj)[0]
            return flatten_carry(new), new

        # w(t) = J(t) v(t-1) per sequence (examples do not interact), and h(t) itself
        _, w, carry = jax.jvp(next_state, (zero,), (v,), has_aux=True)
        norm = jnp.linalg.norm(w, axis=-1)
        safe = jnp.where(norm > 0, norm, 1)[:, None]
        v = jnp.where(norm[:, None] > 0, w / safe, v)  # a zero w keeps log 0 = -inf below
        return (carry, v, log_growth + jnp.log(norm)), None

    xs_proj = jnp.swapaxes(cell.project_inputs(params, inputs), 0, 1)  # time-major
    start = (carry, start_vector(flat.shape, flat.dtype, key), jnp.zeros((batch,), flat.dtype))
    (_, _, log_growth), _ = jax.lax.scan(body, start, xs_proj)
    return log_growth / inputs.shape[1]
