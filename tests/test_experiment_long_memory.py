"""experiments/long_memory.py --quick runs end to end: every cell trains, the comparison is drawn."""

import json

import pytest

from experiments import flags as shared
from experiments import long_memory


def test_quick_copying_every_cell(tmp_path):
    table = shared.call_main(long_memory.main, ["--quick", "--task=copying", f"--out_dir={tmp_path}"])
    text = table.read_text()
    for cell in ("vanilla", "irnn", "lstm", "urnn"):
        assert f"| {cell} | 8 |" in text
    assert table.with_suffix(".png").exists()
    run = tmp_path / "long_memory" / "quick_copying_T8_urnn_h8_seed0"
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 20
    # uRNN params: V (2 x 10 x 8) + phases 3 x 8 + reflections 2 x 2 x 8 + b 8 + h0 2 x 8,
    # readout 16 x 9 + 9; the permutation is not a parameter.
    assert summary["num_params"] == 160 + 24 + 32 + 8 + 16 + 16 * 9 + 9
    config = json.loads((run / "config.json").read_text())
    assert config["train"]["optimizer"] == "rmsprop" and config["clip_kind"] == "elementwise"


def test_quick_adding_single_cell_and_report_only(tmp_path):
    argv = ["--quick", "--task=adding", "--cell=urnn", "--T=6", f"--out_dir={tmp_path}"]
    table = shared.call_main(long_memory.main, argv)
    assert "| urnn | 8 |" in table.read_text() and "baseline 0.1667" in table.read_text()
    records = [json.loads(line) for line in
               (tmp_path / "long_memory" / "quick_adding_T6_urnn_h8_seed0" / "metrics.jsonl")
               .read_text().splitlines()]
    assert records[-1]["step"] == 20 and records[-1]["eval_loss"] > 0
    again = shared.call_main(long_memory.main, argv + ["--report_only"])
    assert again.read_text() == table.read_text()


def test_bad_flags_raise(tmp_path):
    with pytest.raises(ValueError, match="--T: expected an integer >= 2"):
        shared.call_main(long_memory.main, ["--quick", "--T=1", f"--out_dir={tmp_path}"])
    with pytest.raises(ValueError, match="--cells: expected cells among"):
        shared.call_main(long_memory.main, ["--quick", "--cells=gru", f"--out_dir={tmp_path}"])
