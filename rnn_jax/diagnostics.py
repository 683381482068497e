"""Gradient diagnostics for any cell: how dL(T)/dh(t) and dh(t)/dh(k) behave across time.

The state h(t) of a cell is its whole carry (h and c for the LSTM; Re h and Im h for the
complex uRNN state) flattened to one real vector `[D]` per example.

One backward pass for every step: add a zero perturbation eps(t) to the carry after each step,

    h(t) = step(h(t-1), x(t)) + eps(t),   h(0) = h0 + eps(0),

then dL/d eps(t) = dL/dh(t) for every t = 0..T at once (`jax.grad` w.r.t. the stacked eps).
Jacobians dh(t)/dh(k) = d h(t) / d eps(k) come from `jax.jacrev` of the same function, vmapped
over the batch.

The notes' bound for the vanilla RNN h(t) = phi(b + W h(t-1) + U x(t)):

    ||dh(t)/dh(k)|| <= prod_{j=k+1..t} ||diag(phi'(a(j))) W|| <= (lambda_W * lambda_phi)^(t-k)

with lambda_W the largest singular value of W and lambda_phi = sup |phi'| (1 for tanh, relu
and identity, 1/4 for the logistic sigmoid).
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp

from rnn_jax import sequence
from rnn_jax.cells.base import Cell, activation_entry


def flatten_carry(carry: Any) -> jax.Array:
    """Carry pytree (leaves `[..., n]`) -> real `[..., D]`; complex leaves give (Re, Im)."""
    parts = []
    for leaf in jax.tree.leaves(carry):
        parts += [leaf.real, leaf.imag] if jnp.iscomplexobj(leaf) else [leaf]
    return jnp.concatenate(parts, axis=-1)


def add_to_carry(carry: Any, delta: jax.Array) -> Any:
    """`carry + delta`, with `delta [..., D]` laid out as in `flatten_carry`."""
    leaves, tree = jax.tree.flatten(carry)
    new_leaves, start = [], 0
    for leaf in leaves:
        n = leaf.shape[-1]
        if jnp.iscomplexobj(leaf):
            re, im = delta[..., start : start + n], delta[..., start + n : start + 2 * n]
            new_leaves.append(leaf + jax.lax.complex(re, im).astype(leaf.dtype))
            start += 2 * n
        else:
            new_leaves.append(leaf + delta[..., start : start + n].astype(leaf.dtype))
            start += n
    return tree.unflatten(new_leaves)


def _check(cell: Cell, params: Any, xs: jax.Array, carry: Any = None) -> None:
    """xs `[batch, time, in]` for these params (a ValueError unless they are the cell's), and a
    carry (when given) shaped as the cell's `[batch, ...]` initial carry."""
    if xs.ndim != 3 or xs.shape[-1] != cell.input_size(params):
        raise ValueError(
            f"{cell.name}: expected xs of shape [batch, time, {cell.input_size(params)}], "
            f"received {xs.shape}"
        )
    if carry is not None:
        sequence.check_carry(cell, params, carry, xs.shape[0])


def carry_size(cell: Cell, params: Any) -> int:
    """D, the length of the flattened real carry of one example."""
    return flatten_carry(cell.initial_carry(params, ())).shape[-1]


def perturbed_unroll(
    cell: Cell, params: Any, xs: jax.Array, eps: jax.Array, carry: Any = None
) -> tuple[jax.Array, jax.Array]:
    """Unrolls `cell` with `eps(t)` added to the carry after each step (and eps(0) to h0).

    Args:
      xs: `[batch, time, in]`; eps: `[batch, time + 1, D]` real; carry: initial carry or None.
    Returns:
      `(hs [batch, time, out], carries [batch, time + 1, D])`, carries[:, t] = h(t) flattened.
    """
    _check(cell, params, xs, carry)
    batch = xs.shape[0]
    carry = cell.initial_carry(params, (batch,)) if carry is None else carry
    carry = add_to_carry(carry, eps[:, 0])

    def body(carry, inputs):
        x_proj, eps_t = inputs
        carry, h = cell.step(params, carry, x_proj)
        carry = add_to_carry(carry, eps_t)  # h(t) = step(h(t-1), x(t)) + eps(t)
        return carry, (h, flatten_carry(carry))

    time_major = lambda a: jnp.swapaxes(a, 0, 1)
    xs_proj = time_major(cell.project_inputs(params, xs))
    _, (hs, carries) = jax.lax.scan(body, carry, (xs_proj, time_major(eps[:, 1:])))
    carries = jnp.concatenate([flatten_carry(carry)[:, None], time_major(carries)], axis=1)
    return time_major(hs), carries


def _zeros_eps(cell, params, xs):
    """Zero perturbations `[batch, time + 1, D]` in the (real) dtype of the flattened carry."""
    flat = jax.eval_shape(lambda p: flatten_carry(cell.initial_carry(p, ())), params)
    return jnp.zeros((xs.shape[0], xs.shape[1] + 1, flat.shape[-1]), flat.dtype)


def carry_gradients(
    cell: Cell,
    params: Any,
    xs: jax.Array,
    loss_fn: Callable[[jax.Array], jax.Array],
    *,
    carry: Any = None,
) -> tuple[jax.Array, jax.Array]:
    """dL(T)/dh(t) for t = 0..T-1, and dL(T)/d(output at T), in one backward pass.

    L(T) reads the cell's output at the last step, which `step` emits together with h(T); its
    gradient stands in for dL/dh(T). For every cell in the library it has the norm of the full
    dL/dh(T): the output is h(T) itself (vanilla, GRU, output feedback), [Re h, Im h] (uRNN), or
    the h half of the LSTM state (L(T) does not read c(T), so dL/dc(T) = 0).

    Args:
      xs: `[batch, time, in]`.
      loss_fn: the cell's last output `[batch, out]` -> per-example losses `[batch]` (L(T)).
        Examples do not interact, so each example's slice is its own gradient.
      carry: initial carry (from `cell.initial_carry` when None).
    Returns:
      `(dL_dh [batch, time, D], dL_doutput [batch, out])`; dL_dh[:, t] = dL(T)/dh(t), t = 0
      the initial state.
    """

    _check(cell, params, xs, carry)
    last_output = lambda eps: perturbed_unroll(cell, params, xs, eps, carry)[0][:, -1]
    output, backward = jax.vjp(last_output, _zeros_eps(cell, params, xs))
    dL_doutput = jax.grad(lambda o: jnp.sum(loss_fn(o)))(output)
    (dL_deps,) = backward(dL_doutput)  # one backward pass through the whole unroll
    return dL_deps[:, :-1], dL_doutput  # eps(T) comes after the output L(T) reads


def gradient_norms(cell, params, xs, loss_fn, *, carry=None) -> jax.Array:
    """`||dL(T)/dh(t)||` for t = 0..T: `[batch, time + 1]` (arguments as `carry_gradients`;
    the last entry is the norm of dL(T)/d(output at T))."""
    dL_dh, dL_doutput = carry_gradients(cell, params, xs, loss_fn, carry=carry)
    norms = jnp.linalg.norm(dL_dh, axis=-1)
    return jnp.concatenate([norms, jnp.linalg.norm(dL_doutput, axis=-1)[:, None]], axis=1)


def jacobian_norms(
    cell: Cell, params: Any, xs: jax.Array, *, carry: Any = None, final_only: bool = False
) -> jax.Array:
    """Spectral norms of the Jacobian products dh(t)/dh(k).

    Args:
      xs: `[batch, time, in]`.
      final_only: only t = T (D backward passes per example instead of (T + 1) D).
    Returns:
      `[batch, time + 1, time + 1]` with [b, t, k] = ||dh(t)/dh(k)||_2 (1 on the diagonal,
      0 for k > t), or `[batch, time + 1]` with [b, k] = ||dh(T)/dh(k)||_2 when `final_only`.
    """
    _check(cell, params, xs, carry)
    batch = xs.shape[0]
    carry = cell.initial_carry(params, (batch,)) if carry is None else carry
    eps = _zeros_eps(cell, params, xs)

    def one_example(x_TxI, carry_0, eps_TxD):
        def carries_of_eps(e):
            add_batch = lambda tree: jax.tree.map(lambda a: a[None], tree)
            _, carries = perturbed_unroll(cell, params, x_TxI[None], e[None], add_batch(carry_0))
            return carries[0, -1] if final_only else carries[0]

        jacobian = jax.jacrev(carries_of_eps)(eps_TxD)  # [(t,) D, k, D]
        jacobian = jnp.moveaxis(jacobian, -2, -3)  # [(t,) k, D, D]
        return jnp.linalg.norm(jacobian, ord=2, axis=(-2, -1))

    return jax.vmap(one_example)(xs, carry, eps)


def bound_factor(W: jax.Array, activation: str) -> jax.Array:
    """`lambda_W * lambda_phi`: the largest singular value of W times sup |phi'|
    (`rnn_jax.cells.base.ACTIVATIONS`)."""
    return jnp.linalg.norm(W, ord=2) * activation_entry(activation).sup_derivative


def jacobian_bound(W: jax.Array, activation: str, distances: jax.Array) -> jax.Array:
    """The notes' bound `(lambda_W * lambda_phi)^(t - k)` for each distance t - k."""
    return bound_factor(W, activation) ** jnp.asarray(distances, W.dtype)


def decay_rate(norms: jax.Array) -> jax.Array:
    """Per-step factor r of a least-squares fit `log ||dL/dh(t)|| = a + (T - t) log r`.

    Args:
      norms: `[..., time + 1]` ordered by t (e.g. `gradient_norms`, averaged in log space);
        zeros are floored at the dtype's smallest normal number.
    Returns:
      `[...]` the fitted r (< 1: vanishing, > 1: exploding).
    """
    distances = jnp.arange(norms.shape[-1] - 1, -1, -1, dtype=norms.dtype)  # T - t
    log_norms = jnp.log(jnp.maximum(norms, jnp.finfo(norms.dtype).tiny))
    centred = jnp.broadcast_to(distances - jnp.mean(distances), norms.shape)
    mean_log = jnp.mean(log_norms, axis=-1, keepdims=True)
    slope = jnp.sum((log_norms - mean_log) * centred, axis=-1) / jnp.sum(centred**2, axis=-1)
    return jnp.exp(slope)
