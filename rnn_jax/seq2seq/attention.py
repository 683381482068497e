"""Attention over encoder outputs: additive (Bahdanau et al. 2015) and dot-product (Luong et
al. 2015), masked by the source lengths; the weights are returned so they can be plotted.

With encoder outputs (the "memory") m_s, s = 1..S, and a decoder query q_t:

    additive (Bahdanau et al. 2015, App. A.1.2):  e_ts = v^T tanh(W_q q_t + W_m m_s)
    dot      (Luong et al. 2015, eq. 8, "dot"):   e_ts = q_t^T m_s      (needs |q| = |m|)
    a_ts = exp(e_ts) / sum_{s' < length} exp(e_ts')   for s < length, and exactly 0 on padding
    c_t  = sum_s a_ts m_s                                                  (the context vector)

`W_m m_s` does not depend on t, so `memory()` computes it once per source (the "keys") and
every decoder step reuses it.
"""

from typing import NamedTuple

import jax
import jax.numpy as jnp

from rnn_jax import initializers
from rnn_jax.sequence import sequence_mask

KINDS = ("none", "additive", "dot")


class AdditiveParams(NamedTuple):
    W_q: jax.Array  # [query, attention]
    W_m: jax.Array  # [memory, attention]
    v: jax.Array  # [attention]


class Memory(NamedTuple):
    """What every decoder step attends to, computed once per source batch."""

    values: jax.Array  # [batch, source, memory]: the encoder outputs m_s
    keys: jax.Array  # [batch, source, attention] (additive: W_m m_s; dot: m_s itself)
    mask: jax.Array  # [batch, source] bool, True on valid source steps


def check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"expected attention in {KINDS}, received {kind!r}")


def init(key: jax.Array, kind: str, query_size: int, memory_size: int,
         attention_size: int | None = None, *, dtype=jnp.float32) -> AdditiveParams | None:
    """Params of the score function: Glorot W_q, W_m and v for "additive" (`attention_size`
    defaults to `query_size`); None for "dot" (it has none) and "none".

    Raises a ValueError when "dot" is asked of sizes that cannot be multiplied.
    """
    check_kind(kind)
    if kind == "dot" and query_size != memory_size:
        raise ValueError(
            f"dot-product attention: expected decoder outputs of the encoder outputs' width "
            f"{memory_size}, received {query_size} (use attention='additive')"
        )
    if kind != "additive":
        return None
    size = attention_size or query_size
    key_q, key_m, key_v = jax.random.split(key, 3)
    return AdditiveParams(
        W_q=initializers.glorot_uniform(key_q, (query_size, size), dtype),
        W_m=initializers.glorot_uniform(key_m, (memory_size, size), dtype),
        v=initializers.glorot_uniform(key_v, (size, 1), dtype)[:, 0],
    )


def memory(kind: str, params: AdditiveParams | None, values: jax.Array,
           lengths: jax.Array) -> Memory:
    """The memory of a batch: encoder outputs `values [batch, source, memory]`, `lengths
    [batch]` -> `Memory` with the keys precomputed."""
    check_kind(kind)
    if values.ndim != 3:
        raise ValueError(f"expected encoder outputs [batch, source, features], received shape "
                         f"{values.shape}")
    if kind == "additive":
        if params.W_m.shape[0] != values.shape[-1]:
            raise ValueError(f"additive attention: expected encoder outputs of width "
                             f"{params.W_m.shape[0]}, received {values.shape[-1]}")
        keys = values @ params.W_m
    else:
        keys = values
    return Memory(values, keys, sequence_mask(lengths, values.shape[1]))


def attend(kind: str, params: AdditiveParams | None, memory: Memory,
           query: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Context vectors and weights for queries `[batch, queries, query]`.

    Returns:
      `(context [batch, queries, memory], weights [batch, queries, source])`; each row of
      weights sums to 1 over the valid source steps and is 0 on padding (a source of length 0
      gives zero weights and a zero context).
    """
    if kind == "additive":
        if query.shape[-1] != params.W_q.shape[0]:
            raise ValueError(f"additive attention: expected decoder outputs of width "
                             f"{params.W_q.shape[0]}, received {query.shape[-1]}")
        hidden = jnp.tanh((query @ params.W_q)[:, :, None, :] + memory.keys[:, None, :, :])
        scores = hidden @ params.v  # [batch, queries, source]
    elif kind == "dot":
        if query.shape[-1] != memory.keys.shape[-1]:
            raise ValueError(f"dot-product attention: expected decoder outputs of width "
                             f"{memory.keys.shape[-1]} (the encoder outputs'), received "
                             f"{query.shape[-1]}")
        scores = jnp.einsum("bqh,bsh->bqs", query, memory.keys)
    else:
        raise ValueError(f"expected attention in {KINDS[1:]}, received {kind!r}")
    weights = masked_softmax(scores, memory.mask[:, None, :])
    return jnp.einsum("bqs,bsh->bqh", weights, memory.values), weights


def masked_softmax(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax over the last axis restricted to `mask`; exactly 0 where mask is False.

    Masked scores become the row's valid maximum before the exponential (the "double
    where"), so whatever they hold never reaches the valid weights or their gradients.
    """
    mask = jnp.broadcast_to(mask, scores.shape)
    low = jnp.min(jnp.where(mask, scores, jnp.inf), axis=-1, keepdims=True)
    safe = jnp.where(mask, scores, jnp.where(jnp.isfinite(low), low, 0.0))
    shifted = safe - jax.lax.stop_gradient(jnp.max(safe, axis=-1, keepdims=True))
    exp = jnp.where(mask, jnp.exp(shifted), 0.0)
    total = jnp.sum(exp, axis=-1, keepdims=True)
    return exp / jnp.where(total > 0, total, 1.0)
