"""Unitary-evolution RNN (uRNN; Arjovsky, Shah & Bengio, ICML 2016).

    z(t) = W h(t-1) + V x(t)                        complex, V = V_re + i V_im: [in, hidden]
    h(t) = modReLU(z(t)) = ReLU(|z| + b) z / |z|    one real bias b per unit (0 where z = 0)
    W    = D3 R2 F^-1 D2 Pi R1 F D1                 unitary

    D_k = diag(exp(i w_k))                 learned phases w: [3, hidden]
    R_k = I - 2 v_k v_k^* / ||v_k||^2      learned complex reflections v = v_re + i v_im:
                                           [2, hidden]
    F   = the unitary DFT, F^-1 its inverse
    Pi  = a fixed random permutation, (Pi h)_j = h_{Pi[j]}

Every factor is unitary, so ||W h|| = ||h||. The carry is the complex state h `[..., hidden]`;
the step emits the REAL vector `[Re h, Im h]` `[..., 2*hidden]`, so readouts, stacks and
losses work unchanged.

Init (paper): phases U[-pi, pi], reflection vectors U[-1, 1]; as in the authors' code, V is
Glorot-uniform, b ~ U[-0.01, 0.01] and the learned h0 has real and imaginary parts
U[-sqrt(3/hidden), sqrt(3/hidden)].

Two forms of W, the same function (`make_cell(dense_W=...)`). Both are built once per
sequence by the cell's `prepare` hook (`rnn_jax.cells.base`), outside the scan over time:
- factored (default): the factors, applied at every step in O(hidden log hidden) (two FFTs,
  two reflections, a gather);
- dense: the factor chain applied once to the identity, then one complex matmul per step,
  O(hidden^2). It can win where a matmul is cheap next to launching many small ops
  (accelerators); on CPUs the factored form does far fewer flops and is the faster.
`benchmarks/urnn_step.py` measures both. `step` also accepts the raw params (a Python loop,
`rnn_jax.diagnostics`) and then prepares the factors itself, at every call. Gradients are
autodiff through the scan (there is no hand-written BPTT kernel for the uRNN).

Pi is not trained, yet it is an array leaf, so that `init` runs under `jit`/`vmap` and every
member of a vmapped population gets its own Pi. It is a `Permutation` holding float sort keys,
`Pi = argsort(keys)`, read through `stop_gradient`:
- a float leaf, because the train step takes `jax.grad` of every leaf of the params, and
  `jax.grad` refuses integer inputs; its gradient is exactly zero, so clipping and the
  library's optimisers (zero gradient, zero update) leave it as it is;
- sort keys, not rounded indices, because weight decay moves every leaf without a gradient:
  it scales (sgd) or shifts (adam, rmsprop: normalised steps) all keys nearly alike, which
  keeps their order, while rounded indices would change after a drift of 1/2. The keys start
  at hidden..2*hidden-1 (spacing 1, all of one sign) so that such moves stay alike.
The price: `results.num_params` counts Pi's `hidden` scalars (it counts every leaf), and a
transformation that rewrites leaves arbitrarily (e.g. noise added to every parameter) must
skip `params.Pi`.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, check_params, check_sizes, check_step


class Permutation(NamedTuple):
    """The fixed permutation Pi, stored as float sort keys (see the module docstring)."""

    keys: jax.Array  # [hidden] distinct floats; Pi = argsort(keys)

    @property
    def indices(self) -> jax.Array:
        """`[hidden]` int32 with `(Pi h)_j = h_{indices[j]}`."""
        return jnp.argsort(jax.lax.stop_gradient(self.keys), axis=-1).astype(jnp.int32)

    @property
    def shape(self) -> tuple[int, ...]:  # `np.shape(params.Pi)`: shape checks see the keys
        return self.keys.shape


class URNNParams(NamedTuple):
    V_re: jax.Array  # [in, hidden] input projection, real part
    V_im: jax.Array  # [in, hidden] input projection, imaginary part
    w: jax.Array  # [3, hidden] phases of D1, D2, D3
    v_re: jax.Array  # [2, hidden] reflection vectors of R1, R2, real parts
    v_im: jax.Array  # [2, hidden] reflection vectors of R1, R2, imaginary parts
    b: jax.Array  # [hidden] modReLU bias
    h0_re: jax.Array  # [hidden] learned initial state, real part
    h0_im: jax.Array  # [hidden] learned initial state, imaginary part
    Pi: Permutation  # fixed, not trained (zero gradient)


class Factors(NamedTuple):
    """W's factors as the step applies them, `[*batch, hidden]` complex unless noted."""

    d1: jax.Array  # exp(i w_1)
    d2: jax.Array  # exp(i w_2)
    d3: jax.Array  # exp(i w_3)
    u1: jax.Array  # v_1 / ||v_1||
    u2: jax.Array  # v_2 / ||v_2||
    Pi: jax.Array  # [hidden] int32 indices


