"""experiments.captioning: --quick end to end (table, samples from the checkpoint), the image
encoder against its equation, the held-out metrics against a Python-loop greedy decoder, the
caption vocabulary, and bad flags before any compile."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.captioning import experiment as captioning
from experiments.harness import driver, template
from rnn_jax import training
from rnn_jax.cells import CELLS, get_cell
from rnn_jax.seq2seq import decoder as decoder_lib

pytest.importorskip("sklearn")


def quick(tmp_path, *argv):
    return driver.call(captioning.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def test_captions_spell_the_names_then_eos_then_padding():
    tokens, lengths = captioning.captions()
    assert tokens.shape == (10, 6) and lengths.tolist() == [5, 4, 4, 6, 5, 5, 4, 6, 6, 5]
    for digit, name in enumerate(["zero", "one", "two", "three", "four", "five", "six", "seven",
                                  "eight", "nine"]):
        assert [captioning.VOCAB[t] for t in tokens[digit, :len(name)]] == list(name)
        assert tokens[digit, len(name)] == decoder_lib.EOS
        assert (tokens[digit, len(name) + 1:] == decoder_lib.PAD).all()
        assert captioning.text(tokens[digit]) == name


def test_the_image_encoder_is_tanh_of_an_affine_map_split_into_the_carry(key):
    config = captioning.Config(cell="lstm", hidden=5)  # a carry of two leaves, (h, c)
    params = captioning.init(key, config, 64)
    images = jax.random.uniform(jax.random.fold_in(key, 1), (3, 64))
    carry = captioning.start(config, params, images)
    expected = np.tanh(np.asarray(images) @ np.asarray(params.bridge.V)
                       + np.asarray(params.bridge.c))
    got = np.concatenate([np.asarray(leaf) for leaf in jax.tree.leaves(carry)], -1)
    assert got.shape == (3, 10)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def python_greedy(config, params, images):
    """One decoder step at a time in Python, argmax, stop at EOS: the captions as strings."""
    decoder = captioning.structure(config).decoder
    step = jax.jit(lambda carry, tokens: decoder_lib.step(decoder, params.decoder, None, carry,
                                                          tokens))
    carry = captioning.start(config, params, images)
    tokens = jnp.full((images.shape[0],), decoder_lib.BOS, jnp.int32)
    out = [[] for _ in range(images.shape[0])]
    done = [False] * images.shape[0]
    for _ in range(captioning.MAX_LEN):
        carry, logits, _ = step(carry, tokens)
        tokens = jnp.argmax(logits, -1).astype(jnp.int32)
        for b, token in enumerate(np.asarray(tokens).tolist()):
            if not done[b]:
                done[b] = token == decoder_lib.EOS
                out[b] += [] if done[b] else [captioning.VOCAB[token]]
    return ["".join(letters) if finished else None for letters, finished in zip(out, done)]


def test_held_out_metrics_equal_a_python_greedy_loop(key):
    """At init, and after nudging the readout towards each test image's first letters, the
    exact match and valid-name rates match a Python loop's captions compared as strings."""
    config = captioning.Config(hidden=6, test_fraction=0.05)
    task = captioning.task(config)
    _, _, test_x, test_y = captioning.data(config)
    params = captioning.init(key, config, 64)
    evaluate = jax.jit(task.evaluate)
    eos_bias = params.decoder.readout.c.at[decoder_lib.EOS].add(2.0)  # some short captions
    for candidate in (params, params._replace(decoder=params.decoder._replace(
            readout=params.decoder.readout._replace(c=eos_bias)))):
        got = evaluate(candidate, key)
        captions = python_greedy(config, candidate, test_x)
        names = [captioning.NAMES[y] for y in np.asarray(test_y)]
        assert float(got["test_exact_match"]) == pytest.approx(
            np.mean([c == n for c, n in zip(captions, names)]))
        assert float(got["test_valid_name"]) == pytest.approx(
            np.mean([c in captioning.NAMES for c in captions]))


@pytest.mark.slow  # an end-to-end experiment run
def test_quick_run_reports_accuracy_and_samples(tmp_path):
    summary = quick(tmp_path, f"--figures_dir={tmp_path / 'fig'}")
    (row,) = summary["table"]
    assert row["cell"] == "gru" and row["members"] == 1
    assert 0 <= row["test_exact_match_mean"] <= row["test_valid_name_mean"]  # exact: a name
    (line,) = summary["samples"]
    shown = line.split(": ", 1)[1].split(", ")
    assert len(shown) == captioning.SAMPLES
    assert all(pair.split("->")[0] in captioning.NAMES for pair in shown)
    run_dir = tmp_path / "captioning" / "quick_gru_hidden8_seed0"
    assert (run_dir / "samples.md").read_text().startswith("gru, seed 0: ")
    assert (tmp_path / "fig" / f"captioning_{run_dir.name}_population_samples.png").exists()
    assert (tmp_path / "fig" / f"captioning_{run_dir.name}_curves.png").exists()


@pytest.mark.parametrize("cell", [c for c in captioning.CELL_CHOICES if c != "gru"])
def test_every_offered_cell_runs_quick(cell, tmp_path):
    """Each --cell choice trains, decodes and reports (gru: the test above)."""
    (row,) = quick(tmp_path, f"--cell={cell}", "--checkpoint_every=0")["table"]
    assert row["cell"] == cell and 0 <= row["test_exact_match_mean"] <= 1


def test_offered_cells_are_exactly_the_real_carry_cells(key):
    """The cells left out of --cell are those whose carry is complex (the real bridge cannot
    start them); every other registered cell is offered."""
    for name in CELLS:
        cell = get_cell(name)
        params = jax.eval_shape(lambda k: cell.init(k, 3, 4), key)
        carry = jax.eval_shape(lambda p: cell.initial_carry(p, (2,)), params)
        real = not any(jnp.iscomplexobj(leaf) for leaf in jax.tree.leaves(carry))
        assert (name in captioning.CELL_CHOICES) == real, name


@pytest.mark.parametrize("argv", [["--cell=urnn"], ["--cell=lru"], ["--grid=cell=gru,urnn"]])
def test_complex_carry_cells_are_refused_before_any_compile(argv, monkeypatch, tmp_path):
    monkeypatch.setattr(training, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(template.FlagError, match=r"--(cell|grid): expected one of .*gru.*, "
                                                 r"received .*(urnn|lru)"):
        quick(tmp_path, *argv)
    assert not (tmp_path / "captioning").exists()


@pytest.mark.parametrize("argv, match", [
    (["--beam_width=0"], "--beam_width: expected an integer >= 1, received 0"),
    (["--embed=0"], "--embed: expected an integer >= 1, received 0"),
    (["--test_fraction=0"], r"--test_fraction: expected a value in \(0, 1\), received 0.0"),
])
def test_invalid_flags_fail_before_any_compile(argv, match, monkeypatch, tmp_path):
    monkeypatch.setattr(training, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "captioning").exists()


def test_without_scikit_learn_the_flag_error_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(captioning.digits, "sklearn_available", lambda: False)
    with pytest.raises(template.FlagError, match=r"scikit-learn: expected it installed for the "
                                                 r"8x8 digits \(pip install scikit-learn\)"):
        quick(tmp_path)
