"""Parity of binary sequences: the notes' "output YES if the number of 1s is even" task.

Inputs are random bits x(t) in {0, 1}. The parity bit is the XOR of the input and the previous
parity bit, p(t) = p(t-1) XOR x(t) with p(0) = 0, so p(t) = (x(1) + ... + x(t)) mod 2 is 1 when
the count of 1s so far is odd (and the answer "YES, even" is 1 - p(t)).

Targets: 'many_to_many' gives p(t) at every step, 'many_to_one' only p(T) at the end.
"""

import jax
import jax.numpy as jnp

TARGETS = ("many_to_many", "many_to_one")


def running_parity(xs: jax.Array) -> jax.Array:
    """`[..., time]` bits -> `[..., time]` p(t) = (x(1) + ... + x(t)) mod 2, same dtype."""
    counts = jnp.cumsum(xs.astype(jnp.int32), axis=-1)
    return (counts % 2).astype(xs.dtype)


def sample(
    key: jax.Array, batch_size: int, seq_len: int, *, target: str = "many_to_many"
) -> tuple[jax.Array, jax.Array]:
    """A batch of random bit sequences and their parity targets.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: sequences per batch.
      seq_len: time steps T.
      target: 'many_to_many' or 'many_to_one'.
    Returns:
      `(xs, ys)`: xs `[batch, T, 1]` float32 bits; ys float32 in {0, 1}, `[batch, T]`
      (many-to-many) or `[batch]` (many-to-one).
    """
    if target not in TARGETS:
        raise ValueError(f"unknown parity target {target!r}; expected one of {list(TARGETS)}")
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"expected an integer {name} >= 1, received {value!r}")
    bits = jax.random.bernoulli(key, 0.5, (batch_size, seq_len)).astype(jnp.float32)
    ys = running_parity(bits)
    return bits[..., None], ys if target == "many_to_many" else ys[:, -1]
