"""Running sums, and comparing two running sums: the notes' summation networks.

Summation: one input stream x(t); the target is the running sum y(t) = x(1) + ... + x(t).
Comparison: two streams x1(t), x2(t); the target is 1 where the running sum of the first
exceeds that of the second, sum x1(1..t) > sum x2(1..t), else 0.
"""

import jax
import jax.numpy as jnp


def _check(batch_size: int, seq_len: int) -> None:
    for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"expected an integer {name} >= 1, received {value!r}")


def sample_sum(
    key: jax.Array, batch_size: int, seq_len: int, *, scale: float = 1.0
) -> tuple[jax.Array, jax.Array]:
    """Inputs U[-scale, scale] and their running sums.

    Returns:
      `(xs, ys)`: xs `[batch, T, 1]`, ys `[batch, T, 1]` with ys[:, t] = sum of xs[:, :t+1].
    """
    _check(batch_size, seq_len)
    xs = jax.random.uniform(key, (batch_size, seq_len, 1), jnp.float32, -scale, scale)
    return xs, jnp.cumsum(xs, axis=1)


def sample_compare(
    key: jax.Array, batch_size: int, seq_len: int, *, max_value: int = 9
) -> tuple[jax.Array, jax.Array]:
    """Two streams of integers in [0, max_value] and whether the first running sum is larger.

    Integer values keep every sum exact in float32, so a hand-built network can be exact.
    Returns:
      `(xs, ys)`: xs `[batch, T, 2]` float32 (stream 1, stream 2); ys `[batch, T]` float32
      in {0, 1}, 1 where sum x1(1..t) > sum x2(1..t).
    """
    _check(batch_size, seq_len)
    if max_value < 1:
        raise ValueError(f"expected max_value >= 1, received {max_value!r}")
    xs = jax.random.randint(key, (batch_size, seq_len, 2), 0, max_value + 1).astype(jnp.float32)
    sums = jnp.cumsum(xs, axis=1)
    return xs, (sums[..., 0] > sums[..., 1]).astype(jnp.float32)
