"""The decoder: any cell over target tokens, optionally attending to a memory, then a readout.

One step, from the previous token y(t-1) and carry (Luong et al. 2015, Sec. 3, without input
feeding, so the recurrence does not depend on the attention and teacher forcing is one
`unroll` plus attention over all steps at once):

    carry(t), h(t) = cell.step(carry(t-1), U E[y(t-1)] + b)
    c(t), a(t)     = attend(h(t), memory)                      (attention.py; skipped for "none")
    h~(t)          = tanh(W_c [c(t); h(t)] + b_c)               (Luong eq. 5; h~ = h for "none")
    o(t)           = V h~(t) + c_o,   p(y(t) | y(<t), source) = softmax(o(t))

The decoder knows nothing of the encoder: it takes an initial carry (an encoded source, an
image's features, ...) and, with attention, a `Memory`. So it serves sequence-to-sequence
models (`model.py`) and one-to-many generation (captioning) alike; `decode.py` searches it.

Token ids: `PAD`, `BOS`, `EOS` below are the defaults everywhere (a vocabulary puts them first).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import readout, sequence
from rnn_jax.cells.base import Cell
from rnn_jax.seq2seq import attention
from rnn_jax.unroll import output_size, unroll

PAD, BOS, EOS = 0, 1, 2


class Decoder(NamedTuple):
    """The decoder's structure (no arrays): its cell and its attention kind."""

    cell: Cell
    attention: str = "none"  # one of attention.KINDS


class DecoderParams(NamedTuple):
    embedding: jax.Array  # E: [vocab, embed]
    cell: Any  # the cell's params (inputs: embed)
    attention: attention.AdditiveParams | None  # additive only
    combine: readout.LinearParams | None  # W_c: [memory + hidden, hidden]; None without attention
    readout: readout.LinearParams  # V: [hidden, vocab]


def init(key: jax.Array, decoder: Decoder, vocab_size: int, embed_size: int, hidden_size: int,
         *, memory_size: int | None = None, attention_size: int | None = None,
         dtype=jnp.float32, **cell_options) -> DecoderParams:
    """Normal(0, 1/embed) embedding, the cell's own init, Glorot attention/combine/readout.

    `memory_size` (the encoder outputs' width) is required with attention; "dot" needs it
    equal to the cell's output width (a ValueError names both).
    """
    attention.check_kind(decoder.attention)
    keys = jax.random.split(key, 5)
    cell_params = decoder.cell.init(keys[1], embed_size, hidden_size, dtype=dtype, **cell_options)
    width = output_size(decoder.cell, cell_params)
    att = combine = None
    if decoder.attention != "none":
        if memory_size is None:
            raise ValueError(f"attention {decoder.attention!r}: expected memory_size (the "
                             f"encoder outputs' width), received None")
        att = attention.init(keys[2], decoder.attention, width, memory_size, attention_size,
                             dtype=dtype)
        combine = readout.init_linear(keys[3], memory_size + width, width, dtype=dtype)
    embedding = init_embedding(keys[0], vocab_size, embed_size, dtype)
    return DecoderParams(embedding, cell_params, att, combine,
                         readout.init_linear(keys[4], width, vocab_size, dtype=dtype))


def init_embedding(key: jax.Array, vocab_size: int, embed_size: int, dtype=jnp.float32
                   ) -> jax.Array:
    """Normal(0, 1/embed) `[vocab, embed]` of exactly `dtype` (the scale is cast first, so a
    Python/NumPy float64 never promotes float32 under `jax_enable_x64`)."""
    scale = jnp.asarray(1.0 / np.sqrt(embed_size), dtype)
    return jax.random.normal(key, (vocab_size, embed_size), dtype) * scale


def vocab_size(params: DecoderParams) -> int:
    return params.embedding.shape[0]


