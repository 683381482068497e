"""experiments.parallel_in_time on the template: a --quick population of two seeds end to end,
its table (Newton iterations, the largest Lyapunov exponent) recomputed from metrics.jsonl and
its iterations-vs-exponent figure decoded; --mode=timing's rows, Newton numbers and resume; bad
flags before any compile."""

import json

import jax
import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.parallel_in_time import experiment as parallel_in_time
from rnn_jax import training


@pytest.mark.slow  # an end-to-end experiment run
def test_quick_population_counts_newton_iterations(tmp_path):
    summary = driver.call(parallel_in_time.EXPERIMENT, [
        "--quick", "--seeds=2", f"--out_dir={tmp_path}", f"--figures_dir={tmp_path / 'fig'}"])
    (run_dir,) = (tmp_path / "parallel_in_time").iterdir()
    (pop_dir,) = [p for p in run_dir.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]
    evaluations = [r for r in records if "full_iterations" in r]
    assert sorted({(r["step"], r["member"]) for r in evaluations}) == [
        (3, 0), (3, 1), (6, 0), (6, 1)]
    for r in evaluations:  # quick: T = 12, so at most 12 iterations, and Newton converged
        for method in ("full", "diagonal"):
            assert 1 <= r[f"{method}_iterations"] <= 12
            assert r[f"{method}_converged"] == 1.0 and r[f"{method}_residual"] <= 1e-4
            assert r[f"{method}_error"] < 1e-3  # the same hidden states as the sequential scan
        assert r["lyapunov"] <= r["lyapunov_max"] and np.isfinite(r["lyapunov"])
    for row in summary["table"]:  # the table's means are the members' records at that step
        at_step = [r for r in evaluations if r["step"] == row["step"]]
        for method in ("full", "diagonal"):
            assert row[f"{method}_iterations_mean"] == pytest.approx(
                np.mean([r[f"{method}_iterations"] for r in at_step]))
        assert row["lyapunov_mean"] == pytest.approx(np.mean([r["lyapunov"] for r in at_step]))
        assert (row["members"], row["diverged"]) == (2, 0)
    assert [row["step"] for row in summary["table"]] == [3, 6]
    assert (tmp_path / "fig" / f"parallel_in_time_{run_dir.name}_diagonal_iterations.png").exists()
    figure = matplotlib.image.imread(
        tmp_path / "fig" / f"parallel_in_time_{run_dir.name}_iterations_vs_lyapunov.png")
    assert figure.shape[0] > 200 and figure.shape[1] > 400 and figure.std() > 0.05
    by_sign = (run_dir / "table_by_sign.md").read_text().splitlines()
    counted = [int(line.split("|")[2]) for line in by_sign[2:]]  # every evaluation, once
    assert sum(counted) == len(evaluations)


def test_training_rows_count_a_member_with_a_non_finite_value():
    """A member whose exponent is NaN (None in JSON) is counted as diverged and left out of
    that mean only, which says over how many it is."""
    records = [{"step": 10, "member": m, "eval_accuracy": 0.5, "lyapunov": x, "lyapunov_max": x,
                "full_iterations": i, "full_converged": 1.0, "diagonal_iterations": 2 * i,
                "diagonal_converged": 1.0} for m, x, i in [(0, -0.2, 3), (1, None, 9),
                                                          (2, -0.4, 6)]]
    run = type("Run", (), {"metrics": lambda self: records})()
    config = parallel_in_time.Config(cell="gru")
    (row,) = parallel_in_time.training_rows(config, run)
    assert (row["members"], row["diverged"]) == (3, 1)
    assert (row["lyapunov_mean"], row["lyapunov_n"]) == (pytest.approx(-0.3), 2)
    assert (row["full_iterations_mean"], row["full_iterations_n"]) == (6.0, 3)


def test_by_sign_counts_every_evaluation_and_a_non_finite_exponent():
    points = [{"step": s, "member": m, "lyapunov_max": x, "full_iterations": i,
               "diagonal_iterations": 2 * i}
              for s, m, x, i in [(1, 0, -0.3, 3), (1, 1, 0.2, 40), (2, 0, -0.1, 5),
                                 (2, 1, None, 256)]]
    rows = {r["exponent"]: r for r in parallel_in_time.by_sign(points)}
    assert [(r["evaluations"], r["seeds"]) for r in rows.values()] == [(2, 1), (1, 1), (1, 1)]
    assert rows["< 0"]["full_iterations_median"] == 4.0
    assert rows["< 0"]["exponent_range"] == "-0.3 to -0.1"
    assert rows["< 0"]["diagonal_iterations_range"] == "6-10"
    assert rows["not finite"]["full_iterations_median"] == 256


