"""experiments.parallel_in_time on the template: a --quick population of two seeds end to end,
its table recomputed from metrics.jsonl, and bad flags before any compile."""

import json

import numpy as np
import pytest

from experiments import parallel_in_time, populations, template


def test_quick_population_counts_newton_iterations(tmp_path):
    summary = populations.call(parallel_in_time, [
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
    for row in summary["table"]:  # the table's means are the members' records at that step
        at_step = [r for r in evaluations if r["step"] == row["step"]]
        for method in ("full", "diagonal"):
            assert row[f"{method}_iterations_mean"] == pytest.approx(
                np.mean([r[f"{method}_iterations"] for r in at_step]))
    assert [row["step"] for row in summary["table"]] == [3, 6]
    assert (tmp_path / "fig" / f"parallel_in_time_{run_dir.name}_diagonal_iterations.png").exists()


@pytest.mark.parametrize("flag, match", [
    ("--tol=0", "--tol: expected a number > 0, received 0.0"),
    ("--newton_len=0", "--newton_len: expected a positive integer, received 0"),
    ("--max_iterations=0", "--max_iterations: expected a positive integer, received 0"),
    ("--eval_every=0", "--eval_every: expected a positive interval"),
])
def test_bad_flags_raise_before_training(flag, match, tmp_path):
    with pytest.raises(template.FlagError, match=match):
        populations.call(parallel_in_time, ["--quick", flag, f"--out_dir={tmp_path}"])