class StepParams(NamedTuple):
    """What `step` needs, built once per sequence by `prepare` / `prepare_dense`."""

    W: Factors | jax.Array  # the factors, or the dense W^T `[hidden, hidden]`: h @ W^T = (W h)^T
    b: jax.Array  # [*batch, hidden] modReLU bias


def _complex(re: jax.Array, im: jax.Array) -> jax.Array:
    return jax.lax.complex(re, im)


def _full(a: jax.Array, batch_shape: tuple[int, ...]) -> jax.Array:
    return jnp.broadcast_to(a, (*batch_shape, a.shape[-1]))


def _reflect(u: jax.Array, h: jax.Array) -> jax.Array:
    """`h - 2 u (u^* h)` for a unit vector u; u, h: `[..., hidden]` complex."""
    u = jnp.broadcast_to(u, h.shape)
    return h - 2 * u * jnp.sum(jnp.conj(u) * h, axis=-1, keepdims=True)


def apply_factors(f: Factors, h: jax.Array) -> jax.Array:
    """`W h = D3 R2 F^-1 D2 Pi R1 F D1 h`, right to left; h `[..., hidden]` complex."""
    # fft and ifft unscaled are sqrt(hidden) F and F^-1 / sqrt(hidden): the scales cancel
    # (every factor is linear), so no scaling runs at each step
    full = lambda a: jnp.broadcast_to(a, h.shape)
    h = full(f.d1) * h  # D1
    h = jnp.fft.fft(h, axis=-1)  # F (times sqrt(hidden))
    h = _reflect(f.u1, h)  # R1
    h = jnp.take(h, f.Pi, axis=-1)  # Pi
    h = full(f.d2) * h  # D2
    h = jnp.fft.ifft(h, axis=-1)  # F^-1 (over sqrt(hidden))
    h = _reflect(f.u2, h)  # R2
    return full(f.d3) * h  # D3


def diagonal(w: jax.Array, h: jax.Array) -> jax.Array:
    """`D h` with `D = diag(exp(i w))`; w: `[hidden]`, h: `[..., hidden]` complex."""
    return jnp.broadcast_to(jnp.exp(1j * w).astype(h.dtype), h.shape) * h


def reflection(v: jax.Array, h: jax.Array) -> jax.Array:
    """`R h = h - 2 v (v^* h) / ||v||^2`; v: `[hidden]` complex, h: `[..., hidden]` complex."""
    return _reflect((v / jnp.linalg.norm(v)).astype(h.dtype), h)


def permutation(indices: jax.Array, h: jax.Array) -> jax.Array:
    """`(Pi h)_j = h_{indices[j]}`: `[..., hidden] -> [..., hidden]`."""
    return jnp.take(h, jnp.asarray(indices), axis=-1)


