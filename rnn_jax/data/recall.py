"""Delayed recall, "how far back can it learn": output at the end the symbol seen D steps earlier.

Input, length D + 1: symbols drawn uniformly from `num_symbols` categories, one-hot. Target:
the first symbol x(0), to be output at the last step t = D, i.e. the symbol seen D steps before
it; the D symbols in between are distractors. A memoryless guess scores 1 / num_symbols.
"""

import jax
import jax.numpy as jnp


def sample(
    key: jax.Array, batch_size: int, delay: int, num_symbols: int = 4
) -> tuple[jax.Array, jax.Array]:
    """A batch of delayed-recall sequences.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: number of sequences.
      delay: D >= 0, the distance back from the last step to the symbol to recall.
      num_symbols: alphabet size K >= 2.
    Returns:
      `(xs, labels)`: xs `[batch, D + 1, K]` float32 one-hot, labels `[batch]` int32 = the
      symbol at t = 0.
    """
    for name, value, least in (("batch_size", batch_size, 1), ("delay", delay, 0),
                               ("num_symbols", num_symbols, 2)):
        if not isinstance(value, int) or value < least:
            raise ValueError(f"expected an integer {name} >= {least}, received {value!r}")
    symbols = jax.random.randint(key, (batch_size, delay + 1), 0, num_symbols)
    return jax.nn.one_hot(symbols, num_symbols, dtype=jnp.float32), symbols[:, 0].astype(jnp.int32)
