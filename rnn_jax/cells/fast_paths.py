"""The optional fast paths a `Cell` may carry beside its equations, and their contracts.

Each is written by hand for one cell's `step` and lives in that cell's file (`cells/lstm.py`
shows everything the library knows of the LSTM); the layers that use them (`rnn_jax.bptt`,
`rnn_jax.parallel`) read them off the cell, so they never look a cell up by name or by
function identity. Replacing `step` drops them (`rnn_jax.cells.base.Cell._replace`).

- `Kernel` (field `bptt_kernel`): the hand-written BPTT, run by `rnn_jax.bptt.engine` under a
  `jax.custom_vjp`; the default training forward and backward of `rnn_jax.unroll`.
- a Jacobian diagonal (field `jacobian_diagonal`): `(params, carry, x_proj) -> diag(d carry(t) /
  d carry(t-1))` shaped like the carry, for quasi-DEER (`rnn_jax.parallel.deer`) at one step's
  cost instead of D JVPs.
- `LinearForm` (field `linear_form`): `carry(t) = a(t) * carry(t-1) + b(t)` with `(a, b)` from
  the inputs alone, for the associative scan of `rnn_jax.parallel.linear_cells`.

A `Kernel` is pure functions; arrays may carry any leading axes (one step `[batch, ...]`, or
all steps `[time, batch, ...]` at once when gates are recomputed):

    forward(params, carry_prev, x_proj) -> (carry, saved)       saved: what backward needs
    backward_weights(params) -> weights       the recurrent weights transposed (W^T), made
                                              once before the reverse scan
    backward(weights, saved, carry_prev, carry, dcarry) -> (dcarry_prev, delta)
    param_grads(params, carries_prev, saved, deltas) -> grads    (params-shaped; U, b zero)
    output(carry) -> h                                           the emitted output h(t)
    add_output_grad(dcarry, dh) -> dcarry                        dL/dh(t) joins the carry's

`delta(t)` is dL/d(pre-activation) of the fused gates, i.e. dL/dx_proj(t); the input-weight
and bias gradients follow from it through the input projection's VJP (one matmul over all
steps), as the notes derive: dL/dW = sum_t h(t-1)^T delta(t), dL/dU = sum_t x(t)^T delta(t).
The vanilla kernel is the general form of the notes' derivation (`rnn_jax.bptt.notes`, there
for the tanh RNN with softmax outputs; here any nonlinearity and any loss, which enters as the
cotangent of the outputs); the LSTM and GRU kernels apply the same rule to their gates.

The reverse step's `delta(t) @ W^T` multiplies by a W^T materialised once (`backward_weights`)
rather than by W with a transposed contraction: the transpose is paid once, outside the loop,
and XLA:CPU's per-step dot is no slower for it (benchmarks/README.md, "tried and rejected").
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Kernel(NamedTuple):
    """A cell's hand-written BPTT step (module docstring)."""

    name: str
    forward: Callable[..., Any]
    backward_weights: Callable[[Any], Any]
    backward: Callable[..., Any]
    param_grads: Callable[..., Any]
    output: Callable[[Any], jax.Array]
    add_output_grad: Callable[[Any, jax.Array], Any]


class LinearForm(NamedTuple):
    """What the parallel unroll needs of a linear cell (x_proj: `project_inputs`' output)."""

    coefficients: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]  # -> (a, b)
    log_coefficients: Callable | None = None  # -> (log a, log b) where a > 0, b >= 0
    emit: Callable | None = None  # (params, states, x_proj) -> outputs; None: the states


def row(v: jax.Array, like: jax.Array) -> jax.Array:
    """Broadcasts a `[features]` vector against `like: [..., features]` (explicit ranks)."""
    return jnp.broadcast_to(v, like.shape)


def with_batch_axes(v: jax.Array, x: jax.Array) -> jax.Array:
    """The vector `v` `[hidden]` with x's leading batch axes (size 1): no rank promotion."""
    return v.reshape((1,) * (x.ndim - 1) + v.shape)


def sum_outer(a: jax.Array, b: jax.Array) -> jax.Array:
    """sum over all leading axes of a^T b: `[..., m], [..., n] -> [m, n]`, one matmul."""
    return a.reshape(-1, a.shape[-1]).T @ b.reshape(-1, b.shape[-1])


def sigmoid_by_tanh(z: jax.Array) -> jax.Array:
    """sigma(z) = (1 + tanh(z/2)) / 2: the kernels compute every gate with one tanh."""
    return 0.5 * jnp.tanh(0.5 * z) + 0.5
