"""Encoder-decoder models: attention (`attention.py`), the decoder and teacher forcing
(`decoder.py`), the encoder, bridge and loss (`model.py`), greedy and beam search (`decode.py`).

    from rnn_jax.seq2seq import Decoder, Encoder, Seq2Seq, decode, model
"""

from rnn_jax.seq2seq import attention, decode, decoder, model
from rnn_jax.seq2seq.decode import Decoded, beam_search, greedy
from rnn_jax.seq2seq.decoder import BOS, EOS, PAD, Decoder, DecoderParams, shift_right
from rnn_jax.seq2seq.model import Encoder, Seq2Seq, Seq2SeqParams

__all__ = [
    "BOS", "EOS", "PAD", "Decoded", "Decoder", "DecoderParams", "Encoder", "Seq2Seq",
    "Seq2SeqParams", "attention", "beam_search", "decode", "decoder", "greedy", "model",
    "shift_right",
]
