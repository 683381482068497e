"""The cell contract shared by every recurrent cell.

A cell is a bundle of pure functions (no classes holding arrays):

    init(key, input_size, hidden_size, *, dtype=float32, **options) -> params
    initial_carry(params, batch_shape=()) -> carry
    project_inputs(params, xs) -> xs_proj        # time-parallel part: one matmul over all steps
    step(params, carry, x_proj_t) -> (carry, h_t)  # carry first, as jax.lax.scan expects
    input_size(params) -> int                      # expected feature size of xs

Params and carries are NamedTuples of arrays. Matrices are stored `[in, out]` and applied as
`x @ W`, so any leading axes are batch axes.
"""

from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp


class Cell(NamedTuple):
    """A recurrent cell as a value: the functions `unroll`, the loop and experiments need."""

    name: str
    init: Callable[..., Any]
    initial_carry: Callable[..., Any]
    project_inputs: Callable[[Any, jax.Array], jax.Array]
    step: Callable[[Any, Any, jax.Array], tuple[Any, jax.Array]]
    input_size: Callable[[Any], int]


ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "identity": lambda a: a,
    "sigmoid": jax.nn.sigmoid,
}


def get_activation(name: str) -> Callable[[jax.Array], jax.Array]:
    """Returns the nonlinearity `phi` called `name`; raises a ValueError naming the choices."""
    if name not in ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
    return ACTIVATIONS[name]


def zeros_carry(hidden_size: int, batch_shape: tuple[int, ...], dtype) -> jax.Array:
    """A zero state `[*batch_shape, hidden_size]`."""
    return jnp.zeros((*batch_shape, hidden_size), dtype)


def affine(x: jax.Array, M: jax.Array, bias: jax.Array) -> jax.Array:
    """`x @ M + bias` with the bias broadcast explicitly (safe under strict rank promotion).

    x: `[..., in]`, M: `[in, out]`, bias: `[out]` -> `[..., out]`.
    """
    z = x @ M
    return z + jnp.broadcast_to(bias, z.shape)
