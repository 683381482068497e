"""Unitary-evolution RNN (uRNN; Arjovsky, Shah & Bengio, ICML 2016).

    z(t) = W h(t-1) + V x(t)                        complex, V = V_re + i V_im: [in, hidden]
    h(t) = modReLU(z(t)) = ReLU(|z| + b) z / |z|    one real bias b per unit (0 where z = 0)
    W    = D3 R2 F^-1 D2 Pi R1 F D1                 unitary, never built as a dense matrix

    D_k = diag(exp(i w_k))                 learned phases w: [3, hidden]
    R_k = I - 2 v_k v_k^* / ||v_k||^2      learned complex reflections v = v_re + i v_im: [2, hidden]
    F   = the unitary DFT (jnp.fft, norm="ortho"); F^-1 its inverse
    Pi  = a fixed random permutation, (Pi h)_j = h_{Pi[j]}

Every factor is unitary, so ||W h|| = ||h||; applying W costs O(hidden log hidden).
The carry is the complex state h `[..., hidden]`; the step emits the REAL vector
`[Re h, Im h]` `[..., 2*hidden]`, so readouts, stacks and losses work unchanged.

Init (paper): phases U[-pi, pi], reflection vectors U[-1, 1]; as in the authors' code, V is
Glorot-uniform, b ~ U[-0.01, 0.01] and the learned h0 has real and imaginary parts
U[-sqrt(3/hidden), sqrt(3/hidden)].

Pi is not a trained parameter. It lives in the params as a `Permutation`: a pytree node with
no leaves whose integer indices are static metadata (like `index_permute`, a graph constant in
the authors' code). `jax.grad`, optax, clipping and parameter counts therefore never see it, and
jit bakes it in as a constant. The price: `init` draws it on the host, so `init` itself cannot
run under `jit`/`vmap` (a ValueError says so); everything else (step, unroll, grad) can.
"""

import functools
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import initializers
from rnn_jax.cells.base import Cell, check_params, check_sizes


class Permutation:
    """A fixed permutation of `hidden` units, stored as static pytree metadata (no leaves)."""

    def __init__(self, indices):
        indices = np.asarray(indices, dtype=np.int32)
        if indices.ndim != 1 or not np.array_equal(np.sort(indices), np.arange(indices.size)):
            raise ValueError(
                f"expected a permutation of 0..n-1 as a 1-D integer array, received {indices!r}"
            )
        indices.setflags(write=False)
        self.indices = indices

    def __eq__(self, other):
        return isinstance(other, Permutation) and np.array_equal(self.indices, other.indices)

    def __hash__(self):
        return hash(self.indices.tobytes())

    def __repr__(self):
        return f"Permutation({self.indices.tolist()})"


jax.tree_util.register_pytree_node(Permutation, lambda p: ((), p), lambda p, _: p)


class URNNParams(NamedTuple):
    V_re: jax.Array  # [in, hidden] input projection, real part
    V_im: jax.Array  # [in, hidden] input projection, imaginary part
    w: jax.Array  # [3, hidden] phases of D1, D2, D3
    v_re: jax.Array  # [2, hidden] reflection vectors of R1, R2, real parts
    v_im: jax.Array  # [2, hidden] reflection vectors of R1, R2, imaginary parts
    b: jax.Array  # [hidden] modReLU bias
    h0_re: jax.Array  # [hidden] learned initial state, real part
    h0_im: jax.Array  # [hidden] learned initial state, imaginary part
    Pi: Permutation  # fixed, not trained (static, no leaves)


def _complex(re: jax.Array, im: jax.Array) -> jax.Array:
    return jax.lax.complex(re, im)


def diagonal(w: jax.Array, h: jax.Array) -> jax.Array:
    """`D h` with `D = diag(exp(i w))`; w: `[hidden]`, h: `[..., hidden]` complex."""
    return jnp.broadcast_to(jnp.exp(1j * w).astype(h.dtype), h.shape) * h


def reflection(v: jax.Array, h: jax.Array) -> jax.Array:
    """`R h = h - 2 v (v^* h) / ||v||^2`; v: `[hidden]` complex, h: `[..., hidden]` complex."""
    v = jnp.broadcast_to(v.astype(h.dtype), h.shape)
    v_star_h = jnp.sum(jnp.conj(v) * h, axis=-1, keepdims=True)  # [..., 1]
    v_star_v = jnp.sum(jnp.conj(v) * v, axis=-1, keepdims=True).real  # [..., 1]
    return h - v * jnp.broadcast_to(2 * v_star_h / v_star_v, h.shape)


def permutation(indices: np.ndarray, h: jax.Array) -> jax.Array:
    """`(Pi h)_j = h_{indices[j]}`: `[..., hidden] -> [..., hidden]`."""
    return jnp.take(h, jnp.asarray(indices), axis=-1)