def factors(params: URNNParams, batch_shape: tuple[int, ...] = ()) -> Factors:
    """W's factors from the params, broadcast to `[*batch_shape, hidden]`.

    Broadcast once, outside the scan: the backward pass then accumulates each factor's
    cotangent elementwise at every step and sums over the batch once, after the loop.
    """
    v = _complex(params.v_re, params.v_im)
    u = v / jnp.linalg.norm(v, axis=-1, keepdims=True)  # [2, hidden]
    d = jnp.exp(1j * params.w)  # [3, hidden]
    full = lambda a: _full(a, batch_shape)
    return Factors(full(d[0]), full(d[1]), full(d[2]), full(u[0]), full(u[1]), params.Pi.indices)


def apply_W(params: URNNParams, h: jax.Array) -> jax.Array:
    """`W h` for complex h `[..., hidden]`, in O(hidden log hidden) from the factors."""
    return apply_factors(factors(params), h)


def dense_matrix(params: URNNParams) -> jax.Array:
    """W^T `[hidden, hidden]` complex (`[in, out]`: `h @ dense_matrix(params)` is `W h` for each row
    h): the factor chain applied to the identity, row k being `W e_k`."""
    hidden = params.w.shape[-1]
    return apply_W(params, jnp.eye(hidden, dtype=jnp.result_type(params.w, jnp.complex64)))


def prepare(params: URNNParams, batch_shape: tuple[int, ...] = ()) -> StepParams:
    """The factored step's params: W's factors and b, broadcast to `[*batch_shape, hidden]`."""
    return StepParams(factors(params, batch_shape), _full(params.b, batch_shape))


def prepare_dense(params: URNNParams, batch_shape: tuple[int, ...] = ()) -> StepParams:
    """The dense step's params: W^T `[hidden, hidden]` and b `[*batch_shape, hidden]`."""
    return StepParams(dense_matrix(params), _full(params.b, batch_shape))


@jax.custom_jvp
def modrelu(z: jax.Array, b: jax.Array) -> jax.Array:
    """`modReLU(z) = ReLU(|z| + b) z / |z|`, and 0 at z = 0 (finite value and gradients there);
    NaN stays NaN.

    z: `[..., hidden]` complex, b: `[hidden]` (or z's shape) real.
    """
    return _modrelu_parts(z, b)[0]


def _modrelu_parts(z, b):
    """`(out, nonzero, safe_z, |safe_z|, scale, b)`, with z = 0 replaced by 1 (`safe_z`) so that
    no branch divides by 0."""
    nonzero = z != 0  # not `|z| > 0`: a NaN z must stay NaN, not become the zero state
    safe_z = jnp.where(nonzero, z, jnp.ones_like(z))
    norm = jnp.sqrt(safe_z.real**2 + safe_z.imag**2)
    b = jnp.broadcast_to(b, norm.shape)
    scale = jax.nn.relu(norm + b) / norm
    return jnp.where(nonzero, scale * safe_z, jnp.zeros_like(z)), nonzero, safe_z, norm, scale, b


@modrelu.defjvp
def _modrelu_jvp(primals, tangents):
    # d|z| = Re(conj(z) dz) / |z|;  d scale = ((1[|z|+b>0] - scale) d|z| + 1[|z|+b>0] db) / |z|.
    # One fused expression instead of autodiff through abs, where and division.
    (z, b), (dz, db) = primals, tangents
    out, nonzero, safe_z, norm, scale, b = _modrelu_parts(z, b)
    active = (norm + b > 0).astype(norm.dtype)
    dnorm = (safe_z.real * dz.real + safe_z.imag * dz.imag) / norm
    dscale = ((active - scale) * dnorm + active * jnp.broadcast_to(db, norm.shape)) / norm
    return out, jnp.where(nonzero, scale * dz + dscale * safe_z, jnp.zeros_like(dz))


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
) -> URNNParams:
    """The paper's init (see the module docstring); Pi drawn from `key`. Traceable (jit, vmap)."""
    check_sizes("urnn", input_size=input_size, hidden_size=hidden_size)
    if 2 * hidden_size > 2 ** (jnp.finfo(dtype).nmant + 1):
        raise ValueError(
            f"urnn: expected a dtype whose whole numbers reach 2*hidden_size = {2 * hidden_size} "
            f"exactly (Pi's sort keys), received {jnp.dtype(dtype).name}"
        )
    keys = jax.random.split(key, 7)
    h0_bound = np.sqrt(3.0 / hidden_size)
    uniform = lambda k, shape, bound: jax.random.uniform(k, shape, dtype, -bound, bound)
    indices = jax.random.permutation(jax.random.fold_in(key, 7), hidden_size)
    return URNNParams(
        V_re=initializers.glorot_uniform(keys[0], (input_size, hidden_size), dtype),
        V_im=initializers.glorot_uniform(keys[1], (input_size, hidden_size), dtype),
        w=uniform(keys[2], (3, hidden_size), np.pi),
        v_re=uniform(keys[3], (2, hidden_size), 1.0),
        v_im=uniform(keys[4], (2, hidden_size), 1.0),
        b=uniform(keys[5], (hidden_size,), 0.01),
        h0_re=uniform(keys[6], (hidden_size,), h0_bound),
        h0_im=uniform(jax.random.fold_in(keys[6], 1), (hidden_size,), h0_bound),
        Pi=Permutation((hidden_size + jnp.argsort(indices)).astype(dtype)),  # argsort -> indices
    )


