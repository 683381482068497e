"""Searching the decoder (`decoder.py`): greedy and beam search, batched, one `lax.scan` over
at most `max_len` steps (shapes fixed, so one compiled program serves every batch).

Both start from a carry (`model.start` of a source, or any encoded input) and the token BOS.
A sequence ends at its first EOS, which it keeps; later steps emit PAD. `lengths` count the
tokens up to and including EOS (`max_len` when none came).

Beam search (Graves 2012; Sutskever et al. 2014, Sec. 3.1) keeps the `beam_width` best
prefixes by summed log-probability; a finished beam keeps its score and only extends by PAD
at no cost. At the end each batch row returns the beam with the best length-normalised score
`log p(y) / lp(|y|)`, `lp(n) = ((5 + n) / 6) ** alpha` (Wu et al. 2016, eq. 14; alpha = 0:
no normalisation). With `beam_width=1` it is greedy search.

Dtypes are explicit so decoding runs alike with and without `jax_enable_x64`: tokens, lengths
and step counters are int32; scores have the readout's dtype (float32 params decode in float32
under x64, float64 params in float64).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import sequence
from rnn_jax.seq2seq import decoder as decoder_lib
from rnn_jax.seq2seq.attention import Memory
from rnn_jax.seq2seq.decoder import BOS, EOS, PAD, Decoder, DecoderParams


class Decoded(NamedTuple):
    tokens: jax.Array  # [batch, max_len] ints; PAD after EOS
    lengths: jax.Array  # [batch] tokens up to and including EOS (max_len without one)
    scores: jax.Array  # [batch] log p(tokens) (beam search: before length normalisation)
    weights: jax.Array | None  # [batch, max_len, source] attention weights (greedy only)


def _check(decoder: Decoder, params: DecoderParams, memory: Memory | None, max_len: int,
           *tokens: int) -> None:
    decoder_lib.check_memory(decoder, memory)
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"expected max_len an int >= 1, received {max_len!r}")
    vocab = decoder_lib.vocab_size(params)
    for name, token in zip(("bos", "eos", "pad"), tokens):
        if not 0 <= token < vocab:
            raise ValueError(f"expected {name} token in [0, {vocab}), received {token}")


def _steps(max_len: int) -> jax.Array:
    """The step counter, int32 like every integer in the carries: `jnp.arange` alone gives int64
    under `jax_enable_x64`, and `t + 1` would then change a carry's dtype inside `lax.scan`."""
    return jnp.arange(max_len, dtype=jnp.int32)


def _batch_size(carry: Any) -> int:
    return jax.tree.leaves(carry)[0].shape[0]


def greedy(decoder: Decoder, params: DecoderParams, carry: Any, memory: Memory | None,
           max_len: int, *, bos: int = BOS, eos: int = EOS, pad: int = PAD) -> Decoded:
    """The most probable token at each step: `carry` (batch leading) -> `Decoded`."""
    _check(decoder, params, memory, max_len, bos, eos, pad)
    batch = _batch_size(carry)
    if decoder.cell.prepare is not None:  # the per-sequence part of the step, once
        params = params._replace(cell=decoder.cell.prepare(params.cell, (batch,)))
    source = 0 if memory is None else memory.mask.shape[1]

    def body(state, t):
        carry, previous, done, score = state
        carry, logits, weights = decoder_lib.step(decoder, params, memory, carry, previous)
        log_p = jax.nn.log_softmax(logits)
        token = jnp.where(done, pad, jnp.argmax(logits, axis=-1)).astype(jnp.int32)
        score = score + jnp.where(done, 0.0, jnp.take_along_axis(log_p, token[:, None], 1)[:, 0])
        weights = jnp.zeros((batch, source), logits.dtype) if weights is None else weights
        out = (token, jnp.where(done[:, None], 0.0, weights))
        return (carry, token, done | (token == eos), score), out

    dtype = params.readout.V.dtype
    state = (carry, jnp.full((batch,), bos, jnp.int32), jnp.zeros((batch,), bool),
             jnp.zeros((batch,), dtype))
    (_, _, done, score), (tokens, weights) = jax.lax.scan(body, state, _steps(max_len))
    tokens = jnp.swapaxes(tokens, 0, 1)
    return Decoded(tokens, lengths_of(tokens, eos), score,
                   None if memory is None else jnp.swapaxes(weights, 0, 1))


def lengths_of(tokens: jax.Array, eos: int = EOS) -> jax.Array:
    """`[batch, steps]` -> `[batch]`: position of the first EOS + 1, or steps without one."""
    is_eos = tokens == eos
    first = jnp.argmax(is_eos, axis=1)
    return jnp.where(jnp.any(is_eos, axis=1), first + 1, tokens.shape[1]).astype(jnp.int32)


