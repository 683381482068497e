"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?", arXiv 2410.01201, section 3.1).

    z(t)  = sigma(U_z x(t) + b_z)                  update gate: no h(t-1)
    h~(t) = g(U_h x(t) + b_h)                      candidate: no h(t-1)
    h(t)  = (1 - z(t)) * h(t-1) + z(t) * h~(t)     = a(t) h(t-1) + b(t), linear in h(t-1)

g is the paper's positive, continuous activation (appendix B.3): `g(v) = v + 1/2` for v >= 0,
`sigma(v)` for v < 0. It keeps h~ > 0, so the log-space scan applies:
`log a = -softplus(k_z)`, `log b = -softplus(-k_z) + log g(k_h)` with
`log g(v) = log(v + 1/2)` for v >= 0, `-softplus(-v)` for v < 0.

Fused layout, gate order (z, h): U `[in, 2*hidden]`, b `[2*hidden]`; Glorot-uniform U, zero
biases. The cell emits h itself (the paper puts any output projection outside the cell).
Because the gates see only x(t), `project_inputs` does all the matmuls; `step` is elementwise,
and `rnn_jax.parallel.linear_cells` evaluates all steps at once by an associative scan.

Transition range (Grazzi et al. 2025, "Unlocking State-Tracking in Linear RNNs Through
Negative Eigenvalues", arXiv 2411.12537): with `a(t) = 1 - z(t)` in (0, 1) the recurrence
cannot track parity at any length; `make_cell(transition_range="signed")` maps it to (-1, 1),

    a(t) = 2 (1 - z(t)) - 1 = 1 - 2 z(t) = -tanh(k_z / 2),   b(t) = z(t) h~(t) as before,

so a 1 can flip the sign of the state (a = -1, z = 1) and a 0 keep it (a = 1, z = 0). The
log-space scan needs a > 0, so the signed cell has only the plain scan.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, affine, check_params, check_sizes, zeros_carry
from rnn_jax.cells.fast_paths import LinearForm


class MinGRUParams(NamedTuple):
    U: jax.Array  # [in, 2*hidden], gates (z, h)
    b: jax.Array  # [2*hidden]


def g(v: jax.Array) -> jax.Array:
    """The paper's positive activation: `v + 1/2` for v >= 0, `sigma(v)` below (continuous)."""
    return jnp.where(v >= 0, v + 0.5, jax.nn.sigmoid(v))


def log_g(v: jax.Array) -> jax.Array:
    """`log g(v)`, finite on both branches (so the untaken branch's gradient is never NaN)."""
    return jnp.where(v >= 0, jnp.log(jax.nn.relu(v) + 0.5), -jax.nn.softplus(-v))


def check_real(cell_name: str, params) -> None:
    """A ValueError unless every leaf of `params` is real floating (the cell is real)."""
    for name, leaf in zip(type(params)._fields, params):
        if not jnp.issubdtype(jnp.result_type(leaf), jnp.floating):
            raise ValueError(
                f"{cell_name}: expected real floating params, received {name} of dtype "
                f"{jnp.result_type(leaf)}"
            )


def init(key: jax.Array, input_size: int, hidden_size: int, *, dtype=jnp.float32) -> MinGRUParams:
    """Glorot-uniform U, zero biases."""
    check_sizes("mingru", input_size=input_size, hidden_size=hidden_size)
    return MinGRUParams(
        U=initializers.glorot_uniform(key, (input_size, 2 * hidden_size), dtype),
        b=jnp.zeros((2 * hidden_size,), dtype),
    )


def initial_carry(params: MinGRUParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    return zeros_carry(params.b.shape[0] // 2, batch_shape, params.b.dtype)


def project_inputs(params: MinGRUParams, xs: jax.Array) -> jax.Array:
    """`U x(t) + b` for all steps and gates: `[..., time, in] -> [..., time, 2*hidden]`."""
    return affine(xs, params.U, params.b)


def coefficients(params: MinGRUParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b)` of `h(t) = a h(t-1) + b`: `(1 - z, z * g(k_h))`, each `[..., hidden]`."""
    k_z, k_h = jnp.split(x_proj, 2, axis=-1)
    return jax.nn.sigmoid(-k_z), jax.nn.sigmoid(k_z) * g(k_h)  # 1 - z without cancellation


def log_coefficients(params: MinGRUParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(log a, log b)`: `(log(1 - z), log z + log g(k_h))` by softplus (section 3.1.2)."""
    k_z, k_h = jnp.split(x_proj, 2, axis=-1)
    return -jax.nn.softplus(k_z), -jax.nn.softplus(-k_z) + log_g(k_h)


def signed_coefficients(params: MinGRUParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b)` with the transition in (-1, 1): `(1 - 2z, z * g(k_h))`, each `[..., hidden]`."""
    k_z, k_h = jnp.split(x_proj, 2, axis=-1)
    return -jnp.tanh(0.5 * k_z), jax.nn.sigmoid(k_z) * g(k_h)  # 1 - 2 sigma(k) = -tanh(k/2)


def step(params: MinGRUParams, h_prev: jax.Array, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    a, b = coefficients(params, x_proj)
    h = a * h_prev + b
    return h, h


def signed_step(params: MinGRUParams, h_prev: jax.Array,
                x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`step` with the transition range (-1, 1) (`signed_coefficients`)."""
    a, b = signed_coefficients(params, x_proj)
    h = a * h_prev + b
    return h, h


# the associative scan's view of `step` and `signed_step` (`rnn_jax.parallel.linear_cells`);
# the signed transition can be negative, so it has no log-space form
LINEAR_FORM = LinearForm(coefficients, log_coefficients)
SIGNED_LINEAR_FORM = LinearForm(signed_coefficients)


def _shapes(params: MinGRUParams) -> dict[str, tuple[int, ...]]:
    hidden = params.b.shape[0] // 2
    return {"U": (params.U.shape[0], 2 * hidden), "b": (2 * hidden,)}


def input_size(params: MinGRUParams) -> int:
    """The input width; a ValueError unless `params` are real minGRU params of one shape."""
    check_params("mingru", params, MinGRUParams, _shapes)
    check_real("mingru", params)
    return params.U.shape[0]


TRANSITION_RANGES = ("unit", "signed")  # a(t) in (0, 1), or in (-1, 1)


def check_transition_range(cell_name: str, transition_range: str) -> None:
    if transition_range not in TRANSITION_RANGES:
        raise ValueError(f"{cell_name}: expected transition_range in {list(TRANSITION_RANGES)} "
                         f"('unit': a in (0, 1); 'signed': a in (-1, 1)), received "
                         f"{transition_range!r}")


def make_cell(transition_range: str = "unit", **init_options) -> Cell:
    """The minGRU cell, its transition in (0, 1) ('unit') or (-1, 1) ('signed');
    `init_options` become init defaults."""
    check_transition_range("mingru", transition_range)
    cell_init = functools.partial(init, **init_options)
    signed = transition_range == "signed"
    return Cell("mingru", cell_init, initial_carry, project_inputs,
                signed_step if signed else step, input_size,
                linear_form=SIGNED_LINEAR_FORM if signed else LINEAR_FORM)
