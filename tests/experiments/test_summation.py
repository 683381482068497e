"""experiments.summation on the template: flags from its Config, the sum and compare
populations of one invocation, the model against a NumPy loop, the hand-set weights through
the experiment's own evaluation, the report against the run files, bad input."""

import csv
import dataclasses
import json

import jax
import numpy as np
import pytest
from absl import flags

from experiments.harness import command_line, driver, template
from experiments.summation import experiment as summation
from rnn_jax import handbuilt, sequence_model, training
from tests.figures import assert_figure

FIELDS = {f.name: f for f in dataclasses.fields(summation.Config)}


def quick(tmp_path, *argv):
    return driver.call(summation.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def test_flags_come_from_the_config_with_its_defaults_and_quick_values():
    flag_values = flags.FlagValues()
    command_line.define_flags(summation.Config, flag_values)
    for name, field in FIELDS.items():
        expected = list(field.default) if isinstance(field.default, tuple) else field.default
        assert flag_values[name].default == expected, name
    config = driver.parse(summation.EXPERIMENT, [])
    assert (config.task, config.cell, config.hidden, config.seq_len, config.test_seq_len,
            config.steps) == ("sum", "vanilla", 8, 10, 100, 1000)
    assert driver.parse(summation.EXPERIMENT, ["--quick"]).test_seq_len == summation.QUICK[
        "test_seq_len"]
    assert driver.parse(summation.EXPERIMENT, ["--quick", "--test_seq_len=7"]).test_seq_len == 7


@pytest.mark.slow  # an end-to-end experiment run
def test_sum_and_compare_train_as_two_populations_of_seeds(tmp_path):
    summary = quick(tmp_path, "--seeds=3", "--grid=task=sum,compare",
                    f"--figures_dir={tmp_path / 'figures'}")
    (run_dir,) = (tmp_path / "summation").iterdir()
    config = json.loads((run_dir / "config.json").read_text())
    assert set(config) == set(FIELDS) - set(template.Base.NOT_IN_CONFIG)
    pops = {p.name: p for p in run_dir.iterdir() if p.is_dir()}
    assert sorted(pops) == ["taskcompare", "tasksum"]
    for pop, task in (("tasksum", "sum"), ("taskcompare", "compare")):
        pop_config = json.loads((pops[pop] / "config.json").read_text())
        assert pop_config["task"] == task
        assert [m["seed"] for m in pop_config["members"]] == [0, 1, 2]
        records = [json.loads(line) for line in
                   (pops[pop] / "metrics.jsonl").read_text().splitlines()]
        assert sorted({r["member"] for r in records}) == [0, 1, 2]
        assert {r["step"] for r in records} == {10, 20}
    (sum_row,) = summary["table_sum"]
    (compare_row,) = summary["table_compare"]
    assert sum_row["network"] == "linear, 1 unit" and compare_row["network"] == "vanilla, 4 units"
    assert compare_row["handbuilt_test_accuracy"] == 1.0
    assert sum_row["handbuilt_test_max_abs_error"] < 1e-4
    for name in ("sum_curves.png", "compare_curves.png"):
        assert_figure(run_dir / name)
        assert (tmp_path / "figures" / f"summation_{name}").exists()


def test_the_table_counts_the_members_that_the_run_files_say_are_solved(tmp_path):
    quick(tmp_path, "--seeds=4", "--success_error=3.0")
    (run_dir,) = (tmp_path / "summation").iterdir()
    (pop_dir,) = [p for p in run_dir.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]
    last = {r["member"]: r for r in records}  # each member's final record
    errors = [last[m]["test_max_abs_error"] for m in range(4)]
    (row,) = list(csv.DictReader(open(run_dir / "table_sum.csv")))
    assert row["solved"] == f"{sum(e <= 3.0 for e in errors)}/4"
    assert float(row["test_max_abs_error_mean"]) == pytest.approx(np.mean(errors), abs=5e-5)
    w = [last[m]["W"] for m in range(4)]
    assert float(row["W_mean"]) == pytest.approx(np.mean(w), abs=5e-5)  # 4 decimals


def numpy_linear_rnn(W, U, b, V, c, xs):
    """s(t) = W s(t-1) + U x(t) + b, y(t) = V s(t) + c, one step at a time (float64)."""
    s = np.zeros((xs.shape[0], W.shape[0]))
    ys = []
    for t in range(xs.shape[1]):
        s = s @ W + xs[:, t] @ U + b
        ys.append(s @ V + c)
    return np.stack(ys, 1)


def test_the_sum_network_equals_a_numpy_loop_and_reports_its_weights(key):
    config = driver.parse(summation.EXPERIMENT, ["--quick"])
    task = summation.task(config)
    params = task.init(jax.random.key(3))
    _, _, _, _, sample, _ = summation.network(config)
    xs, ys = summation.eval_sets(config, key, sample)["test"]
    p, o = (jax.tree.map(lambda a: np.asarray(a, np.float64), part) for part in params)
    reference = numpy_linear_rnn(p.W, p.U, p.b, o.V, o.c, np.asarray(xs, np.float64))
    out = task.evaluate(params, key)
    assert float(out["test_max_abs_error"]) == pytest.approx(
        np.max(np.abs(reference - np.asarray(ys))), rel=1e-4)
    assert float(out["U*V"]) == pytest.approx(p.U[0, 0] * o.V[0, 0], rel=1e-6)
    assert float(out["b*V+c"]) == pytest.approx(p.b[0] * o.V[0, 0] + o.c[0], abs=1e-7)


def test_hand_set_weights_are_exact_through_the_experiments_evaluation(key):
    config = driver.parse(summation.EXPERIMENT, ["--quick", "--test_seq_len=500"])
    params = sequence_model.ModelParams(*handbuilt.summation_params())
    out = summation.task(config).evaluate(params, key)
    assert float(out["test_max_abs_error"]) < 1e-4  # float32 rounding of a different order
    assert (float(out["W"]), float(out["U*V"]), float(out["b*V+c"])) == (1.0, 1.0, 0.0)
    compare = driver.parse(summation.EXPERIMENT,
                           ["--quick", "--task=compare", "--test_seq_len=500"])
    assert summation.handbuilt_test(compare)["accuracy"] == 1.0
    assert summation.handbuilt_test(config)["max_abs_error"] < 1e-4


def test_a_long_enough_run_learns_the_hand_set_answer(tmp_path):
    """W, U*V and b*V + c are what the data identify; they converge to 1, 1, 0."""
    summary = quick(tmp_path, "--seeds=2", "--steps=400", "--lr=0.05", "--log_every=400",
                    "--eval_every=400")
    (row,) = summary["table_sum"]
    assert row["solved"] == "2/2"
    assert abs(float(row["W_mean"]) - 1) < 1e-3 and abs(float(row["U*V_mean"]) - 1) < 1e-3


@pytest.mark.slow  # an end-to-end experiment run
def test_report_only_rebuilds_the_tables_from_the_run_files(tmp_path):
    quick(tmp_path, "--seeds=2", "--task=compare")
    (run_dir,) = (tmp_path / "summation").iterdir()
    before = (run_dir / "table_compare.md").read_text()
    (run_dir / "table_compare.md").unlink()
    quick(tmp_path, "--seeds=2", "--task=compare", "--report_only")
    assert (run_dir / "table_compare.md").read_text() == before


@pytest.mark.parametrize("argv, match", [
    (["--task=product"], r"expected one of .*, received "),
    (["--max_value=0"], "--max_value: expected a positive integer, received 0"),
    (["--max_value=1000000"], r"--max_value: expected an integer <= 838860 \(sums of 20 "
                              r"values exact in float32\), received 1000000"),
    (["--test_seq_len=0"], "--test_seq_len: expected a positive integer, received 0"),
    (["--eval_batch=0"], "--eval_batch: expected a positive integer, received 0"),
    (["--success_error=0"], "--success_error: expected a positive, finite error"),
    (["--success_accuracy=0.3"], r"--success_accuracy: expected a value in \(0.5, 1\]"),
    (["--grid=task=sum,divide"], "--task: expected one of"),
    (["--lr=nan"], "--lr: expected a positive, finite learning rate"),
    (["--seeds=0"], "--seeds: expected a positive count"),
])
def test_bad_input_is_one_line_before_anything_is_compiled_or_written(argv, match, tmp_path,
                                                                       monkeypatch):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "summation").exists()
