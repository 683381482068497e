"""The adding problem (Hochreiter & Schmidhuber 1997; the uRNN paper's setting).

Two input channels of length T: channel 0 holds values drawn from U[0, 1], channel 1 is a
marker with exactly two ones, one in each half (positions in [0, T//2) and [T//2, T)). The
target, read at the end, is the sum of the two marked values.
Always predicting 1 (the mean of the sum) scores the baseline mean squared error
`Var(u1 + u2) = 2/12 = 1/6 ~= 0.167`.
"""

import jax
import jax.numpy as jnp

BASELINE_MSE = 1.0 / 6.0  # variance of the sum of two U[0, 1] values


def baseline(T: int) -> float:
    """MSE of always predicting 1: 1/6 ~= 0.167 at every T."""
    del T
    return BASELINE_MSE


def sample(key: jax.Array, batch_size: int, T: int) -> tuple[jax.Array, jax.Array]:
    """A batch of adding-problem sequences.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: number of sequences.
      T: sequence length, T >= 2.
    Returns:
      `(xs, ys)`: xs `[batch, T, 2]` float32 (values, markers), ys `[batch, 1]` float32 sums.
    """
    if not isinstance(T, int) or T < 2:
        raise ValueError(f"expected an integer length T >= 2, received {T!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected an integer batch_size >= 1, received {batch_size!r}")
    key_values, key_first, key_second = jax.random.split(key, 3)
    values = jax.random.uniform(key_values, (batch_size, T), jnp.float32)
    half = T // 2
    first = jax.random.randint(key_first, (batch_size,), 0, half)
    second = jax.random.randint(key_second, (batch_size,), half, T)
    positions = jnp.arange(T)[None, :]
    markers = (positions == first[:, None]) | (positions == second[:, None])  # [batch, T]
    markers = markers.astype(jnp.float32)
    ys = jnp.sum(values * markers, axis=1, keepdims=True)
    return jnp.stack([values, markers], axis=-1), ys
