"""The encoder-decoder library (rnn_jax/seq2seq): decoder against NumPy equations, teacher
forcing against a loop over steps, greedy against a Python argmax loop, beam search against
exhaustive search, padding invariance, attention masks, float64 gradients, retraces."""

import functools
import itertools

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from rnn_jax.cells import get_cell
from rnn_jax.seq2seq import (
    EOS,
    PAD,
    Decoder,
    Encoder,
    Seq2Seq,
    attention,
    beam_search,
    decode,
    decoder,
    greedy,
    model,
)

VOCAB = 7


@functools.lru_cache(maxsize=None)  # init is slow to trace: tests share models
def make(att="additive", enc="lstm", dec="gru", bidirectional=False, layers=1, hidden=6,
         dtype=jnp.float32, key=0):
    m = Seq2Seq(Encoder(get_cell(enc), layers, bidirectional), Decoder(get_cell(dec), att))
    init = lambda k: model.init(k, m, VOCAB, embed_size=4, hidden_size=hidden,  # noqa: E731
                                attention_size=5, dtype=dtype)
    return m, jax.jit(init)(jax.random.key(key))


def batch(key=1, lengths=(5, 2, 3), target_lengths=(4, 1, 3), source=5, steps=4):
    k1, k2 = jax.random.split(jax.random.key(key))
    src = jax.random.randint(k1, (len(lengths), source), 3, VOCAB)
    tgt = jax.random.randint(k2, (len(lengths), steps), 3, VOCAB)
    return src, jnp.array(lengths), tgt, jnp.array(target_lengths)


def numpy_decoder(params, carry, memory_values, source_lengths, inputs):
    """Vanilla tanh decoder with additive attention, written from the equations in NumPy."""
    p = jax.tree.map(np.asarray, params)
    values, h = np.asarray(memory_values), np.asarray(carry)
    logits, weights = [], []
    for t in range(inputs.shape[1]):
        x = p.embedding[np.asarray(inputs)[:, t]]
        h = np.tanh(p.cell.b + h @ p.cell.W + x @ p.cell.U)  # a = b + W s + U x
        out_t, w_t = [], []
        for b in range(h.shape[0]):
            n = int(source_lengths[b])
            e = np.array([p.attention.v @ np.tanh(h[b] @ p.attention.W_q
                                                  + values[b, s] @ p.attention.W_m)
                          for s in range(n)])
            a = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            c = a @ values[b, :n]
            attended = np.tanh(np.concatenate([c, h[b]]) @ p.combine.V + p.combine.c)
            out_t.append(attended @ p.readout.V + p.readout.c)
            w_t.append(np.concatenate([a, np.zeros(values.shape[1] - n)]))
        logits.append(out_t), weights.append(w_t)
    return np.swapaxes(np.array(logits), 0, 1), np.swapaxes(np.array(weights), 0, 1)