def apply_W(params: URNNParams, h: jax.Array) -> jax.Array:
    """`W h = D3 R2 F^-1 D2 Pi R1 F D1 h` for complex h `[..., hidden]`, in O(hidden log hidden)."""
    v = _complex(params.v_re, params.v_im)
    h = diagonal(params.w[0], h)  # D1
    h = jnp.fft.fft(h, axis=-1, norm="ortho")  # F
    h = reflection(v[0], h)  # R1
    h = permutation(params.Pi.indices, h)  # Pi
    h = diagonal(params.w[1], h)  # D2
    h = jnp.fft.ifft(h, axis=-1, norm="ortho")  # F^-1
    h = reflection(v[1], h)  # R2
    return diagonal(params.w[2], h)  # D3


def modrelu(z: jax.Array, b: jax.Array) -> jax.Array:
    """`modReLU(z) = ReLU(|z| + b) z / |z|`, and 0 at z = 0 (finite value and gradients there);
    NaN stays NaN.

    z: `[..., hidden]` complex, b: `[hidden]` real.
    """
    nonzero = jnp.abs(z) != 0  # not `> 0`: a NaN z must stay NaN, not become the zero state
    safe_z = jnp.where(nonzero, z, jnp.ones_like(z))  # keeps |z| away from 0 in both branches
    safe_norm = jnp.abs(safe_z)
    scale = jax.nn.relu(safe_norm + jnp.broadcast_to(b, z.shape)) / safe_norm
    return jnp.where(nonzero, scale * safe_z, jnp.zeros_like(z))


def init(
    key: jax.Array,
    input_size: int,
    hidden_size: int,
    *,
    dtype=jnp.float32,
) -> URNNParams:
    """The paper's init (see the module docstring); Pi drawn from `key` on the host."""
    check_sizes("urnn", input_size=input_size, hidden_size=hidden_size)
    if isinstance(key, jax.core.Tracer):
        raise ValueError(
            "urnn init draws its fixed permutation Pi on the host: expected a concrete key, "
            "received a traced one (call init outside jit/vmap)"
        )
    keys = jax.random.split(key, 7)
    h0_bound = np.sqrt(3.0 / hidden_size)
    uniform = lambda k, shape, bound: jax.random.uniform(k, shape, dtype, -bound, bound)
    return URNNParams(
        V_re=initializers.glorot_uniform(keys[0], (input_size, hidden_size), dtype),
        V_im=initializers.glorot_uniform(keys[1], (input_size, hidden_size), dtype),
        w=uniform(keys[2], (3, hidden_size), np.pi),
        v_re=uniform(keys[3], (2, hidden_size), 1.0),
        v_im=uniform(keys[4], (2, hidden_size), 1.0),
        b=uniform(keys[5], (hidden_size,), 0.01),
        h0_re=uniform(keys[6], (hidden_size,), h0_bound),
        h0_im=uniform(jax.random.fold_in(keys[6], 1), (hidden_size,), h0_bound),
        Pi=Permutation(np.asarray(jax.random.permutation(jax.random.fold_in(key, 7), hidden_size))),
    )


def initial_carry(params: URNNParams, batch_shape: tuple[int, ...] = ()) -> jax.Array:
    """The learned h0 broadcast to `[*batch_shape, hidden]` (complex)."""
    h0 = _complex(params.h0_re, params.h0_im)
    return jnp.broadcast_to(h0, (*batch_shape, h0.shape[-1]))


def project_inputs(params: URNNParams, xs: jax.Array) -> jax.Array:
    """`V x(t)` for every step at once: `[..., time, in] -> [..., time, hidden]` complex."""
    return _complex(xs @ params.V_re, xs @ params.V_im)


def step(params: URNNParams, h_prev: jax.Array, x_proj: jax.Array) -> tuple[jax.Array, jax.Array]:
    """`h(t) = modReLU(W h(t-1) + V x(t))`; emits `[Re h, Im h]`: `[..., 2*hidden]` real."""
    h = modrelu(apply_W(params, h_prev) + x_proj, params.b)
    return h, jnp.concatenate([h.real, h.imag], axis=-1)


def _shapes(params: URNNParams) -> dict[str, tuple[int, ...]]:
    size_in, hidden = params.V_re.shape[0], params.V_re.shape[1]
    return {
        "V_re": (size_in, hidden), "V_im": (size_in, hidden), "w": (3, hidden),
        "v_re": (2, hidden), "v_im": (2, hidden), "b": (hidden,), "h0_re": (hidden,),
        "h0_im": (hidden,),
    }


def input_size(params: URNNParams) -> int:
    """The input width; a ValueError unless `params` are uRNN params of consistent shapes."""
    check_params("urnn", params, URNNParams, _shapes)
    hidden = params.V_re.shape[1]
    if not isinstance(params.Pi, Permutation) or params.Pi.indices.shape != (hidden,):
        raise ValueError(
            f"urnn: expected Pi a Permutation of {hidden} units, received {params.Pi!r}"
        )
    return params.V_re.shape[0]


def make_cell(**init_options) -> Cell:
    """The uRNN cell; `init_options` become init defaults. Outputs are `2*hidden` wide."""

    cell_init = functools.partial(init, **init_options)  # call-time options override

    return Cell("urnn", cell_init, initial_carry, project_inputs, step, input_size)