def initial_carry(params: URNNParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    """The learned h0 broadcast to `[*batch_shape, hidden]` (complex)."""
    return _full(_complex(params.h0_re, params.h0_im), batch_shape)


def project_inputs(params: URNNParams, xs: jax.Array) -> jax.Array:
    """`V x(t)` for every step at once: `[..., time, in] -> [..., time, hidden]` complex."""
    return _complex(xs @ params.V_re, xs @ params.V_im)


# The factored chain is recomputed in the backward pass from h(t-1) (two more FFTs per step)
# instead of storing its seven intermediate states per step: less memory traffic per step.
_apply_factors_rematerialised = jax.checkpoint(apply_factors)


def step(
    params: StepParams | URNNParams, h_prev: jax.Array, x_proj: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """`h(t) = modReLU(W h(t-1) + V x(t))`; emits `[Re h, Im h]`: `[..., 2*hidden]` real.

    `params`: from `prepare`/`prepare_dense` (once per sequence), or the raw `URNNParams`.
    """
    hidden = np.shape(params.b)[-1]
    check_step("urnn", x_proj, hidden, h=(h_prev, hidden))
    if isinstance(params, URNNParams):
        params = prepare(params, h_prev.shape[:-1])
    if isinstance(params.W, Factors):
        Wh = _apply_factors_rematerialised(params.W, h_prev)
    else:
        Wh = h_prev @ params.W  # (W h)^T = h^T W^T
    h = modrelu(Wh + x_proj, params.b)
    return h, jnp.concatenate([h.real, h.imag], axis=-1)


def _shapes(params: URNNParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.V_re.shape[0], params.V_re.shape[1]
    return {
        "V_re": (size_in, hidden), "V_im": (size_in, hidden), "w": (3, hidden),
        "v_re": (2, hidden), "v_im": (2, hidden), "b": (hidden,), "h0_re": (hidden,),
        "h0_im": (hidden,), "Pi": (hidden,),
    }


def input_size(params: URNNParams) -> int:
    """The input width; a ValueError unless `params` are uRNN params of consistent shapes."""
    check_params("urnn", params, URNNParams, _shapes)
    if not isinstance(params.Pi, Permutation):
        raise ValueError(f"urnn: expected Pi a Permutation, received {type(params.Pi).__name__}")
    return params.V_re.shape[0]


def make_cell(*, dense_W: bool = False, **init_options) -> Cell:
    """The uRNN cell; `dense_W` picks W's form (module docstring); `init_options` become init
    defaults. Outputs are `2*hidden` wide."""

    cell_init = functools.partial(init, **init_options)  # call-time options override
    cell_prepare = prepare_dense if dense_W else prepare
    return Cell("urnn", cell_init, initial_carry, project_inputs, step, input_size, cell_prepare)
