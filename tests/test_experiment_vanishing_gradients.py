"""experiments/vanishing_gradients.py --quick end to end, and the recall data it trains on."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from experiments import flags as shared
from experiments import vanishing_gradients
from rnn_jax.cells import CELLS
from rnn_jax.data import recall


def test_quick_runs_every_part_for_every_registered_cell(tmp_path):
    report = shared.call_main(vanishing_gradients.main, ["--quick", f"--out_dir={tmp_path}"])
    study = tmp_path / "vanishing_gradients" / "quick_study"
    text = report.read_text()
    gradients, recall_part = text.split("## recall")
    assert {name for _, name, _ in vanishing_gradients.variants([1.5])} == set(CELLS)
    for label, _, _ in vanishing_gradients.variants([1.5]):  # every cell, whatever CELLS holds
        assert f"| {label} |" in gradients
    assert "| gru | " in recall_part and "| lstm_fb0 |" not in recall_part  # --quick: gru only
    for stem in ("gradients_seed0", "clipping_seed0", "recall_seed0"):
        assert (study / f"{stem}.png").exists() and (study / f"{stem}.md").exists()
    curves = json.loads((study / "gradients_seed0.json").read_text())
    assert len(curves["gru"]["grad"]) == 8 + 1  # t = 0..T with T = 8
    assert curves["vanilla_tanh_rho1.5"]["bound_factor"] == pytest.approx(1.5, rel=1e-5)
    assert curves["gru"]["bound_factor"] is None
    for clip in ("0", "1"):  # grad_norm recorded at every step, with and without clipping
        records = [json.loads(line) for line in (tmp_path / "vanishing_gradients" /
                   f"quick_clipping_clip{clip}_seed0" / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in records] == list(range(1, 7))
        assert all(r["grad_norm"] > 0 for r in records)
    run = tmp_path / "vanishing_gradients" / "quick_recall_gru_D2_seed0"
    assert json.loads((run / "summary.json").read_text())["steps"] == 6


def test_recall_sample_targets_the_first_symbol(key):
    xs, labels = recall.sample(key, 16, 5, num_symbols=3)
    assert xs.shape == (16, 6, 3) and xs.dtype == jnp.float32 and labels.dtype == jnp.int32
    np.testing.assert_array_equal(labels, jnp.argmax(xs[:, 0], -1))
    np.testing.assert_array_equal(jnp.sum(xs, -1), 1.0)
    again, _ = recall.sample(key, 16, 5, num_symbols=3)
    np.testing.assert_array_equal(xs, again)
    with pytest.raises(ValueError, match="expected an integer delay >= 0, received -1"):
        recall.sample(key, 4, -1)
    with pytest.raises(ValueError, match="num_symbols >= 2"):
        recall.sample(key, 4, 3, num_symbols=1)


@pytest.mark.parametrize("argv,match", [
    (["--parts=gradients,plots"], "--parts: expected parts among"),
    (["--radii=0.5,-1"], "--radii: expected positive finite radii"),
    (["--delays=a"], "--delays: expected integer delays >= 0, received .a."),
    (["--gradient_len=0"], "--gradient_len: expected an integer >= 1"),
    (["--recall_cells=gru,rnn"], "--recall_cells: expected cells among"),
])
def test_bad_flags_raise(argv, match, tmp_path):
    with pytest.raises(ValueError, match=match):
        shared.call_main(vanishing_gradients.main, ["--quick", f"--out_dir={tmp_path}", *argv])
