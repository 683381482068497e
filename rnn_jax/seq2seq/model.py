"""The encoder-decoder (Sutskever et al. 2014; with attention, Bahdanau et al. 2015): an encoder
RNN reads the source, a learned projection of its final carry starts the decoder
(`decoder.py`), which is trained with teacher forcing and searched by `decode.py`.

    model = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), attention="additive"))
    params = init(key, model, vocab_size, embed_size=16, hidden_size=64)
    logits, weights = forward(model, params, source, source_lengths, shift_right(target),
                              target_lengths)                      # [batch, steps, vocab]
    loss, metrics = loss_and_metrics(model, params, source, source_lengths, target, target_lengths)
    carry, memory = start(model, params, source, source_lengths)   # then decode.greedy / beam

Bridge (Cho et al. 2014's "initialise the decoder from the summary"): every leaf of the
encoder's final carries (all layers, both directions) is concatenated, `tanh(B [..] + b)`,
and split into the leaves of the decoder's carry, so any encoder cell can start any decoder
cell. Sources are `[batch, source]` tokens with `lengths [batch]`; padding never reaches
the outputs (the unroll's masks, the attention's mask).
"""

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax import losses, readout, sequence
from rnn_jax.cells.base import Cell
from rnn_jax.seq2seq import attention
from rnn_jax.seq2seq import decoder as decoder_lib
from rnn_jax.seq2seq.decoder import Decoder, DecoderParams
from rnn_jax.unroll import init_stack, output_size, unroll_stack


class Encoder(NamedTuple):
    """The encoder's structure: a cell, its depth, one or both directions."""

    cell: Cell
    layers: int = 1
    bidirectional: bool = False


class Seq2Seq(NamedTuple):
    encoder: Encoder
    decoder: Decoder


class Seq2SeqParams(NamedTuple):
    source_embedding: jax.Array  # [source vocab, embed]
    encoder: tuple  # per layer: the cell's params (BidirectionalParams when bidirectional)
    bridge: readout.LinearParams  # [sum of encoder carry widths, sum of decoder carry widths]
    decoder: DecoderParams


def init(key: jax.Array, model: Seq2Seq, vocab_size: int, *, embed_size: int, hidden_size: int,
         attention_size: int | None = None, source_vocab_size: int | None = None,
         dtype=jnp.float32) -> Seq2SeqParams:
    """Params of the whole model; `source_vocab_size` defaults to `vocab_size` (one shared
    vocabulary, separate embeddings)."""
    if model.encoder.layers < 1:
        raise ValueError(f"expected encoder layers >= 1, received {model.encoder.layers}")
    key_emb, key_enc, key_bridge, key_dec = jax.random.split(key, 4)
    source_vocab_size = source_vocab_size or vocab_size
    source_embedding = decoder_lib.init_embedding(key_emb, source_vocab_size, embed_size, dtype)
    encoder = init_stack(key_enc, [model.encoder.cell] * model.encoder.layers, embed_size,
                         [hidden_size] * model.encoder.layers,
                         bidirectional=model.encoder.bidirectional, dtype=dtype)
    # the encoder's final carries and output width, read off its params (no unroll traced)
    directions = [(layer.forward, layer.backward) if model.encoder.bidirectional else (layer,)
                  for layer in encoder]
    carries = [model.encoder.cell.initial_carry(p, (1,)) for d in directions for p in d]
    memory_size = len(directions[-1]) * output_size(model.encoder.cell, directions[-1][0])
    dec = decoder_lib.init(key_dec, model.decoder, vocab_size, embed_size, hidden_size,
                           memory_size=memory_size, attention_size=attention_size, dtype=dtype)
    target = model.decoder.cell.initial_carry(dec.cell, (1,))
    bridge = readout.init_linear(key_bridge, _width(carries), _width(target), dtype=dtype)
    return Seq2SeqParams(source_embedding, tuple(encoder), bridge, dec)


def _width(carry: Any) -> int:
    leaves = jax.tree.leaves(carry)
    for leaf in leaves:
        if leaf.ndim != 2 or jnp.issubdtype(leaf.dtype, jnp.complexfloating):
            raise ValueError(f"bridge: expected real carries [batch, width], received "
                             f"{leaf.dtype} {leaf.shape}")
    return sum(leaf.shape[-1] for leaf in leaves)


def _encode(encoder: Encoder, layers, embedding, source, lengths):
    xs = sequence.take_tokens(embedding, source)
    return unroll_stack([encoder.cell] * encoder.layers, layers, xs, lengths=lengths,
                        bidirectional=encoder.bidirectional)


def check_source(params: Seq2SeqParams, source: jax.Array, lengths: jax.Array) -> None:
    """Tokens within the source vocabulary, shapes `[batch, source]` and `[batch]`, and (when
    concrete) every length in [1, source]: an empty source has nothing to translate."""
    if source.ndim != 2 or source.shape[1] == 0:
        raise ValueError(f"expected source tokens [batch, source] with source >= 1, received "
                         f"shape {source.shape}")
    decoder_lib.check_tokens(source, params.source_embedding.shape[0], "source")
    check_lengths(lengths, source.shape, "source")


def check_lengths(lengths: jax.Array, shape: tuple[int, ...], what: str) -> None:
    """`[batch]` ints, concrete ones in [1, steps]; traced ones are clamped to [0, steps] by
    every consumer (`rnn_jax.sequence`'s traced-value policy; 0: an empty sequence)."""
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise ValueError(f"expected integer {what} lengths, received dtype {lengths.dtype}")
    if lengths.shape != shape[:1]:
        raise ValueError(f"expected {what} lengths of shape {shape[:1]}, received {lengths.shape}")
    if not isinstance(lengths, jax.core.Tracer) and lengths.size:
        values = np.asarray(lengths)
        low, high = int(values.min()), int(values.max())
        if low < 1 or high > shape[1]:
            raise ValueError(f"expected {what} lengths in [1, {shape[1]}] (no empty sequences), "
                             f"received min {low} and max {high}")


