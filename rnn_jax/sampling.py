"""Sampling text from a language model with one `jax.lax.scan` (no Python loop of jitted calls).

The model is given as `step_fn(stream, token [batch]) -> (stream, logits [batch, vocab])`, e.g.
`functools.partial(language_model.step, cells, params)`. The priming string is fed through
the model first (one scan), then each step draws the next token from
    p(w) = softmax(o / temperature)   restricted to the top_k largest logits when top_k > 0,
or takes `argmax o` when greedy, and feeds it back as the next input.
Jit at the top, with `length`, `top_k` and `greedy` static.
"""

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

StepFn = Callable[[Any, jax.Array], tuple[Any, jax.Array]]


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def filter_top_k(logits: jax.Array, top_k: int) -> jax.Array:
    """Keeps exactly the `top_k` largest logits (last axis) and sets the rest to -inf; 0 keeps
    them all. Ties at the k-th value are broken by `jax.lax.top_k` (lower index first), so
    `top_k=1` keeps one token even when several share the largest logit."""
    if top_k <= 0 or top_k >= logits.shape[-1]:
        return logits
    _, indices = jax.lax.top_k(logits, top_k)  # [..., top_k]
    keep = jnp.put_along_axis(
        jnp.zeros(logits.shape, bool), indices, True, axis=-1, inplace=False
    )
    return jnp.where(keep, logits, -jnp.inf)


def choose(
    key: jax.Array, logits: jax.Array, *, temperature: float = 1.0, top_k: int = 0,
    greedy: bool = False,
) -> jax.Array:
    """Next tokens `[batch]` from logits `[batch, vocab]`."""
    if greedy:
        return jnp.argmax(logits, axis=-1).astype(jnp.int32)
    logits = filter_top_k(logits / temperature, top_k)
    return jax.random.categorical(key, logits, axis=-1).astype(jnp.int32)


def sample(
    step_fn: StepFn,
    stream: Any,
    prime: jax.Array,
    key: jax.Array,
    length: int,
    *,
    temperature: float = 1.0,
    top_k: int = 0,
    greedy: bool = False,
) -> jax.Array:
    """Continues the priming tokens with `length` sampled tokens.

    Args:
      step_fn: one model step (see the module docstring).
      stream: the model's initial state for a batch of 1 (e.g. `initial_stream(..., 1)`).
      prime: `[P]` int ids, P >= 1; the model reads them all before it samples.
      key: PRNG key; the same key gives the same sample.
      length: number of tokens to generate.
      temperature: > 0; below 1 sharpens the distribution, above 1 flattens it.
      top_k: sample only among the k most likely tokens (0: all).
      greedy: take the most likely token every step (ignores key, temperature, top_k).
    Returns:
      `[length]` int32 ids of the continuation (the prime not included).
    """
    if prime.ndim != 1 or prime.shape[0] < 1:
        raise ValueError(f"expected a priming sequence of shape [P >= 1], received {prime.shape}")
    if not greedy and not temperature > 0:
        raise ValueError(f"expected temperature > 0, received {temperature}")
    if not _is_int(length) or length < 1:
        raise ValueError(f"expected length an int >= 1, received {length!r}")
    if not _is_int(top_k) or top_k < 0:
        raise ValueError(f"expected top_k an int >= 0 (0: all tokens), received {top_k!r}")
    if not jnp.issubdtype(prime.dtype, jnp.integer):
        raise ValueError(f"expected integer priming tokens, received dtype {prime.dtype}")

    def read(stream, token):
        stream, logits = step_fn(stream, token[None])
        return stream, logits

    stream, logits = jax.lax.scan(read, stream, prime)  # logits [P, 1, vocab]

    def write(state, step_key):
        stream, logits = state
        token = choose(step_key, logits, temperature=temperature, top_k=top_k, greedy=greedy)
        stream, logits = step_fn(stream, token)
        return (stream, logits), token[0]

    _, tokens = jax.lax.scan(write, (stream, logits[-1]), jax.random.split(key, length))
    return tokens
