"""Linear recurrent unit (LRU; Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks for
Long Sequences", arXiv 2303.06349, section 3 and appendix A).

    lambda = exp(-exp(nu_log) + i exp(theta_log))     diagonal, |lambda| < 1 for any params
    gamma  = exp(gamma_log)                           input normalisation, sqrt(1 - |lambda|^2)
    s(t)   = lambda * s(t-1) + gamma * (B x(t))       complex state s [state]
    y(t)   = Re(C s(t)) + D x(t)                      real output [hidden]

The state recurrence is linear and diagonal, so `rnn_jax.parallel.linear_cells` evaluates all
steps at once by an associative scan; `step` is the same recurrence one step at a time.

Init (the ring initialisation, section 3.3): |lambda| uniform on the ring [r_min, r_max] in the
complex plane by area, phase uniform in [0, max_phase]:
`nu_log = log(-log(u1 (r_max^2 - r_min^2) + r_min^2) / 2)`, `theta_log = log(max_phase u2)`,
u1, u2 ~ U[0, 1); `gamma_log = log(sqrt(1 - |lambda|^2))` (the normalisation at init, then
trained); B, C complex with real and imaginary parts N(0, 1/(2 in)) and N(0, 1/state).

Convention: matrices are `[in, out]` (x @ B), so C is `[state, hidden]`. The paper's LRU maps
H features to H with a diagonal D; here input and output widths may differ, so D is a full
`[in, hidden]` matrix with entries N(0, 1/in) (it is the paper's diag(D) when they agree and D
is kept diagonal). `state_size` defaults to `hidden_size`.
The carry is the complex state `[..., state]`; `project_inputs` returns the real array
`[Re(B x), Im(B x), D x]` `[..., 2*state + hidden]`.
"""

import functools
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax.cells.base import Cell, check_params, check_sizes
from rnn_jax.cells.fast_paths import LinearForm
from rnn_jax.cells.mingru import check_real


class LRUParams(NamedTuple):
    nu_log: jax.Array  # [state], |lambda| = exp(-exp(nu_log))
    theta_log: jax.Array  # [state], arg(lambda) = exp(theta_log)
    gamma_log: jax.Array  # [state], input normalisation
    B_re: jax.Array  # [in, state]
    B_im: jax.Array  # [in, state]
    C_re: jax.Array  # [state, hidden]
    C_im: jax.Array  # [state, hidden]
    D: jax.Array  # [in, hidden]


def ring_init(key, state_size, *, r_min, r_max, max_phase, dtype):
    """`(nu_log, theta_log, gamma_log)` of the ring initialisation (appendix A)."""
    key_r, key_phase = jax.random.split(key)
    u1 = jax.random.uniform(key_r, (state_size,), dtype)
    u2 = jax.random.uniform(key_phase, (state_size,), dtype, minval=jnp.finfo(dtype).tiny)
    nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
    theta_log = jnp.log(max_phase * u2)
    gamma_log = 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log)))  # log sqrt(1 - |lambda|^2)
    return nu_log, theta_log, gamma_log


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
    state_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
) -> LRUParams:
    """The ring initialisation of lambda, normalised B, Glorot-like C and D (module docstring)."""
    state_size = hidden_size if state_size is None else state_size
    check_sizes("lru", input_size=input_size, hidden_size=hidden_size, state_size=state_size)
    if not 0.0 <= r_min <= r_max <= 1.0:
        raise ValueError(f"lru: expected 0 <= r_min <= r_max <= 1, received r_min={r_min}, "
                         f"r_max={r_max}")
    if not 0.0 < max_phase <= 2 * math.pi:
        raise ValueError(f"lru: expected 0 < max_phase <= 2 pi, received {max_phase}")
    key_ring, key_b, key_c, key_d = jax.random.split(key, 4)
    ring = ring_init(key_ring, state_size, r_min=r_min, r_max=r_max, max_phase=max_phase,
                     dtype=dtype)
    B = jax.random.normal(key_b, (2, input_size, state_size), dtype) / math.sqrt(2 * input_size)
    C = jax.random.normal(key_c, (2, state_size, hidden_size), dtype) / math.sqrt(state_size)
    D = jax.random.normal(key_d, (input_size, hidden_size), dtype) / math.sqrt(input_size)
    return LRUParams(*ring, B_re=B[0], B_im=B[1], C_re=C[0], C_im=C[1], D=D)


def initial_carry(params: LRUParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    dtype = jnp.result_type(params.nu_log.dtype, jnp.complex64)  # complex64 or complex128
    return jnp.zeros((*batch_shape, params.nu_log.shape[0]), dtype)


def project_inputs(params: LRUParams, xs: jax.Array) -> jax.Array:
    """`[Re(B x), Im(B x), D x]` for all steps: `[..., time, in] -> [..., time, 2*state+hidden]`."""
    return jnp.concatenate([xs @ params.B_re, xs @ params.B_im, xs @ params.D], axis=-1)


def eigenvalues(params: LRUParams) -> jax.Array:
    """`lambda = exp(-exp(nu_log) + i exp(theta_log))` `[state]`, complex."""
    return jnp.exp(jax.lax.complex(-jnp.exp(params.nu_log), jnp.exp(params.theta_log)))


def coefficients(params: LRUParams, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`(a, b) = (lambda, gamma * B x)` of `s(t) = a s(t-1) + b`, each `[..., state]` complex."""
    state = params.nu_log.shape[0]
    b = jax.lax.complex(x_proj[..., :state], x_proj[..., state : 2 * state])
    b = jnp.broadcast_to(jnp.exp(params.gamma_log), b.shape) * b  # explicit: strict promotion
    return jnp.broadcast_to(eigenvalues(params), b.shape), b


def emit(params: LRUParams, states: jax.Array, x_proj: jax.Array) -> jax.Array:
    """`y = Re(C s) + D x`: states `[..., state]` complex -> `[..., hidden]` real."""
    feedthrough = x_proj[..., 2 * params.nu_log.shape[0] :]
    return jnp.real(states) @ params.C_re - jnp.imag(states) @ params.C_im + feedthrough


def step(params: LRUParams, s_prev: jax.Array, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    a, b = coefficients(params, x_proj)
    s = a * s_prev + b
    return s, emit(params, s, x_proj)


# the associative scan's view of `step` (`rnn_jax.parallel.linear_cells`); lambda is complex,
# so there is no log-space form
LINEAR_FORM = LinearForm(coefficients, emit=emit)


def _shapes(params: LRUParams) -> dict[str, tuple[int, ...]]:
    size_in, (state, hidden) = params.B_re.shape[0], params.C_re.shape
    ring = {name: (state,) for name in ("nu_log", "theta_log", "gamma_log")}
    return {**ring, "B_re": (size_in, state), "B_im": (size_in, state), "C_re": (state, hidden),
            "C_im": (state, hidden), "D": (size_in, hidden)}


def input_size(params: LRUParams) -> int:
    """The input width; a ValueError unless `params` are real LRU params of one shape."""
    check_params("lru", params, LRUParams, _shapes)
    check_real("lru", params)
    return params.B_re.shape[0]


def make_cell(**init_options) -> Cell:
    """The LRU cell; `init_options` (e.g. `r_min=0.9, max_phase=math.pi / 10`) become init
    defaults."""
    cell_init = functools.partial(init, **init_options)
    return Cell("lru", cell_init, initial_carry, project_inputs, step, input_size,
                linear_form=LINEAR_FORM)
