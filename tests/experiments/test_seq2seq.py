"""experiments.seq2seq on the template: a --quick run end to end (table, curve, attention
matrix), the table against the members' own records, bad flags before any compile."""

import json

import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.seq2seq import experiment as seq2seq
from tests.figures import assert_figure


@pytest.mark.slow  # an end-to-end experiment run
def test_quick_run_writes_table_and_figures(tmp_path):
    summary = driver.call(seq2seq.EXPERIMENT, ["--quick", "--seeds=2", f"--out_dir={tmp_path}",
                                         f"--figures_dir={tmp_path / 'figures'}"])
    (run_dir,) = (tmp_path / "seq2seq").iterdir()
    records = [json.loads(line) for line in
               (run_dir / "population" / "metrics.jsonl").read_text().splitlines()]
    last = {r["member"]: r for r in records if r["step"] == 20}
    assert sorted(last) == [0, 1]
    rows = summary["table"]
    assert [r["source_length"] for r in rows] == ["L3", "L6"]
    for row in rows:
        name = row["source_length"]
        for metric in ("exact", "token"):
            values = [last[m][f"{metric}_{name}"] for m in (0, 1)]
            assert 0 <= min(values) and max(values) <= 1
            assert row[f"{metric}_mean"] == pytest.approx(np.mean(values))
    for figure in ("accuracy_vs_length.png", "attention.png"):
        assert_figure(run_dir / figure)
        assert (tmp_path / "figures" / f"seq2seq_{run_dir.name}_{figure}").exists()


@pytest.mark.parametrize("argv,message", [
    (["--min_len=5", "--seq_len=4"], "--min_len: expected 1 <= min_len <= --seq_len=4, received 5"),
    (["--task=addition", "--seq_len=2", "--min_len=1"], "--seq_len: expected a length >= 3"),
    (["--task=addition", "--test_lengths=2,5"], "--test_lengths: expected source lengths >= 3"),
    (["--attention=luong"], "--attention: expected one of none, additive, dot"),
])
def test_bad_flags_are_one_line_errors(tmp_path, argv, message):
    with pytest.raises(template.FlagError, match=message):
        driver.call(seq2seq.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])
    assert not (tmp_path / "seq2seq").exists()
