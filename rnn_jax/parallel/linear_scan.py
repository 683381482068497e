"""Diagonal linear recurrences `h(t) = a(t) * h(t-1) + b(t)` for all t at once.

Each step is the affine map `h -> a h + b`, held as the pair `(a, b)`. Applying step i and
then step j is again such a map,

    (a_i, b_i) o (a_j, b_j) = (a_j a_i, a_j b_i + b_j),

and the composition is associative, so `jax.lax.associative_scan` (Blelloch 1990) gives every
prefix `(A(t), B(t))` in O(log T) depth; then `h(t) = A(t) h0 + B(t)` for any initial state
h0 (S5, Smith et al. 2023; LRU, Orvieto et al. 2023, arXiv 2303.06349; DEER's linear step,
Lim et al. 2024). `a` and `b` may be real or complex; products are elementwise (diagonal A).

Padding: a masked-out step becomes the identity map `(1, 0)`, so it keeps the state; its
output is zero and the final state is the state after the last valid step, as in
`rnn_jax.unroll`. `reverse=True` composes from the end of the time axis; with padded steps the
identity, each sequence then runs from its last valid step back to its first, outputs in the
original time order, with no gather of the inputs.

Log space (`log_linear_scan`): where `a > 0` and `b >= 0` (minGRU/minLSTM with a positive
candidate, Feng et al. 2024, arXiv 2410.01201, section 3 and appendix B), the pairs are
`(log a, log b)` and the operator becomes

    (la_i, lb_i) o (la_j, lb_j) = (la_i + la_j, logaddexp(la_j + lb_i, lb_j)).

The paper computes the same sums with Heinsen's cumsum/logcumsumexp form; the pairwise form
never subtracts a cumulative log a (which drifts to -inf over long sequences).

Arrays are time-major, `[time, *batch, features]`, masks `[time, *batch]` (True = valid).
"""

from typing import Any

import jax
import jax.numpy as jnp


def combine(earlier: tuple[Any, Any], later: tuple[Any, Any]) -> tuple[Any, Any]:
    """`(a_i, b_i) o (a_j, b_j) = (a_j a_i, a_j b_i + b_j)`: step i, then step j."""
    a_i, b_i = earlier
    a_j, b_j = later
    return a_j * a_i, a_j * b_i + b_j


def _logaddexp(x: jax.Array, y: jax.Array) -> jax.Array:
    """`log(e^x + e^y)` whose gradient is 0, not NaN, where both are -inf (padded prefixes)."""
    both = (x == -jnp.inf) & (y == -jnp.inf)
    safe = lambda v: jnp.where(both, jnp.zeros_like(v), v)  # the "double where"
    return jnp.where(both, -jnp.inf, jnp.logaddexp(safe(x), safe(y)))


def combine_log(earlier: tuple[Any, Any], later: tuple[Any, Any]) -> tuple[Any, Any]:
    """`combine` on `(log a, log b)`: `(la_i + la_j, logaddexp(la_j + lb_i, lb_j))`."""
    la_i, lb_i = earlier
    la_j, lb_j = later
    return la_i + la_j, _logaddexp(la_j + lb_i, lb_j)


def check_operands(a: jax.Array, b: jax.Array, mask: jax.Array | None, h0: Any = None) -> None:
    """ValueErrors naming what was expected and received: shapes, dtypes, the mask, h0."""
    for name, array in (("a", a), ("b", b)):
        dtype = jnp.result_type(array)
        if not (jnp.issubdtype(dtype, jnp.floating) or jnp.issubdtype(dtype, jnp.complexfloating)):
            raise ValueError(f"expected a floating or complex {name}, received dtype {dtype}")
    if jnp.shape(a) != jnp.shape(b) or jnp.ndim(b) < 2:
        raise ValueError(
            "expected a and b of one shape [time, *batch, features], received "
            f"{jnp.shape(a)} and {jnp.shape(b)}"
        )
    if mask is not None:
        if jnp.shape(mask) != jnp.shape(b)[:-1] or jnp.result_type(mask) != jnp.bool_:
            raise ValueError(
                f"expected a boolean mask of shape {jnp.shape(b)[:-1]} [time, *batch], received "
                f"{jnp.result_type(mask)}{list(jnp.shape(mask))}"
            )
    if h0 is not None and jnp.shape(h0) != jnp.shape(b)[1:]:
        raise ValueError(
            f"expected h0 of shape {jnp.shape(b)[1:]} [*batch, features], received "
            f"{jnp.shape(h0)}"
        )


