"""experiments.tagging: --quick end to end over both directions, the equal-parameter rule
against the LSTM's closed-form count, the bidirectional model under padding against two
separate unrolls, and bad flags before any compile."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.tagging import experiment as tagging
from rnn_jax import readout, sequence_model, training
from rnn_jax.cells import get_cell
from rnn_jax.unroll import unroll
from tests.figures import assert_figure


def quick(tmp_path, *argv):
    return driver.call(tagging.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


@pytest.mark.slow  # an end-to-end experiment run
def test_quick_trains_and_reports_the_bidirectional_model(tmp_path):
    summary = quick(tmp_path, f"--figures_dir={tmp_path / 'fig'}")
    (row,) = summary["table"]
    assert row["direction"] == "bi" and row["members"] == 1
    assert row["params"] == lstm_params(6, 4, 2)  # QUICK: 6 symbols, hidden 4
    assert 0 <= row["eval_accuracy_mean"] <= 1
    run_dir = tmp_path / "tagging" / "quick_directionbi_lstm_hidden4_seq_len8_seed0"
    assert (run_dir / "table.md").read_text().startswith("| direction | cell | hidden |")
    assert_figure(tmp_path / "fig" / f"tagging_{run_dir.name}_curves.png")


def lstm_params(num_symbols, hidden, directions):
    """LSTM U [in, 4h], W [h, 4h], b [4h] per direction; readout V [directions*h, 1], c [1]."""
    return directions * 4 * hidden * (num_symbols + hidden + 1) + directions * hidden + 1


@pytest.mark.parametrize("hidden", [4, 16])
def test_matched_unidirectional_size_is_the_closest_parameter_count(hidden):
    config = tagging.Config(direction="uni", hidden=hidden)
    target = lstm_params(config.num_symbols, hidden, 2)
    got = tagging.hidden_of(config)
    best = min(range(1, 200), key=lambda h: abs(lstm_params(config.num_symbols, h, 1) - target))
    assert got == best and tagging.num_params(config, got, False) == lstm_params(
        config.num_symbols, got, 1)
    assert tagging.hidden_of(tagging.Config(direction="uni", hidden=hidden,
                                            match_params=False)) == hidden


def test_bidirectional_model_is_two_unrolls_of_the_unpadded_sequence(key):
    """Valid steps: readout of [forward unroll; reversed unroll of the sequence cut at its
    length]; padded steps emit the readout's bias (zero states), whatever the padding holds."""
    cell = get_cell("gru")
    params = sequence_model.init(key, cell, 3, 5, 2, bidirectional=True)
    xs = jax.random.normal(jax.random.fold_in(key, 1), (2, 7, 3))
    got = sequence_model.apply(cell, params, xs.at[1, 4:].set(jnp.nan), lengths=jnp.array([7, 4]))
    fw, _ = unroll(cell, params.cell.forward, xs[1, :4])
    bw, _ = unroll(cell, params.cell.backward, xs[1, :4][::-1])
    expected = readout.linear(params.readout, jnp.concatenate([fw, bw[::-1]], -1))
    np.testing.assert_allclose(got[1, :4], expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got[1, 4:], jnp.broadcast_to(params.readout.c, (3, 2)))
    assert np.isfinite(np.asarray(got)).all()


@pytest.mark.parametrize("argv, match", [
    (["--window=8"], r"--window: expected an integer in \[1, seq_len=8\)"),
    (["--min_len=9"], r"--min_len: expected an integer in \[1, seq_len=8\]"),
    (["--num_symbols=1"], "--num_symbols: expected an integer >= 2, received 1"),
    (["--direction=left"], r"--direction: expected one of uni, bi, received 'left'"),
    (["--eval_batch=0"], "--eval_batch: expected an integer >= 1, received 0"),
])
def test_invalid_flags_fail_before_any_compile(argv, match, monkeypatch, tmp_path):
    monkeypatch.setattr(training, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "tagging").exists()