def length_penalty(lengths: jax.Array, alpha: float) -> jax.Array:
    """Wu et al. 2016, eq. 14: `((5 + n) / 6) ** alpha`."""
    return ((5.0 + lengths) / 6.0) ** alpha


def _tile(tree: Any, k: int) -> Any:
    """Every leaf `[batch, ...] -> [batch * k, ...]`, each row repeated k times."""
    return jax.tree.map(lambda a: jnp.repeat(a, k, axis=0), tree)


def beam_search(decoder: Decoder, params: DecoderParams, carry: Any, memory: Memory | None,
                max_len: int, beam_width: int, *, alpha: float = 0.6, bos: int = BOS,
                eos: int = EOS, pad: int = PAD) -> Decoded:
    """Beam search of width `beam_width` (module docstring): `carry` -> `Decoded` (no weights)."""
    _check(decoder, params, memory, max_len, bos, eos, pad)
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"expected beam_width an int >= 1, received {beam_width!r}")
    batch, k, vocab = _batch_size(carry), beam_width, decoder_lib.vocab_size(params)
    if decoder.cell.prepare is not None:
        params = params._replace(cell=decoder.cell.prepare(params.cell, (batch * k,)))
    carry, memory = _tile(carry, k), _tile(memory, k)
    dtype = params.readout.V.dtype
    only_pad = jnp.where(jnp.arange(vocab) == pad, 0.0, -jnp.inf).astype(dtype)  # [vocab]
    rows = jnp.arange(batch)[:, None]

    def body(state, t):
        carry, tokens, previous, score, done, length = state
        carry, logits, _ = decoder_lib.step(decoder, params, memory, carry, previous.reshape(-1))
        log_p = jax.nn.log_softmax(logits).reshape(batch, k, vocab)
        log_p = jnp.where(done[..., None], only_pad, log_p)  # finished: PAD at no cost
        candidates = (score[..., None] + log_p).reshape(batch, k * vocab)
        score, index = jax.lax.top_k(candidates, k)  # [batch, k]
        parent, token = index // vocab, (index % vocab).astype(jnp.int32)  # top_k: int32
        carry = jax.tree.map(lambda a: a.reshape(batch, k, *a.shape[1:])[rows, parent]
                             .reshape(a.shape), carry)
        tokens = tokens[rows, parent].at[:, :, t].set(token)
        was_done = done[rows, parent]
        length = jnp.where(was_done, length[rows, parent], t + 1)
        return (carry, tokens, token, score, was_done | (token == eos), length), None

    score = jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf).astype(dtype)  # one live beam at first
    state = (carry, jnp.full((batch, k, max_len), pad, jnp.int32),
             jnp.full((batch, k), bos, jnp.int32), jnp.broadcast_to(score, (batch, k)),
             jnp.zeros((batch, k), bool), jnp.zeros((batch, k), jnp.int32))
    (_, tokens, _, score, _, length), _ = jax.lax.scan(body, state, _steps(max_len))
    best = jnp.argmax(score / length_penalty(length.astype(dtype), alpha), axis=1)  # [batch]
    pick = lambda a: jnp.take_along_axis(a, best.reshape((batch,) + (1,) * (a.ndim - 1)),
                                         axis=1)[:, 0]  # noqa: E731
    return Decoded(pick(tokens), pick(length), pick(score), None)


def accuracy(decoded: Decoded, targets: jax.Array, target_lengths: jax.Array) -> dict:
    """Exact match (every target token, EOS included, and nothing after it) and per-token
    accuracy over the valid target positions. `targets [batch, steps]`, steps <= max_len;
    traced `target_lengths` are clamped to [0, steps] (`rnn_jax.sequence`'s policy)."""
    steps, max_len = targets.shape[1], decoded.tokens.shape[1]
    target_lengths = jnp.asarray(target_lengths)
    if steps > max_len:
        raise ValueError(f"expected targets no longer than the decode length {max_len}, "
                         f"received {steps} steps")
    if not isinstance(target_lengths, jax.core.Tracer) and target_lengths.size:
        longest = int(np.asarray(target_lengths).max())
        if longest > max_len:
            raise ValueError(f"expected target lengths <= the decode length {max_len}, "
                             f"received {longest}")
    target_lengths = sequence.clamp_lengths(target_lengths, steps)  # traced: the policy
    tokens = decoded.tokens[:, :steps]
    mask = jnp.arange(steps)[None, :] < target_lengths[:, None]
    right = (tokens == targets) & mask
    exact = (jnp.sum(right, axis=1) == target_lengths) & (decoded.lengths == target_lengths)
    return {"exact_match": jnp.mean(exact),
            "token_accuracy": jnp.sum(right) / jnp.maximum(jnp.sum(mask), 1)}
