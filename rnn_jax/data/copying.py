"""The copying-memory task (Hochreiter & Schmidhuber 1997; the uRNN paper's setting).

Input, length T + 20: 10 symbols drawn uniformly from 8 categories, then T - 1 blanks, a
delimiter, then 10 blanks. Target: blanks for the first T + 10 steps, then the 10 symbols.

Tokens: 0 = blank, 1..8 = symbols, 9 = delimiter (as in the authors' code). Inputs are one-hot
over the 10 tokens; targets are classes 0..8 (the delimiter is never a target).
A memoryless model that predicts blank until the delimiter and then a uniform guess over the 8
symbols scores the baseline cross-entropy `10 log 8 / (T + 20)` per step.
"""

import math

import jax
import jax.numpy as jnp

BLANK, DELIMITER = 0, 9
NUM_SYMBOLS = 8  # categories 1..8
NUM_TOKENS = 10  # input alphabet: blank, 8 symbols, delimiter
NUM_CLASSES = 9  # target alphabet: blank, 8 symbols
SEQUENCE_LENGTH = 10  # symbols to remember


def baseline(T: int) -> float:
    """Cross-entropy per step of the memoryless strategy: `10 log 8 / (T + 20)`."""
    return SEQUENCE_LENGTH * math.log(NUM_SYMBOLS) / (T + 2 * SEQUENCE_LENGTH)


def sample(key: jax.Array, batch_size: int, T: int) -> tuple[jax.Array, jax.Array]:
    """A batch of copying sequences.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: number of sequences.
      T: the delay (blanks + delimiter between the symbols and their recall), T >= 1.
    Returns:
      `(xs, labels)`: xs `[batch, T + 20, 10]` float32 one-hot inputs, labels
      `[batch, T + 20]` int32 target classes in 0..8.
    """
    if not isinstance(T, int) or T < 1:
        raise ValueError(f"expected an integer delay T >= 1, received {T!r}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"expected an integer batch_size >= 1, received {batch_size!r}")
    symbols = jax.random.randint(key, (batch_size, SEQUENCE_LENGTH), 1, NUM_SYMBOLS + 1)
    blanks = lambda n: jnp.full((batch_size, n), BLANK, jnp.int32)
    delimiter = jnp.full((batch_size, 1), DELIMITER, jnp.int32)
    tokens = jnp.concatenate(
        [symbols, blanks(T - 1), delimiter, blanks(SEQUENCE_LENGTH)], axis=1
    )  # [batch, T + 20]
    labels = jnp.concatenate([blanks(T + SEQUENCE_LENGTH), symbols], axis=1)  # [batch, T + 20]
    return jax.nn.one_hot(tokens, NUM_TOKENS, dtype=jnp.float32), labels.astype(jnp.int32)
