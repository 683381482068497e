"""Decoding under 64-bit floats (issue 26): greedy and beam search run with
`jax_enable_x64` on, for float32 and float64 params, and equal a plain Python loop over
`decoder.step` (greedy) and exhaustive search scored by teacher forcing (beam search);
every init returns exactly the dtype asked for."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax.cells import get_cell
from rnn_jax.seq2seq import EOS, PAD, Decoder, Encoder, Seq2Seq, beam_search, decoder, greedy, model

VOCAB = 5


def _model(att="additive", dtype=jnp.float32, vocab=VOCAB, sharpen=1.0):
    m = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), att))
    params = model.init(jax.random.key(3), m, vocab, embed_size=3, hidden_size=4,
                        attention_size=3, dtype=dtype)
    readout = params.decoder.readout._replace(V=params.decoder.readout.V * sharpen)
    return m, params._replace(decoder=params.decoder._replace(readout=readout))


def _dtypes(tree):
    return {str(leaf.dtype) for leaf in jax.tree.leaves(tree)}


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
@pytest.mark.parametrize("att", ["none", "dot", "additive"])
def test_every_init_returns_the_dtype_asked_for_under_x64(x64, att, dtype):
    _, params = _model(att, dtype)
    assert _dtypes(params) == {jnp.dtype(dtype).name}
    dec = decoder.init(jax.random.key(1), Decoder(get_cell("lstm"), att), VOCAB, 3, 4,
                       memory_size=4, dtype=dtype)
    assert _dtypes(dec) == {jnp.dtype(dtype).name}
    assert decoder.init_embedding(jax.random.key(2), VOCAB, 3, dtype).dtype == dtype


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_greedy_under_x64_equals_a_python_loop(x64, dtype):
    m, params = _model("additive", dtype, sharpen=3.0)
    src, sl = jnp.array([[3, 4, 3], [4, 4, 0]]), jnp.array([3, 2])
    carry, memory = model.start(m, params, src, sl)
    out = jax.jit(lambda c, mem: greedy(m.decoder, params.decoder, c, mem, 5))(carry, memory)
    assert out.tokens.dtype == jnp.int32 and out.lengths.dtype == jnp.int32
    assert out.scores.dtype == dtype and out.weights.dtype == dtype
    c, previous, done = carry, jnp.full((2,), decoder.BOS), np.zeros(2, bool)
    tokens, score = [], np.zeros(2)
    for _ in range(5):  # argmax fed back, PAD after EOS, log-probabilities summed until EOS
        c, logits, _ = decoder.step(m.decoder, params.decoder, memory, c, previous)
        log_p = np.asarray(jax.nn.log_softmax(logits))
        token = np.where(done, PAD, np.argmax(log_p, axis=1))
        score += np.where(done, 0.0, log_p[np.arange(2), token])
        done |= token == EOS
        tokens.append(token)
        previous = jnp.asarray(token)
    np.testing.assert_array_equal(out.tokens, np.stack(tokens, 1))
    np.testing.assert_allclose(out.scores, score, rtol=1e-5)


@pytest.mark.parametrize("dtype", [jnp.float32, jnp.float64])
def test_beam_search_under_x64_equals_exhaustive_search(x64, dtype):
    """More beams than hypotheses: beam search returns the best length-normalised sequence,
    every hypothesis scored here by teacher forcing."""
    vocab, max_len, alpha = 4, 3, 0.6
    m, params = _model("none", dtype, vocab=vocab, sharpen=3.0)
    src, sl = jnp.array([[3, 3, 1], [1, 3, 3]]), jnp.array([3, 2])
    hypotheses = [s for n in range(1, max_len + 1) for s in itertools.product(range(vocab),
                  repeat=n) if (EOS not in s[:-1]) and (s[-1] == EOS or n == max_len)]
    tokens = jnp.array([list(s) + [PAD] * (max_len - len(s)) for s in hypotheses])
    carry, _ = model.start(m, params, src, sl)
    out = jax.jit(lambda c: beam_search(m.decoder, params.decoder, c, None, max_len, 64,
                                        alpha=alpha))(carry)
    assert out.tokens.dtype == jnp.int32 and out.scores.dtype == dtype
    tiled = jax.tree.map(lambda a: jnp.repeat(a, len(hypotheses), axis=0), carry)
    logits, _ = decoder.forward(m.decoder, params.decoder, None, tiled,
                                decoder.shift_right(jnp.tile(tokens, (2, 1))))
    log_p = np.asarray(jax.nn.log_softmax(logits)).reshape(2, len(hypotheses), max_len, vocab)
    for b in range(2):
        scores = [sum(log_p[b, h, t, s[t]] for t in range(len(s)))
                  for h, s in enumerate(hypotheses)]
        values = [score / ((5 + len(s)) / 6) ** alpha for score, s in zip(scores, hypotheses)]
        best = int(np.argmax(values))
        assert tuple(np.asarray(out.tokens[b, :out.lengths[b]])) == hypotheses[best]
        np.testing.assert_allclose(out.scores[b], scores[best], rtol=1e-5)
