"""experiments.parity and experiments.summation end to end (--quick) and their flag checks."""

import csv
import json

import pytest
from absl import flags

from experiments import flags as shared
from experiments import parity, summation
from rnn_jax import train

FLAGS = flags.FLAGS


def test_parity_quick_writes_its_run_directory(tmp_path, capsys):
    shared.call_main(parity.main, ["--quick", f"--out_dir={tmp_path}"])
    (run_dir,) = (tmp_path / "parity").iterdir()
    assert run_dir.name == "quick_lstm_h8_T8_test16_targetmany_to_many_seed0"
    config = json.loads((run_dir / "config.json").read_text())
    assert config["train"]["steps"] == 30 and config["test_seq_len"] == 16
    records = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30]
    assert {"loss", "accuracy", "eval_accuracy", "test_accuracy"} <= set(records[-1])
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["handbuilt_test_accuracy"] == 1.0
    assert summary["final"] == records[-1] and summary["num_params"] > 0
    assert (run_dir / "curves.png").stat().st_size > 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[-1].startswith("parity lstm h8: accuracy") and str(run_dir) in out[-1]
    assert FLAGS.quick is None and FLAGS.steps is None  # parsed flags did not leak


def test_parity_quick_sweep_writes_csv_table_and_plot(tmp_path):
    shared.call_main(parity.main, ["--quick", "--sweep", "--sweep_cells=vanilla,lstm",
                                   "--sweep_lengths=4", "--sweep_seeds=1",
                                   f"--out_dir={tmp_path}", "--run_name=s"])
    run_dir = tmp_path / "parity" / "s"
    rows = list(csv.DictReader(open(run_dir / "sweep.csv")))
    assert [(r["cell"], r["seq_len"], r["seed"]) for r in rows] == [("vanilla", "4", "0"),
                                                                    ("lstm", "4", "0")]
    for row in rows:
        assert row["solved"] == str(float(row["eval_accuracy"]) >= 0.99)
    table = (run_dir / "sweep.md").read_text().splitlines()
    assert table[0].startswith("| cell | seq_len | success_rate") and len(table) == 4
    assert (run_dir / "sweep.png").stat().st_size > 0
    assert json.loads((run_dir / "summary.json").read_text())["runs"] == 2


def test_summation_quick_trains_both_networks(tmp_path, capsys):
    shared.call_main(summation.main, ["--quick", f"--out_dir={tmp_path}", "--run_name=r"])
    for task in ("sum", "compare"):
        run_dir = tmp_path / "summation" / "r" / task
        assert {"config.json", "metrics.jsonl", "summary.json", "curves.png"} <= {
            p.name for p in run_dir.iterdir()}
    sum_summary = json.loads((tmp_path / "summation/r/sum/summary.json").read_text())
    assert sum_summary["weights"]["hand_set"] == {"W": 1.0, "U": 1.0, "b": 0.0, "V": 1.0,
                                                  "c": 0.0, "U*V": 1.0, "b*V+c": 0.0}
    assert sum_summary["handbuilt_test_max_abs_error"] < 1e-4  # float32 rounding only
    compare = json.loads((tmp_path / "summation/r/compare/summary.json").read_text())
    assert compare["handbuilt_test_accuracy"] == 1.0
    assert "learned W=" in capsys.readouterr().out


@pytest.mark.parametrize("main, argv, match", [
    (parity.main, ["--lr=-1"], "--lr: expected a positive, finite learning rate, received -1.0"),
    (parity.main, ["--test_seq_len=0"], "--test_seq_len: expected a positive integer"),
    (parity.main, ["--sweep_cells=lstm,bogus"], r"--sweep_cells: expected cells from .*bogus"),
    (parity.main, ["--sweep_lengths=4,x"], "--sweep_lengths: expected comma-separated"),
    (parity.main, ["--success_accuracy=0.2"], r"expected a value in \(0.5, 1\]"),
    (parity.main, ["extra_arg"], "--argv: expected only --flags, received"),
    (summation.main, ["--clip=-1"], r"--clip: expected a finite global norm >= 0"),
    (summation.main, ["--max_value=0"], "--max_value: expected an integer >= 1"),
])
def test_invalid_flags_fail_before_any_compile(main, argv, match, monkeypatch, tmp_path):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(train, "make_train_step", compile_attempted)
    with pytest.raises(shared.FlagError, match=match):
        shared.call_main(main, [*argv, f"--out_dir={tmp_path}"])
    assert not (tmp_path / "parity").exists()


def test_unknown_enum_values_are_rejected_at_parse_time():
    for argv in (["--cell=transformer"], ["--optimizer=lbfgs"], ["--target=sometimes"]):
        with pytest.raises(flags.IllegalFlagValueError, match="should be one of"):
            shared.call_main(parity.main, argv)


def test_a_changed_config_does_not_silently_reuse_a_run_directory(tmp_path):
    argv = ["--quick", "--steps=10", f"--out_dir={tmp_path}", "--run_name=same"]
    shared.call_main(parity.main, argv)
    with pytest.raises(ValueError, match=r"different config \(train: "):
        shared.call_main(parity.main, [*argv[:1], "--steps=12", *argv[2:]])


def test_every_flag_has_a_help_string():
    for module in (shared, parity, summation):
        for flag in FLAGS.get_flags_for_module(module.__name__):
            assert flag.help and len(flag.help) > 10, flag.name


def test_parity_run_interrupted_and_started_again_ends_like_an_uninterrupted_one(
        tmp_path, monkeypatch):
    argv = ["--quick", "--steps=20", "--checkpoint_every=10", "--run_name=r"]
    shared.call_main(parity.main, [*argv, f"--out_dir={tmp_path / 'whole'}"])
    sample_batch = parity.sample_batch

    def interrupted(key, step, **kwargs):
        if step == 15:
            raise KeyboardInterrupt
        return sample_batch(key, step, **kwargs)

    monkeypatch.setattr(parity, "sample_batch", interrupted)
    with pytest.raises(KeyboardInterrupt):
        shared.call_main(parity.main, [*argv, f"--out_dir={tmp_path / 'cut'}"])
    monkeypatch.setattr(parity, "sample_batch", sample_batch)
    shared.call_main(parity.main, [*argv, f"--out_dir={tmp_path / 'cut'}"])

    def without_time(record):
        return {k: v for k, v in record.items() if k != "wall_s"}

    def read(name):
        run_dir = tmp_path / name / "parity" / "r"
        records = [without_time(json.loads(line)) for line in (run_dir / "metrics.jsonl").open()]
        summary = json.loads((run_dir / "summary.json").read_text())
        return records, without_time(summary["final"]), summary["resumed_from_step"]

    whole, cut = read("whole"), read("cut")
    assert cut[2] == 10 and whole[2] == 0
    assert cut[:2] == whole[:2]  # same records (no lost or doubled steps), same final metrics
