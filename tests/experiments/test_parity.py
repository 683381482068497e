"""experiments.parity on the template: its run directory, populations and grids, the report,
bad input before any compile, resume after an interrupt."""

import csv
import json

import pytest

from experiments.harness import driver, template
from experiments.parity import experiment as parity
from rnn_jax import training
from tests.figures import assert_figure


def quick(tmp_path, *argv):
    return driver.call(parity.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def test_quick_writes_the_invocation_and_its_population(tmp_path, capsys):
    summary = quick(tmp_path)
    (run_dir,) = (tmp_path / "parity").iterdir()
    assert run_dir.name == "quick_lstm_hidden8_seq_len8_seed0"
    (pop_dir,) = [p for p in run_dir.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]
    assert [(r["step"], r["member"]) for r in records] == [(10, 0), (20, 0), (30, 0)]
    assert {"loss", "accuracy", "eval_accuracy", "test_accuracy"} <= set(records[-1])
    outcome = json.loads((pop_dir / "summary.json").read_text())["members"][0]
    assert outcome["steps"] == 30 and outcome["final"] == records[-1]
    assert summary["finished"] and summary["handbuilt_test_accuracy"] == 1.0
    (row,) = summary["table"]
    solved = any(r["eval_accuracy"] >= 0.99 for r in records)  # at some evaluation
    assert row["solved"] == ("1/1" if solved else "0/1")
    assert row["eval_accuracy_mean"] == pytest.approx(records[-1]["eval_accuracy"])
    assert (run_dir / "table.md").read_text().startswith(
        "| cell | seq_len | members | diverged | solved |")
    assert_figure(run_dir / "curves.png")
    assert "hand-built network: accuracy 1.0000" in capsys.readouterr().out


@pytest.mark.slow  # an end-to-end experiment run
def test_a_grid_over_cells_and_lengths_is_one_population_each_with_its_seeds(tmp_path):
    summary = quick(tmp_path, "--seeds=3", "--grid=cell=vanilla,lstm", "--grid=seq_len=4,6",
                    "--steps=20", "--figures_dir=" + str(tmp_path / "figures"))
    run_dir = tmp_path / "parity" / "quick_hidden8_grid-cell-seq_len_seeds3"
    pops = sorted(p.name for p in run_dir.iterdir() if p.is_dir())
    assert pops == ["celllstm_seq_len4", "celllstm_seq_len6", "cellvanilla_seq_len4",
                    "cellvanilla_seq_len6"]
    for pop in pops:
        config = json.loads((run_dir / pop / "config.json").read_text())
        assert [m["seed"] for m in config["members"]] == [0, 1, 2]
    rows = list(csv.DictReader(open(run_dir / "table.csv")))
    assert [(r["cell"], r["seq_len"]) for r in rows] == [
        ("vanilla", "4"), ("vanilla", "6"), ("lstm", "4"), ("lstm", "6")]
    assert all(r["solved"].endswith("/3") for r in rows)
    assert_figure(run_dir / "success_vs_length.png")
    assert (tmp_path / "figures" / f"parity_{run_dir.name}_success_vs_length.png").exists()
    assert len(summary["table"]) == 4


@pytest.mark.slow  # an end-to-end experiment run
def test_members_of_a_population_equal_their_single_seed_runs(tmp_path):
    """Member i of --seeds=2 is seed i: the same data, init and keys as a run of that seed."""
    quick(tmp_path / "pop", "--seeds=2", "--steps=20")
    quick(tmp_path / "one", "--seed=1", "--steps=20")
    def rows(root):
        (path,) = (root / "parity").glob("*/population/metrics.jsonl")
        return [json.loads(line) for line in path.read_text().splitlines()]

    member = [r for r in rows(tmp_path / "pop") if r["member"] == 1][-1]
    single = rows(tmp_path / "one")[-1]
    for key in ("loss", "eval_accuracy", "test_accuracy"):
        assert member[key] == pytest.approx(single[key], rel=1e-4, abs=1e-5), key


def test_report_only_redraws_from_the_run_directories(tmp_path):
    quick(tmp_path, "--seeds=2")
    run_dir = next((tmp_path / "parity").iterdir())
    (run_dir / "table.md").unlink()
    summary = quick(tmp_path, "--seeds=2", "--report_only")
    assert (run_dir / "table.md").exists() and summary["table"][0]["solved"].endswith("/2")
    with pytest.raises(template.FlagError, match="--report_only: expected an existing run "
                                                 "directory, received"):
        quick(tmp_path, "--seeds=3", "--report_only")


@pytest.mark.parametrize("argv, match", [
    (["--lr=-1"], "--lr: expected a positive, finite learning rate, received -1.0"),
    (["--test_seq_len=0"], "--test_seq_len: expected a positive integer"),
    (["--success_accuracy=0.2"], r"expected a value in \(0.5, 1\]"),
    (["--stop_at_success", "--eval_every=0"], "--eval_every: expected a positive interval"),
    (["extra_arg"], "--argv: expected only --flags, received"),
    (["--cell=transformer"], r"expected one of .*, received "),
    (["--target=sometimes"], r"expected one of .*, received "),
])
def test_invalid_flags_fail_before_any_compile(argv, match, monkeypatch, tmp_path):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "parity").exists()


def test_a_changed_config_does_not_silently_reuse_a_run_directory(tmp_path):
    quick(tmp_path, "--steps=10", "--run_name=same")
    with pytest.raises(ValueError, match=r"different config \(steps: 10 -> 12\)"):
        quick(tmp_path, "--steps=12", "--run_name=same")


@pytest.mark.slow  # an end-to-end experiment run
def test_an_interrupted_run_started_again_ends_like_an_uninterrupted_one(tmp_path, monkeypatch):
    argv = ["--seeds=2", "--steps=20", "--checkpoint_every=10", "--run_name=r"]
    quick(tmp_path / "whole", *argv)
    fit = training.fit

    def interrupted_fit(state, step, get_batch, **kwargs):
        def batch(s):
            if s == 15:
                raise KeyboardInterrupt
            return get_batch(s)
        return fit(state, step, batch, **kwargs)

    monkeypatch.setattr(training, "fit", interrupted_fit)
    with pytest.raises(KeyboardInterrupt):
        quick(tmp_path / "cut", *argv)
    monkeypatch.setattr(training, "fit", fit)
    quick(tmp_path / "cut", *argv)

    def read(name):
        pop = training.Run(tmp_path / name / "parity" / "r" / "population")
        records = [{k: v for k, v in r.items() if k != "wall_s"} for r in pop.metrics()]
        return records, pop.summary()["resumed_from_step"]

    (whole, start_whole), (cut, start_cut) = read("whole"), read("cut")
    assert start_whole == 0 and start_cut == 10
    assert cut == whole  # no lost or doubled records, the same numbers
