"""The sequence-to-sequence lessons: how the decoder is fed in training (teacher forcing, free
running, scheduled sampling; `--decoder_training`) and beam search against greedy decoding
(`--beam_widths`), each against an independent reference (a Python loop, closed forms)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.seq2seq import beam as seq2seq_beam
from experiments.seq2seq import decoder_training
from experiments.seq2seq import experiment as seq2seq
from rnn_jax.cells import get_cell
from rnn_jax.data import translation
from rnn_jax.seq2seq import Decoder, Encoder, Seq2Seq, decode, decoder, model
from tests.figures import assert_figure


@pytest.mark.parametrize("argv,message", [
    (["--decoder_training=student"],
     "--decoder_training: expected one of teacher, free, scheduled, received 'student'"),
    (["--decoder_training=scheduled", "--sampling_schedule=exponential", "--sampling_k=2"],
     "--sampling_k: expected 0 < k < 1 for --sampling_schedule=exponential, received 2.0"),
    (["--decoder_training=scheduled", "--sampling_k=0.5"],
     "--sampling_k: expected k >= 1 for --sampling_schedule=inverse_sigmoid, received 0.5"),
    (["--decoder_training=scheduled", "--sampling_schedule=linear", "--sampling_k=0"],
     "--sampling_k: expected k > 0 for --sampling_schedule=linear, received 0.0"),
    (["--decoder_training=scheduled", "--sampling_min=1.5"],
     r"--sampling_min: expected a probability in \[0, 1\], received 1.5"),
    (["--beam_widths=0,2"], r"--beam_widths: expected distinct beam widths >= 1, e.g. 1,2,4,8, "
                            r"received \(0, 2\)"),
    (["--beam_widths=2,2"], r"--beam_widths: expected distinct beam widths >= 1"),
    (["--beam_widths=1,2", "--checkpoint_every=0"],
     "--checkpoint_every: expected a positive interval with --beam_widths"),
    (["--beam_widths=2", "--beam_alpha=-1"], "--beam_alpha: expected a value >= 0"),
])
def test_bad_flags_are_one_line_errors_before_anything_is_written(tmp_path, argv, message):
    with pytest.raises(template.FlagError, match=message) as error:
        driver.call(seq2seq.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])
    assert "\n" not in str(error.value)
    assert not (tmp_path / "seq2seq").exists()


def test_schedules_are_the_papers_closed_forms():
    for i in (0, 1, 10, 250, 2000):
        linear = decoder.teacher_forcing_probability("linear", i, 500.0, 0.1)
        exponential = decoder.teacher_forcing_probability("exponential", i, 0.99)
        sigmoid = decoder.teacher_forcing_probability("inverse_sigmoid", i, 200.0)
        assert float(linear) == pytest.approx(max(0.1, 1 - i / 500), abs=1e-6)
        assert float(exponential) == pytest.approx(0.99 ** i, rel=1e-5)
        assert float(sigmoid) == pytest.approx(200 / (200 + math.exp(i / 200)), rel=1e-5)
    # under jit (a traced update), and far past exp's float32 range
    assert float(jax.jit(lambda i: decoder.teacher_forcing_probability(
        "inverse_sigmoid", i, 1.0))(10_000)) == pytest.approx(0.0, abs=1e-30)
    with pytest.raises(ValueError, match="expected schedule in"):
        decoder.teacher_forcing_probability("cosine", 0, 1.0)
    with pytest.raises(ValueError, match="received k=2.0"):
        decoder.teacher_forcing_probability("exponential", 0, 2.0)


def _model(attention: str):
    net = Seq2Seq(Encoder(get_cell("gru")), Decoder(get_cell("gru"), attention))
    params = model.init(jax.random.key(1), net, translation.VOCAB_SIZE, embed_size=6,
                        hidden_size=10)
    batch = translation.sample("reversal", jax.random.key(2), 5, 2, 7)
    return net, params, batch


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_free_running_feeds_back_the_argmax_as_a_python_loop_does(attention):
    net, params, batch = _model(attention)
    inputs = decoder.shift_right(batch.target)
    logits, _ = model.forward_scheduled(net, params, batch.source, batch.source_lengths, inputs,
                                        None, jax.random.key(3), 1.0, sample=False)
    carry, memory = model.start(net, params, batch.source, batch.source_lengths)
    token, expected = jnp.full((5,), decoder.BOS), []
    for _ in range(inputs.shape[1]):  # the reference: a plain loop over decoder.step
        carry, step_logits, _ = decoder.step(net.decoder, params.decoder, memory, carry, token)
        expected.append(step_logits)
        token = jnp.argmax(step_logits, axis=-1)
    np.testing.assert_allclose(logits, jnp.stack(expected, 1), atol=1e-5)
    teacher, _ = model.forward(net, params, batch.source, batch.source_lengths, inputs)
    assert not np.allclose(logits, teacher, atol=1e-3)  # the feeding mattered


def _config(**fields):
    return dataclasses.replace(seq2seq.Config(), hidden=10, embed=6, batch=5, **fields)


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_scheduled_sampling_at_probability_0_and_1_is_teacher_forcing_and_free_running(
        attention):
    net, params, batch = _model(attention)
    updates, key = jnp.full((5,), 7, jnp.int32), jax.random.key(4)

    def loss(**fields):
        config = _config(attention=attention, **fields)
        assert config.validate() is None
        return float(decoder_training.training_loss(config, net, params, batch, updates, key)[0])

    teacher, free = loss(decoder_training="teacher"), loss(decoder_training="free")
    assert teacher != pytest.approx(free, rel=1e-3)
    # linear eps_i = max(min, 1 - i / k): k = 1e9 keeps eps at 1, k = 1 takes it to 0 by i = 7
    never = dict(decoder_training="scheduled", sampling_schedule="linear", sampling_k=1e9)
    always = dict(decoder_training="scheduled", sampling_schedule="linear", sampling_k=1.0,
                  sampling_draw="argmax")
    assert loss(**never) == pytest.approx(teacher, rel=1e-5)
    assert loss(**always) == pytest.approx(free, rel=1e-5)
    assert loss(**{**always, "sampling_draw": "sample"}) != pytest.approx(free, rel=1e-3)
    assert decoder_training.model_token_probability(_config(), 7) is None
    assert float(decoder_training.model_token_probability(
        _config(decoder_training="free"), 7)) == 1.0


@pytest.mark.parametrize("attention", ["none", "additive"])
def test_beam_of_width_one_is_greedy(attention):
    net, params, batch = _model(attention)
    carry, memory = model.start(net, params, batch.source, batch.source_lengths)
    greedy = decode.greedy(net.decoder, params.decoder, carry, memory, 9)
    beam = decode.beam_search(net.decoder, params.decoder, carry, memory, 9, 1)
    np.testing.assert_array_equal(beam.tokens, greedy.tokens)
    np.testing.assert_array_equal(beam.lengths, greedy.lengths)
    np.testing.assert_allclose(beam.scores, greedy.scores, rtol=1e-5)
    wide = decode.beam_search(net.decoder, params.decoder, carry, memory, 9, 4, alpha=0.0)
    assert np.all(np.asarray(wide.scores) >= np.asarray(greedy.scores) - 1e-5)


def test_reference_log_likelihood_is_the_loss_times_the_tokens():
    net, params, batch = _model("additive")
    loss, _ = model.loss_and_metrics(net, params, *batch)
    total = seq2seq_beam.reference_log_likelihood(net, params, batch)
    assert float(-jnp.sum(total) / jnp.sum(batch.target_lengths)) == pytest.approx(
        float(loss), rel=1e-5)


@pytest.mark.slow
def test_quick_run_with_scheduled_sampling_and_beams(tmp_path):
    summary = driver.call(seq2seq.EXPERIMENT, [
        "--quick", "--seeds=2", "--decoder_training=scheduled", "--sampling_k=5",
        "--beam_widths=1,2", f"--out_dir={tmp_path}"])
    (run_dir,) = (tmp_path / "seq2seq").iterdir()
    assert (run_dir / "beam.md").exists()
    assert_figure(run_dir / "beam.png")
    greedy = {r["source_length"]: r for r in summary["table"]}
    beam = summary["beam"]
    assert [(r["source_length"], r["beam_width"]) for r in beam] == [
        ("L3", 1), ("L3", 2), ("L6", 1), ("L6", 2)]
    for row in beam:  # width 1 on the greedy evaluation's pairs: the greedy numbers
        if row["beam_width"] == 1:
            assert row["exact_mean"] == pytest.approx(greedy[row["source_length"]]["exact_mean"])
            assert row["token_mean"] == pytest.approx(greedy[row["source_length"]]["token_mean"])