def check_tokens(tokens: jax.Array, size: int, what: str) -> None:
    """A ValueError unless `tokens` are integers in [0, size) (values checked when concrete;
    under `jit` an id outside reads NaN: `rnn_jax.sequence`'s traced-value policy)."""
    sequence.check_tokens(tokens, size, f"{what} tokens")


def check_memory(decoder: Decoder, memory: attention.Memory | None) -> None:
    if (decoder.attention == "none") != (memory is None):
        raise ValueError(f"attention {decoder.attention!r}: expected "
                         f"{'no memory' if decoder.attention == 'none' else 'a Memory'}, "
                         f"received {type(memory).__name__}")


def outputs(decoder: Decoder, params: DecoderParams, memory: attention.Memory | None,
            hs: jax.Array) -> tuple[jax.Array, jax.Array | None]:
    """Cell outputs `hs [batch, steps, hidden]` -> `(logits [batch, steps, vocab], attention
    weights [batch, steps, source] or None)`."""
    if decoder.attention == "none":
        return readout.linear(params.readout, hs), None
    context, weights = attention.attend(decoder.attention, params.attention, memory, hs)
    attended = jnp.tanh(readout.linear(params.combine, jnp.concatenate([context, hs], -1)))
    return readout.linear(params.readout, attended), weights


def step(decoder: Decoder, params: DecoderParams, memory: attention.Memory | None, carry: Any,
         tokens: jax.Array) -> tuple[Any, jax.Array, jax.Array | None]:
    """One decoder step from the previous tokens `[batch]`: `(carry, logits [batch, vocab],
    weights [batch, source] or None)`."""
    xs = sequence.take_tokens(params.embedding, tokens)
    x_proj = decoder.cell.project_inputs(params.cell, xs)
    carry, h = decoder.cell.step(params.cell, carry, x_proj)
    logits, weights = outputs(decoder, params, memory, h[:, None])
    return carry, logits[:, 0], None if weights is None else weights[:, 0]


def forward(decoder: Decoder, params: DecoderParams, memory: attention.Memory | None,
            carry: Any, inputs: jax.Array, lengths: jax.Array | None = None
            ) -> tuple[jax.Array, jax.Array | None]:
    """Teacher forcing: the decoder fed the true previous tokens.

    Args:
      carry: initial carry (batch leading), e.g. `model.bridge` of an encoded source.
      inputs: `[batch, steps]` previous tokens: BOS, y(1), ..., y(n-1) (`shift_right`).
      lengths: `[batch]` valid steps (the targets' lengths, EOS included); None: all.
    Returns:
      `(logits [batch, steps, vocab], weights [batch, steps, source] or None)`; steps past
      `lengths` are padding (their logits carry no meaning; mask them in the loss).
    """
    check_memory(decoder, memory)
    check_tokens(inputs, vocab_size(params), "target")
    if inputs.ndim != 2 or inputs.shape[1] == 0:
        raise ValueError(f"expected target inputs [batch, steps] with steps >= 1, received "
                         f"shape {inputs.shape}")
    xs = sequence.take_tokens(params.embedding, inputs)
    hs, _ = unroll(decoder.cell, params.cell, xs, carry=carry, lengths=lengths)
    return outputs(decoder, params, memory, hs)