def test_decoder_equals_numpy_equations():
    m, params = make("additive", enc="gru", dec="vanilla")
    src, sl, tgt, tl = batch()
    inputs = decoder.shift_right(tgt)

    @jax.jit
    def run(params):
        carry, memory = model.start(m, params, src, sl)
        return carry, memory, decoder.forward(m.decoder, params.decoder, memory, carry, inputs)

    carry, memory, (logits, weights) = run(params)
    ref_logits, ref_weights = numpy_decoder(params.decoder, carry, memory.values, sl, inputs)
    np.testing.assert_allclose(logits, ref_logits, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(weights, ref_weights, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def padded_model():
    """A bidirectional LSTM encoder, LSTM decoder, additive attention (shared: init is slow)."""
    return make("additive", enc="lstm", dec="lstm", bidirectional=True)


def test_bridge_equals_numpy(padded_model):
    m, params = padded_model
    src, sl, _, _ = batch()

    @jax.jit
    def run(params):
        encoded = model._encode(m.encoder, params.encoder, params.source_embedding, src, sl)
        return encoded[1], model.start(m, params, src, sl)[0]

    ((fw, bw),), carry = run(params)
    flat = np.concatenate([fw.h, fw.c, bw.h, bw.c], axis=1)
    z = np.tanh(flat @ np.asarray(params.bridge.V) + np.asarray(params.bridge.c))
    np.testing.assert_allclose(carry.h, z[:, :6], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(carry.c, z[:, 6:], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("att", ["dot", "additive"])
def test_teacher_forcing_and_greedy_equal_python_loops(att):
    m, params = make(att, enc="gru", dec="gru")
    src, sl, tgt, tl = batch()
    inputs = decoder.shift_right(tgt)

    @jax.jit
    def run(params):
        carry, memory = model.start(m, params, src, sl)
        decoded = greedy(m.decoder, params.decoder, carry, memory, 6)
        return carry, memory, model.forward(m, params, src, sl, inputs), decoded.tokens

    carry, memory, (logits, weights), tokens = run(params)
    step = jax.jit(lambda c, x: decoder.step(m.decoder, params.decoder, memory, c, x))
    c = carry
    for t in range(inputs.shape[1]):  # teacher forcing, one step at a time
        c, step_logits, step_weights = step(c, inputs[:, t])
        np.testing.assert_allclose(logits[:, t], step_logits, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(weights[:, t], step_weights, rtol=1e-5, atol=1e-6)
    c, ref_tokens, done = carry, [], np.zeros(3, bool)
    previous = jnp.full((3,), decoder.BOS)
    for t in range(6):  # greedy: argmax fed back, PAD after EOS
        c, step_logits, _ = step(c, previous)
        token = np.where(done, PAD, np.argmax(step_logits, axis=1))
        done |= token == EOS
        ref_tokens.append(token)
        previous = jnp.asarray(token)
    np.testing.assert_array_equal(tokens, np.stack(ref_tokens, 1))


@pytest.mark.parametrize("att", ["none", "dot", "additive"])
def test_beam_width_one_equals_greedy(att):
    m, params = make(att, enc="gru", dec="gru")
    src, sl, _, _ = batch(key=4, lengths=(5, 1, 3, 4), target_lengths=(1, 1, 1, 1))

    @jax.jit
    def run(params):
        carry, memory = model.start(m, params, src, sl)
        return (greedy(m.decoder, params.decoder, carry, memory, 8),
                beam_search(m.decoder, params.decoder, carry, memory, 8, 1))

    g, b = run(params)
    np.testing.assert_array_equal(b.tokens, g.tokens)
    np.testing.assert_array_equal(b.lengths, g.lengths)
    np.testing.assert_allclose(b.scores, g.scores, rtol=1e-5)


def test_wide_beam_equals_exhaustive_search():
    """With more beams than hypotheses, beam search is exhaustive: it returns the sequence of
    best length-normalised log-probability, each scored here by teacher forcing."""
    vocab, max_len, alpha = 4, 3, 0.6
    m = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), "none"))
    params = jax.jit(lambda k: model.init(k, m, vocab, embed_size=3, hidden_size=5))(
        jax.random.key(5))
    # a sharper output layer makes early EOS competitive
    params = params._replace(decoder=params.decoder._replace(readout=params.decoder.readout
                             ._replace(V=3 * params.decoder.readout.V)))
    src, sl = jnp.array([[3, 3, 1], [1, 3, 3]]), jnp.array([3, 2])
    hypotheses = [s for n in range(1, max_len + 1) for s in itertools.product(range(vocab),
                  repeat=n) if (EOS not in s[:-1]) and (s[-1] == EOS or n == max_len)]
    tokens = jnp.array([list(s) + [PAD] * (max_len - len(s)) for s in hypotheses])

    @jax.jit
    def run(params):
        carry, _ = model.start(m, params, src, sl)
        out = beam_search(m.decoder, params.decoder, carry, None, max_len, 64, alpha=alpha)
        tiled = jax.tree.map(lambda a: jnp.repeat(a, len(hypotheses), axis=0), carry)
        logits, _ = decoder.forward(m.decoder, params.decoder, None, tiled,
                                    decoder.shift_right(jnp.tile(tokens, (2, 1))))
        return out, jax.nn.log_softmax(logits).reshape(2, len(hypotheses), max_len, vocab)

    out, log_p = run(params)
    for b in range(2):
        scores = [float(sum(log_p[b, h, t, s[t]] for t in range(len(s))))
                  for h, s in enumerate(hypotheses)]
        values = [score / ((5 + len(s)) / 6) ** alpha for score, s in zip(scores, hypotheses)]
        best = int(np.argmax(values))
        assert tuple(np.asarray(out.tokens[b, :out.lengths[b]])) == hypotheses[best]
        np.testing.assert_allclose(out.scores[b], scores[best], rtol=1e-5)


def test_padding_invariance_of_source_and_target(padded_model):
    m, params = padded_model
    src, sl, tgt, tl = batch()
    junk = jax.random.randint(jax.random.key(9), (3, 4), 0, VOCAB)
    src_pad = jnp.where(jnp.arange(5)[None] < sl[:, None], src, 0)
    longer = jnp.concatenate([jnp.where(jnp.arange(5)[None] < sl[:, None], src, 6), junk], 1)
    mask = np.arange(4)[None] < np.asarray(tl)[:, None]
    tgt_long = jnp.concatenate([jnp.where(mask, tgt, 5), junk[:, :3]], 1)

    @jax.jit
    def run(params, source, target):
        logits, weights = model.forward(m, params, source, sl, decoder.shift_right(target), tl)
        loss, _ = model.loss_and_metrics(m, params, source, sl, target, tl)
        decoded = greedy(m.decoder, params.decoder, *model.start(m, params, source, sl), 6)
        return logits[:, :4], weights[:, :4], loss, decoded.tokens

    logits, weights, loss, tokens = run(params, src_pad, jnp.where(mask, tgt, 0))
    logits2, weights2, loss2, tokens2 = run(params, longer, tgt_long)
    np.testing.assert_allclose(np.asarray(logits)[mask], np.asarray(logits2)[mask], atol=1e-5)
    np.testing.assert_allclose(weights2[..., :5], weights, atol=1e-6)
    assert np.all(np.asarray(weights2)[..., 5:] == 0)
    np.testing.assert_allclose(loss, loss2, rtol=1e-5)  # junk target steps are masked
    np.testing.assert_array_equal(tokens, tokens2)


@pytest.mark.parametrize("kind", ["additive", "dot"])
def test_attention_weights_sum_to_one_over_valid_steps(kind, key):
    k1, k2, k3 = jax.random.split(key, 3)
    params = attention.init(k1, kind, 4, 4, 3)
    values = jax.random.normal(k2, (3, 6, 4))
    lengths = jnp.array([6, 1, 3])
    values = jnp.where(jnp.arange(6)[None, :, None] < lengths[:, None, None], values, 1e4)
    query = jax.random.normal(k3, (3, 2, 4))
    context, weights = attention.attend(kind, params, attention.memory(kind, params, values,
                                                                       lengths), query)
    w = np.asarray(weights)
    for b, n in enumerate([6, 1, 3]):
        np.testing.assert_allclose(w[b, :, :n].sum(-1), 1.0, rtol=1e-6)
        assert np.all(w[b, :, n:] == 0)
        v = np.asarray(values[b, :n])
        for q in range(2):
            if kind == "dot":
                e = v @ np.asarray(query[b, q])
            else:
                e = np.tanh(np.asarray(query[b, q] @ params.W_q) + v @ np.asarray(params.W_m)) \
                    @ np.asarray(params.v)
            ref = np.exp(e - e.max()) / np.exp(e - e.max()).sum()
            np.testing.assert_allclose(w[b, q, :n], ref, rtol=1e-5, atol=1e-7)
            np.testing.assert_allclose(context[b, q], ref @ v, rtol=1e-5, atol=1e-6)


def test_teacher_forced_loss_gradients_float64(x64):
    m, params = make("additive", enc="vanilla", dec="vanilla", hidden=3, dtype=jnp.float64)
    assert params.decoder.readout.V.dtype == jnp.float64
    src, sl, tgt, tl = batch(lengths=(4, 2), target_lengths=(3, 1), source=4, steps=3)
    loss = jax.jit(lambda p: model.loss_and_metrics(m, p, src, sl, tgt, tl)[0])
    check_grads(loss, (params,), order=1, modes=["rev"], atol=1e-6, rtol=1e-6)


def test_decoding_does_not_retrace_per_batch():
    m, params = make("dot", enc="gru", dec="gru")

    @jax.jit
    @chex.assert_max_traces(n=1)
    def translate(params, src, lengths):
        carry, memory = model.start(m, params, src, lengths)
        return (greedy(m.decoder, params.decoder, carry, memory, 6).tokens,
                beam_search(m.decoder, params.decoder, carry, memory, 6, 2).tokens)

    for key in range(3):
        src, sl, _, _ = batch(key=key + 10, lengths=(1 + key, 5, 2))
        translate(params, src, sl)


def test_bad_inputs_name_expected_and_received():
    m, params = make("additive", enc="gru", dec="gru")
    src, sl, tgt, tl = batch()
    carry, memory = jax.eval_shape(lambda p: model.start(m, p, src, sl), params)  # no compute
    with pytest.raises(ValueError, match=r"expected source tokens in \[0, 7\).*max 9"):
        model.start(m, params, src.at[0, 0].set(9), sl)
    with pytest.raises(ValueError, match=r"expected target tokens in \[0, 7\).*max 8"):
        model.loss_and_metrics(m, params, src, sl, tgt.at[1, 0].set(8), tl)
    with pytest.raises(ValueError, match=r"source >= 1, received shape \(3, 0\)"):
        model.start(m, params, src[:, :0], jnp.zeros(3, int))
    with pytest.raises(ValueError, match=r"lengths in \[1, 5\].*received min 0"):
        model.start(m, params, src, sl.at[1].set(0))
    with pytest.raises(ValueError, match=r"target lengths in \[1, 4\].*received min 0"):
        model.loss_and_metrics(m, params, src, sl, tgt, tl.at[0].set(0))
    out = decode.Decoded(jnp.zeros((3, 3), int), jnp.full((3,), 3), jnp.zeros(3), None)
    with pytest.raises(ValueError, match="no longer than the decode length 3, received 4"):
        decode.accuracy(out, tgt, tl)
    with pytest.raises(ValueError, match="beam_width an int >= 1, received 0"):
        beam_search(m.decoder, params.decoder, carry, memory, 3, 0)
    with pytest.raises(ValueError, match="max_len an int >= 1, received 0"):
        greedy(m.decoder, params.decoder, carry, memory, 0)
    with pytest.raises(ValueError, match="expected a Memory, received NoneType"):
        greedy(m.decoder, params.decoder, carry, None, 3)
    with pytest.raises(ValueError, match="encoder outputs' width 12, received 6"):
        make("dot", bidirectional=True)
    with pytest.raises(ValueError, match="decoder outputs of width 6, received 5"):
        attention.attend("additive", params.decoder.attention, memory, jnp.zeros((3, 1, 5)))
    with pytest.raises(ValueError, match="expected attention in .*received 'bahdanau'"):
        make("bahdanau", enc="gru", dec="gru")


def test_scheduled_sampling_ends_are_teacher_forcing_and_greedy():
    """probability 0: the teacher-forced logits; probability 1 with argmax: each step fed the
    previous step's argmax, i.e. greedy decoding's tokens (before EOS)."""
    m, params = make("dot", enc="gru", dec="gru")
    src, sl, tgt, tl = batch()
    inputs = decoder.shift_right(tgt)

    @jax.jit
    def run(params):
        carry, memory = model.start(m, params, src, sl)
        forced = decoder.forward(m.decoder, params.decoder, memory, carry, inputs)[0]
        zero = decoder.forward_scheduled(m.decoder, params.decoder, memory, carry, inputs,
                                         jax.random.key(1), 0.0)[0]
        one = decoder.forward_scheduled(m.decoder, params.decoder, memory, carry, inputs,
                                        jax.random.key(1), 1.0, sample=False)[0]
        return forced, zero, one, greedy(m.decoder, params.decoder, carry, memory, 4).tokens

    forced, zero, one, tokens = run(params)
    np.testing.assert_allclose(zero, forced, rtol=1e-5, atol=1e-6)
    fed = np.asarray(jnp.argmax(one, axis=-1))
    for b in range(3):
        n = int(decode.lengths_of(tokens[b:b + 1])[0])
        np.testing.assert_array_equal(fed[b, :n], np.asarray(tokens[b, :n]))
