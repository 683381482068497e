"""Weight initialisers. Every function is `(key, shape, dtype) -> array`, as in jax.nn.initializers.

Recurrent matrices are square `[hidden, hidden]`; input matrices `[in, out]`.
"""

import jax
import jax.numpy as jnp

glorot_uniform = jax.nn.initializers.glorot_uniform()
zeros = jax.nn.initializers.zeros


def orthogonal(scale: float = 1.0):
    """Random orthogonal matrix times `scale`: every eigenvalue and singular value has modulus
    `scale`, so `scale` is the spectral radius (Saxe et al. 2014)."""
    return jax.nn.initializers.orthogonal(scale=scale)


def identity(scale: float = 1.0):
    """`scale * I`, the IRNN recurrent init (Le, Jaitly & Hinton 2015)."""

    def init(key, shape, dtype=jnp.float32):
        del key
        if len(shape) != 2 or shape[0] != shape[1]:
            raise ValueError(f"identity init needs a square matrix shape; got {shape}")
        return scale * jnp.eye(shape[0], dtype=dtype)

    return init


def recurrent_init(name: str, spectral_radius: float = 1.0):
    """Recurrent-matrix initialiser by name: 'orthogonal' (spectral radius as given),
    'identity' (IRNN), or 'glorot'."""
    if name == "orthogonal":
        return orthogonal(spectral_radius)
    if name == "identity":
        return identity(spectral_radius)
    if name == "glorot":
        return glorot_uniform
    raise ValueError(
        f"unknown recurrent init {name!r}; expected one of ['glorot', 'identity', 'orthogonal']"
    )
