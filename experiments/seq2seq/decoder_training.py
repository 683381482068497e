"""What the seq2seq decoder is fed in training (`--decoder_training`): the true previous token
(teacher forcing), its own argmax (free running) or scheduled sampling (Bengio et al. 2015).

Why its own module: one of the page's lessons on decoding, beside beam search (`beam.py`).
"""

import jax
import jax.numpy as jnp

from rnn_jax.data import translation
from rnn_jax.seq2seq import Seq2Seq, model
from rnn_jax.seq2seq import decoder as decoder_lib


def model_token_probability(config, update: jax.Array) -> jax.Array | None:
    """The probability of feeding the decoder its own previous token at `update` (None: teacher
    forcing): 1 for free running, 1 - eps_i for scheduled sampling."""
    if config.decoder_training == "teacher":
        return None
    if config.decoder_training == "free":
        return jnp.float32(1.0)
    return 1.0 - decoder_lib.teacher_forcing_probability(
        config.sampling_schedule, update, config.sampling_k, config.sampling_min)


def training_loss(config, net: Seq2Seq, params, batch: translation.Batch,
                  updates: jax.Array, key: jax.Array) -> tuple[jax.Array, dict]:
    """One member's cross-entropy with the decoder fed as --decoder_training says; `updates
    [batch]` holds the update number (every entry the same)."""
    probability = model_token_probability(config, updates[0])
    sample = config.decoder_training == "scheduled" and config.sampling_draw == "sample"
    loss, metrics = model.loss_and_metrics(net, params, *batch, key=key,
                                           probability=probability, sample=sample)
    if probability is None:
        return loss, {"teacher_forced_token_accuracy": metrics["token_accuracy"]}
    return loss, {"training_token_accuracy": metrics["token_accuracy"],
                  "model_token_probability": probability}