@pytest.mark.parametrize("flag, match", [
    ("--tol=0", "--tol: expected a number > 0, received 0.0"),
    ("--newton_len=0", "--newton_len: expected a positive integer, received 0"),
    ("--max_iterations=0", "--max_iterations: expected a positive integer, received 0"),
    ("--eval_every=0", "--eval_every: expected a positive interval"),
])
def test_bad_flags_raise_before_training(flag, match, tmp_path):
    with pytest.raises(template.FlagError, match=match):
        driver.call(parallel_in_time.EXPERIMENT, ["--quick", flag, f"--out_dir={tmp_path}"])


def test_timing_mode_writes_its_table_and_keeps_measured_rows(tmp_path):
    """One nonlinear cell at one tiny size (the linear cells' methods: test_parallel_timing)."""
    argv = ["--quick", "--mode=timing", "--timing_cells=vanilla", "--lengths=8",
            f"--out_dir={tmp_path}"]
    summary = driver.call(parallel_in_time.EXPERIMENT, argv)
    run_dir = tmp_path / "parallel_in_time" / "quick_timing_vanilla_hidden4_T8_batch2_seed0"
    timing = run_dir / "population" / "timing.json"
    rows = json.loads(timing.read_text())
    assert rows == summary["timing"]
    assert [r["method"] for r in rows] == ["sequential", "deer", "quasi_deer"]
    for row in rows:
        assert (row["cell"], row["hidden"], row["T"], row["batch"]) == ("vanilla", 4, 8, 2)
        for name in ("forward", "fwd+bwd"):
            assert 0 < row[f"{name}_ms"] < 1e4
            if row["method"] == "sequential":  # the reference: its ratio to itself
                assert row[f"{name}_speedup"] == 1.0
    assert rows[0]["iterations"] is rows[0]["residual"] is rows[0]["converged"] is None
    for row in rows[1:]:  # T = 8 <= max_iterations = 12: Newton converges
        assert 1 <= row["iterations"] <= 8 and row["converged"]
        assert 0 <= row["residual"] <= 1e-4  # --tol
    table = (run_dir / "table_timing.md").read_text().splitlines()
    assert [line.split("|")[5].strip() for line in table[2:]] == [r["method"] for r in rows]
    # a finished run is kept as it is; a stopped one keeps what it measured
    assert isinstance(driver.call(parallel_in_time.EXPERIMENT, argv), training.RunFinished)
    for stale in (run_dir / "summary.json", run_dir / "population" / "summary.json"):
        stale.unlink()
    (run_dir / "table_timing.md").unlink()
    assert driver.call(parallel_in_time.EXPERIMENT, argv)["timing"] == rows  # not measured again
    assert (run_dir / "table_timing.md").read_text().splitlines() == table


@pytest.mark.parametrize("flag, match", [
    ("--timing_cells=urnn", "--timing_cells: expected cells with a parallel path"),
    ("--timing_cells=nope", "--timing_cells: expected cells of"),
    ("--lengths=8,0", r"--lengths: expected positive integers, received \(8, 0\)"),
    ("--seeds=2", "--seeds: expected one seed with --mode=timing"),
    ("--rounds=0", "--rounds: expected a positive integer, received 0"),
    ("--grid=hidden=4,8", "--grid: expected no --grid with --mode=timing"),
])
def test_bad_timing_flags_raise_before_measuring(flag, match, tmp_path):
    with pytest.raises(template.FlagError, match=match):
        driver.call(parallel_in_time.EXPERIMENT, ["--quick", "--mode=timing", flag,
                                            f"--out_dir={tmp_path}"])
    assert not (tmp_path / "parallel_in_time").exists()


def test_nan_max_reports_a_nan_that_the_plain_reduction_may_skip():
    values = jnp.zeros((256, 8, 16)).at[3, 2, 1].set(jnp.nan).at[0, 0, 0].set(5.0)
    assert np.isnan(jax.jit(parallel_in_time.nan_max)(values))
    assert jax.jit(parallel_in_time.nan_max)(values.at[3, 2, 1].set(0.0)) == 5.0
