"""A per-step tagging task whose answer at step t lies after t: "does this symbol come again soon?"

Inputs: symbols s(1..L) drawn uniformly from `num_symbols` categories, one-hot, with a length L
per sequence drawn uniformly from [min_len, seq_len]; steps t > L are padding (all-zero
inputs, label 0, masked out of losses and accuracies).

Label: y(t) = 1 when s(t) occurs again within the next `window` steps of the same sequence,
i.e. s(t) = s(t + d) for some 1 <= d <= window with t + d <= L; else 0.

The label is a function of the future, so a causal (left-to-right) RNN can do no better than
guess from what it can know: the step index t (the symbols are independent, so the past says
nothing about the future). `causal_bound` is that guess's exact accuracy; a bidirectional RNN
(Schuster & Paliwal 1997), whose backward half has read s(t..L), can be exact.
"""

import jax
import jax.numpy as jnp
import numpy as np


def _check(**values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"expected an integer {name} >= 1, received {value!r}")


def check_options(seq_len: int, num_symbols: int, window: int, min_len: int) -> None:
    """A ValueError naming the option unless all are ints >= 1 and min_len <= seq_len."""
    _check(seq_len=seq_len, num_symbols=num_symbols, window=window, min_len=min_len)
    if min_len > seq_len:
        raise ValueError(f"expected min_len <= seq_len = {seq_len}, received {min_len}")


def labels(symbols: jax.Array, lengths: jax.Array, window: int) -> jax.Array:
    """The tags of `symbols [batch, time]` (ints) with `lengths [batch]`: `[batch, time]` float32.

    One comparison per offset d = 1..window (a loop over the window, not over time).
    """
    _check(window=window)
    time = symbols.shape[1]
    positions = jnp.arange(time)
    valid = positions[None, :] < lengths[:, None]  # [batch, time]
    repeats = jnp.zeros(symbols.shape, bool)
    for d in range(1, min(window, time - 1) + 1):
        later = jnp.pad(symbols[:, d:], ((0, 0), (0, d)), constant_values=-1)
        later_valid = jnp.pad(valid[:, d:], ((0, 0), (0, d)))
        repeats = repeats | ((symbols == later) & later_valid)
    return (repeats & valid).astype(jnp.float32)


def sample(key: jax.Array, batch_size: int, seq_len: int, *, num_symbols: int = 6,
           window: int = 4, min_len: int = 1) -> tuple[jax.Array, jax.Array, jax.Array]:
    """A padded batch of tagging sequences.

    Args:
      key: PRNG key; the batch is a pure function of it.
      batch_size: sequences per batch.
      seq_len: the padded length T (the longest sequence).
      num_symbols, window: the alphabet size and the look-ahead k of the label.
      min_len: the shortest sequence; lengths are uniform in [min_len, seq_len].
    Returns:
      `(xs, ys, lengths)`: xs `[batch, T, num_symbols]` float32 one-hot (zeros at padding),
      ys `[batch, T]` float32 tags (0 at padding), lengths `[batch]` int32.
    """
    _check(batch_size=batch_size)
    check_options(seq_len, num_symbols, window, min_len)
    key_symbols, key_lengths = jax.random.split(key)
    lengths = jax.random.randint(key_lengths, (batch_size,), min_len, seq_len + 1)
    symbols = jax.random.randint(key_symbols, (batch_size, seq_len), 0, num_symbols)
    symbols = jnp.where(jnp.arange(seq_len)[None, :] < lengths[:, None], symbols, -1)
    xs = jax.nn.one_hot(symbols, num_symbols, dtype=jnp.float32)  # -1 (padding): all zeros
    return xs, labels(symbols, lengths, window), lengths.astype(jnp.int32)


def causal_bound(seq_len: int, num_symbols: int, window: int, min_len: int = 1) -> float:
    """The best accuracy over valid steps of any predictor that sees only s(1..t) (and t).

    The future is independent of the past, so the best causal guess at step t is the more
    likely label given t alone: with L uniform on [min_len, seq_len] and conditioned on t <= L,
    P(y(t) = 1 | t) = mean over such L of 1 - (1 - 1/V)^min(window, L - t). Accuracy weights
    every valid step of every length equally, as a masked mean over a batch does.
    """
    check_options(seq_len, num_symbols, window, min_len)
    stay = 1.0 - 1.0 / num_symbols
    lengths = np.arange(min_len, seq_len + 1)
    t = np.arange(1, seq_len + 1)
    valid = t[None, :] <= lengths[:, None]  # [lengths, steps]
    ahead = np.clip(lengths[:, None] - t[None, :], 0, window)
    p_one = np.where(valid, 1.0 - stay ** ahead, 0.0)  # P(y = 1 | t, L)
    # P(y = 1 | t): all a causal model can know
    p_given_t = p_one.sum(0) / np.maximum(valid.sum(0), 1)
    guess_one = p_given_t > 0.5
    correct = np.where(guess_one[None, :], p_one, 1.0 - p_one) * valid
    return float(correct.sum() / valid.sum())