def start(model: Seq2Seq, params: Seq2SeqParams, source: jax.Array, lengths: jax.Array
          ) -> tuple[Any, attention.Memory | None]:
    """Encodes `source [batch, source]`: `(the decoder's initial carry, its Memory or None)`."""
    lengths = jnp.asarray(lengths)
    check_source(params, source, lengths)
    values, carries = _encode(model.encoder, params.encoder, params.source_embedding, source,
                              lengths)
    carry = bridge(model, params, carries)
    kind = model.decoder.attention
    memory = None if kind == "none" else attention.memory(kind, params.decoder.attention,
                                                          values, lengths)
    return carry, memory


def bridge(model: Seq2Seq, params: Seq2SeqParams, carries: Any) -> Any:
    """The encoder's final carries -> the decoder's initial carry (module docstring)."""
    flat = jnp.concatenate(jax.tree.leaves(carries), axis=-1)
    z = jnp.tanh(readout.linear(params.bridge, flat))
    template = model.decoder.cell.initial_carry(params.decoder.cell, flat.shape[:1])
    leaves, treedef = jax.tree.flatten(template)
    splits = np.cumsum([leaf.shape[-1] for leaf in leaves])[:-1]
    return jax.tree.unflatten(treedef, jnp.split(z, splits, axis=-1))


def forward(model: Seq2Seq, params: Seq2SeqParams, source: jax.Array, source_lengths: jax.Array,
            inputs: jax.Array, target_lengths: jax.Array | None = None
            ) -> tuple[jax.Array, jax.Array | None]:
    """Teacher-forced logits `[batch, steps, vocab]` and attention weights `[batch, steps,
    source]` (None without attention); `inputs` are `decoder.shift_right(targets)`."""
    target_lengths = _check_inputs(params, inputs, target_lengths)
    carry, memory = start(model, params, source, source_lengths)
    return decoder_lib.forward(model.decoder, params.decoder, memory, carry, inputs,
                               target_lengths)


def _check_inputs(params: Seq2SeqParams, inputs: jax.Array, target_lengths: jax.Array | None
                  ) -> jax.Array | None:
    decoder_lib.check_tokens(inputs, decoder_lib.vocab_size(params.decoder), "target")
    if target_lengths is not None:
        target_lengths = jnp.asarray(target_lengths)
        check_lengths(target_lengths, inputs.shape, "target")
    return target_lengths


def forward_scheduled(model: Seq2Seq, params: Seq2SeqParams, source: jax.Array,
                      source_lengths: jax.Array, inputs: jax.Array,
                      target_lengths: jax.Array | None, key: jax.Array, probability: jax.Array,
                      *, sample: bool = True) -> tuple[jax.Array, jax.Array | None]:
    """`forward` with scheduled sampling (`decoder.forward_scheduled`): after the first step
    each input is, with `probability`, the decoder's own previous token (drawn from its
    softmax, or its argmax with `sample=False`). probability 0: teacher forcing; 1 with
    `sample=False`: free running (the decoder fed its own argmax, as greedy decoding is)."""
    target_lengths = _check_inputs(params, inputs, target_lengths)
    carry, memory = start(model, params, source, source_lengths)
    return decoder_lib.forward_scheduled(model.decoder, params.decoder, memory, carry, inputs,
                                         key, probability, target_lengths, sample=sample)


def loss_and_metrics(model: Seq2Seq, params: Seq2SeqParams, source: jax.Array,
                     source_lengths: jax.Array, targets: jax.Array, target_lengths: jax.Array,
                     bos: int = decoder_lib.BOS, *, key: jax.Array | None = None,
                     probability: jax.Array | None = None, sample: bool = True
                     ) -> tuple[jax.Array, dict]:
    """Teacher-forced cross-entropy per valid target token (EOS included), with the
    teacher-forced token accuracy and exact match (every valid token right). With
    `probability` (and its `key`, `sample`) the decoder is fed as `forward_scheduled` feeds
    it, and the metrics are those of that feeding.

    Under `jit` a valid target id outside the vocabulary makes the loss NaN (the decoder reads
    a NaN embedding for it, and as a label it would otherwise select another class):
    `rnn_jax.sequence`'s traced-value policy; eagerly it is a ValueError.
    """
    target_lengths = jnp.asarray(target_lengths)
    vocab = decoder_lib.vocab_size(params.decoder)
    decoder_lib.check_tokens(targets, vocab, "target")  # the last is a label, never an input
    inputs = decoder_lib.shift_right(targets, bos)
    if probability is None:
        logits, _ = forward(model, params, source, source_lengths, inputs, target_lengths)
    else:
        if key is None:
            raise ValueError("scheduled sampling: expected a key with probability, received None")
        logits, _ = forward_scheduled(model, params, source, source_lengths, inputs,
                                      target_lengths, key, probability, sample=sample)
    mask = jnp.arange(targets.shape[1])[None, :] < target_lengths[:, None]
    in_vocab = jnp.all((targets >= 0) & (targets < vocab) | ~mask)
    loss = jnp.where(in_vocab, losses.softmax_cross_entropy(logits, targets, mask), jnp.nan)
    right = (jnp.argmax(logits, axis=-1) == targets) | ~mask
    token = jnp.sum(right & mask) / jnp.maximum(jnp.sum(mask), 1)
    return loss, {"token_accuracy": token, "exact_match": jnp.mean(jnp.all(right, axis=1))}
