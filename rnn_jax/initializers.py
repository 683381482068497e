"""Weight initialisers. Every function is `(key, shape, dtype) -> array`, as in jax.nn.initializers.

Recurrent matrices are square `[hidden, hidden]`; input matrices `[in, out]`.
"""

import numbers

import jax
import jax.numpy as jnp

glorot_uniform = jax.nn.initializers.glorot_uniform()


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


def scaled_to_spectral_radius(init, spectral_radius: float):
    """`init`'s square matrix rescaled so its largest eigenvalue modulus is `spectral_radius`."""

    def scaled(key, shape, dtype=jnp.float32):
        W = init(key, shape, dtype)
        radius = jnp.max(jnp.abs(jnp.linalg.eigvals(W)))
        return (W * (spectral_radius / radius)).astype(dtype)

    return scaled


def recurrent_init(name: str, spectral_radius: float | None = None):
    """Recurrent-matrix initialiser by name: 'orthogonal' (every eigenvalue of modulus
    `spectral_radius`, default 1), 'identity' (IRNN, `spectral_radius * I`), or 'glorot'
    (unscaled by default; with `spectral_radius`, rescaled to that spectral radius)."""
    if spectral_radius is not None and (
        not isinstance(spectral_radius, numbers.Real) or isinstance(spectral_radius, bool)
        or not spectral_radius >= 0
    ):
        raise ValueError(f"expected spectral_radius a number >= 0, received {spectral_radius!r}")
    if name == "orthogonal":
        return orthogonal(1.0 if spectral_radius is None else spectral_radius)
    if name == "identity":
        return identity(1.0 if spectral_radius is None else spectral_radius)
    if name == "glorot":
        if spectral_radius is None:
            return glorot_uniform
        return scaled_to_spectral_radius(glorot_uniform, spectral_radius)
    raise ValueError(
        f"unknown recurrent init {name!r}; expected one of ['glorot', 'identity', 'orthogonal']"
    )