def prefix(a, b, *, mask=None, reverse=False, log=False):
    """Every prefix composition `(A(t), B(t))` of the steps, padded steps the identity.

    a, b: `[time, *batch, D]` (log a, log b when `log`); mask: `[time, *batch]` or None.
    Returns `(A, B)`, each `[time, *batch, D]`: `h(t) = A(t) h0 + B(t)` (in log space,
    `h(t) = exp(A(t)) h0 + exp(B(t))`). With `reverse`, prefixes run from the end.
    """
    check_operands(a, b, mask)
    if mask is not None:
        identity_a = jnp.zeros_like(a) if log else jnp.ones_like(a)
        identity_b = jnp.full_like(b, -jnp.inf) if log else jnp.zeros_like(b)
        keep = mask[..., None]
        a, b = jnp.where(keep, a, identity_a), jnp.where(keep, b, identity_b)
    # associative_scan with reverse=True scans from the end, i.e. the same combine on the
    # sequence read backwards: `earlier` is the step nearer the end of the time axis
    return jax.lax.associative_scan(combine_log if log else combine, (a, b), reverse=reverse)


def _states(A, B, h0, mask, reverse):
    """`(hs, final)` from the prefixes: zeros at padded steps; the state after the last one."""
    hs = B if h0 is None else A * h0[None] + B
    final = hs[0] if reverse else hs[-1]
    if mask is not None:
        hs = jnp.where(mask[..., None], hs, jnp.zeros_like(hs))
    return hs, final


def linear_scan(
    a: jax.Array,
    b: jax.Array,
    h0: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    reverse: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """`h(t) = a(t) * h(t-1) + b(t)` for every t by one associative scan.

    Args:
      a, b: `[time, *batch, D]`, real or complex (elementwise: a diagonal transition).
      h0: `[*batch, D]` initial state; zeros when None.
      mask: `[time, *batch]` bool, True on valid steps; padded steps keep the state.
      reverse: run from the last step back to the first (under `mask`, from each sequence's
        last valid step); outputs stay in the original time order.
    Returns:
      `(hs, final)`: hs `[time, *batch, D]` (zeros at padded steps), final `[*batch, D]`, the
      state after the last valid step (h0, or zeros, for an empty time axis).
    """
    check_operands(a, b, mask, h0)
    if a.shape[0] == 0:
        return b, jnp.zeros(b.shape[1:], jnp.result_type(a, b)) if h0 is None else h0
    A, B = prefix(a, b, mask=mask, reverse=reverse)
    return _states(A, B, h0, mask, reverse)


def log_linear_scan(
    log_a: jax.Array,
    log_b: jax.Array,
    h0: jax.Array | None = None,
    *,
    mask: jax.Array | None = None,
    reverse: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """`linear_scan` with `a = exp(log_a) > 0` and `b = exp(log_b) >= 0` given in log space.

    The part of h driven by the inputs, `exp(B(t))`, never leaves log space until the end, so
    products of many gates in (0, 1) do not underflow step by step; h0 (any sign) enters as
    `exp(A(t)) h0`. Args and returns as `linear_scan` (log_a, log_b real floating).
    """
    check_operands(log_a, log_b, mask, h0)
    for name, array in (("log_a", log_a), ("log_b", log_b)):
        if not jnp.issubdtype(jnp.result_type(array), jnp.floating):
            raise ValueError(
                f"expected a real floating {name} (log space needs a > 0, b >= 0), received "
                f"dtype {jnp.result_type(array)}"
            )
    if log_a.shape[0] == 0:
        return log_b, jnp.zeros(log_b.shape[1:], log_b.dtype) if h0 is None else h0
    log_A, log_B = prefix(log_a, log_b, mask=mask, reverse=reverse, log=True)
    return _states(jnp.exp(log_A), jnp.exp(log_B), h0, mask, reverse)
