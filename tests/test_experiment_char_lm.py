"""experiments/char_lm.py end to end: --quick, the "hello" toy, sampling a checkpoint in a new
process, and the baselines."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import char_lm
from experiments import flags as shared

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("char_lm")
    shared.call_main(char_lm.main, [
        "--quick", f"--out_dir={out}", "--checkpoint_every=15", "--sample_len=40",
        "--baselines", "--ngram_max=3", "--layers=2", "--dropout=0.1",
    ])
    (run_dir,) = (out / "char_lm").iterdir()
    return run_dir


def test_quick_runs_end_to_end(quick_run):
    summary = json.loads((quick_run / "summary.json").read_text())
    assert summary["steps"] == 30 and summary["stopped"] == "num_steps"
    assert math.isfinite(summary["val_nats"])
    assert summary["val_bits"] == pytest.approx(summary["val_nats"] / math.log(2))
    assert summary["val_nats"] < math.log(summary["vocab_size"])  # learnt something
    assert set(json.loads((quick_run / "ngram.json").read_text())) == {
        f"{n}-gram {s}" for n in (1, 2, 3) for s in ("add_k", "kneser_ney")}
    assert (quick_run / "curves.png").exists() and (quick_run / "vocab.json").exists()
    sample = (quick_run / "sample.txt").read_text("utf-8")
    prime = (quick_run / "prime.txt").read_text("utf-8")
    assert sample.startswith(prime) and len(sample) == len(prime) + 40


def test_checkpoint_samples_the_same_text_in_a_new_process(quick_run):
    result = subprocess.run(
        [sys.executable, "-m", "experiments.char_lm", "--sample_only",
         f"--checkpoint={quick_run}", "--sample_len=40"],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (quick_run / "sample.txt").read_text("utf-8") + "\n"


def test_hello_toy_learns_hello(tmp_path):
    shared.call_main(char_lm.main, [
        "--data=hello", f"--out_dir={tmp_path}", "--greedy", "--sample_len=4"])
    (run_dir,) = (tmp_path / "char_lm").iterdir()
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert vocab["tokens"] == ["h", "e", "l", "o"]
    assert (run_dir / "sample.txt").read_text() == "hello"
    assert json.loads((run_dir / "summary.json").read_text())["val_nats"] < 0.05


def test_bad_flags_raise(tmp_path):
    with pytest.raises(ValueError, match="--dropout: expected a rate in"):
        shared.call_main(char_lm.main, ["--quick", f"--out_dir={tmp_path}", "--dropout=1.5"])
    with pytest.raises(ValueError, match="--checkpoint: expected a run directory"):
        shared.call_main(char_lm.main, ["--sample_only"])


def test_word_level_runs_with_a_capped_vocabulary(tmp_path):
    shared.call_main(char_lm.main, [
        "--quick", "--level=word", "--vocab_cap=200", "--steps=4", f"--out_dir={tmp_path}",
        "--sample_len=5"])
    (run_dir,) = (tmp_path / "char_lm").iterdir()
    assert "levelword" in run_dir.name
    vocab = json.loads((run_dir / "vocab.json").read_text())
    assert vocab["level"] == "word" and len(vocab["tokens"]) == 200
    assert vocab["tokens"][0] == vocab["unknown"] == "<unk>"
    sample, prime = (run_dir / "sample.txt").read_text(), (run_dir / "prime.txt").read_text()
    assert sample.startswith(prime + " ") and len(sample) > len(prime) + 5