def forward_scheduled(decoder: Decoder, params: DecoderParams, memory: attention.Memory | None,
                      carry: Any, inputs: jax.Array, key: jax.Array, probability: jax.Array,
                      lengths: jax.Array | None = None, *, sample: bool = True
                      ) -> tuple[jax.Array, jax.Array | None]:
    """Scheduled sampling (Bengio et al. 2015): `forward`, except that at each step t >= 1 the
    input is, with `probability`, the model's own token of step t-1 (drawn from its softmax;
    its argmax with `sample=False`) instead of the true one. probability 0 is teacher forcing.

    One `lax.scan` over the steps (a step's input depends on the previous step's output), so
    it costs what greedy decoding costs; no gradient flows through the drawn tokens.
    Args and returns as `forward`, plus `key` (the draws) and `probability` (a scalar in [0, 1],
    e.g. a schedule's value at the current update).
    """
    check_memory(decoder, memory)
    check_tokens(inputs, vocab_size(params), "target")
    if inputs.ndim != 2 or inputs.shape[1] == 0:
        raise ValueError(f"expected target inputs [batch, steps] with steps >= 1, received "
                         f"shape {inputs.shape}")
    batch, steps = inputs.shape
    valid = (jnp.ones((batch, steps), bool) if lengths is None
             else jnp.arange(steps)[None, :] < lengths[:, None])
    keys = jax.random.split(key, 2 * steps).reshape(steps, 2)

    def body(state, per_step):
        carry, previous = state
        true_token, step_valid, (key_use, key_draw), t = per_step
        use_model = (t > 0) & (jax.random.uniform(key_use, (batch,)) < probability)
        new_carry, logits, weights = step(decoder, params, memory, carry,
                                          jnp.where(use_model, previous, true_token))
        drawn = (jax.random.categorical(key_draw, logits) if sample
                 else jnp.argmax(logits, axis=-1)).astype(inputs.dtype)
        carry = jax.tree.map(lambda new, old: jnp.where(
            step_valid.reshape((batch,) + (1,) * (new.ndim - 1)), new, old), new_carry, carry)
        weights = jnp.zeros((batch, 0), logits.dtype) if weights is None else weights
        return (carry, jax.lax.stop_gradient(drawn)), (logits, weights)

    per_step = (inputs.T, valid.T, keys, jnp.arange(steps))
    _, (logits, weights) = jax.lax.scan(body, (carry, inputs[:, 0]), per_step)
    weights = None if memory is None else jnp.swapaxes(weights, 0, 1)
    return jnp.swapaxes(logits, 0, 1), weights


SCHEDULES = ("linear", "exponential", "inverse_sigmoid")


def teacher_forcing_probability(schedule: str, update: jax.Array, k: float,
                                minimum: float = 0.0) -> jax.Array:
    """Scheduled sampling's decay (Bengio et al. 2015, Sec. 2.4): the probability eps_i of
    feeding the true previous token at update i (`forward_scheduled` takes 1 - eps_i),

        linear            eps_i = max(minimum, 1 - i / k)      k > 0: updates to reach 0
        exponential       eps_i = max(minimum, k ** i)         0 < k < 1
        inverse_sigmoid   eps_i = max(minimum, k / (k + exp(i / k)))   k >= 1

    (the paper's linear max(eps, k - c i) with its k = 1, c = 1 / k here). `update` may be
    traced; a float32 scalar comes back.
    """
    valid = {"linear": k > 0, "exponential": 0 < k < 1, "inverse_sigmoid": k >= 1}
    if schedule not in valid:
        raise ValueError(f"expected schedule in {SCHEDULES}, received {schedule!r}")
    if not valid[schedule] or not 0 <= minimum <= 1:
        raise ValueError(f"{schedule}: expected k > 0 (linear), 0 < k < 1 (exponential) or "
                         f"k >= 1 (inverse_sigmoid) and minimum in [0, 1], received k={k!r}, "
                         f"minimum={minimum!r}")
    i = jnp.asarray(update, jnp.float32)
    if schedule == "linear":
        eps = 1.0 - i / k
    elif schedule == "exponential":
        eps = jnp.power(jnp.float32(k), i)
    else:
        eps = k / (k + jnp.exp(jnp.minimum(i / k, 80.0)))  # exp(80) is finite in float32
    return jnp.clip(eps, minimum, 1.0).astype(jnp.float32)


def shift_right(targets: jax.Array, bos: int = BOS) -> jax.Array:
    """Decoder inputs from targets: `[y1, ..., yn, EOS, PAD..] -> [BOS, y1, ..., yn, EOS..]`
    (`[batch, steps]`, same shape)."""
    start = jnp.full(targets.shape[:1] + (1,), bos, targets.dtype)
    return jnp.concatenate([start, targets[:, :-1]], axis=1)
