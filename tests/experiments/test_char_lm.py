"""experiments/char_lm on the template: a population's --quick run end to end, config.json,
sampling a chosen member from its checkpoint (also in a new process), the "hello" toy, word
level, the window model, the batches against rnn_jax.data.streams, bad input before anything
is written."""

import dataclasses
import hashlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from experiments.char_lm import data as char_lm_data
from experiments.char_lm import experiment as char_lm
from experiments.harness import driver, template
from rnn_jax import training
from rnn_jax.data import streams
from tests.figures import assert_figure

REPO = Path(__file__).resolve().parents[2]
QUICK_POPULATION = ["--quick", "--seeds=2", "--checkpoint_every=15", "--sample_len=40",
                    "--baselines", "--ngram_max=3", "--layers=2", "--dropout=0.1",
                    "--temperature=0.9", "--top_k=20"]


def call(out, *argv):
    return driver.call(char_lm.EXPERIMENT, [f"--out_dir={out}", *argv])


def records(pop_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (pop_dir / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("char_lm")
    summary = call(out, *QUICK_POPULATION)
    (run_dir,) = (out / "char_lm").iterdir()
    return run_dir, summary


@pytest.mark.slow  # an end-to-end experiment run
def test_a_quick_population_runs_end_to_end(quick_run):
    run_dir, summary = quick_run
    pop_dir = run_dir / "population"
    rows = records(pop_dir)
    assert [(r["step"], r["member"]) for r in rows] == [
        (s, m) for s in (10, 20, 30) for m in (0, 1)]
    final = {r["member"]: r for r in rows if r["step"] == 30}
    vocab = json.loads((pop_dir / "vocab.json").read_text())["tokens"]
    for r in final.values():
        assert math.isfinite(r["val_nats"]) and r["val_nats"] < math.log(len(vocab))
        assert r["val_bits"] == pytest.approx(r["val_nats"] / math.log(2))
        assert math.isfinite(r["train_nats"]) and r["train_nats"] != r["val_nats"]
    assert final[0]["val_nats"] != final[1]["val_nats"]  # seeds 0 and 1: different members
    (row,) = summary["table"]
    assert row["members"] == 2 and row["steps"] == 30
    assert row["val_nats_mean"] == pytest.approx(np.mean([r["val_nats"] for r in
                                                          final.values()]))
    assert row["train_nats_mean"] == pytest.approx(np.mean([r["train_nats"] for r in
                                                            final.values()]))
    curve = (run_dir / "curve.md").read_text().splitlines()
    assert "train_nats_mean" in curve[0] and "gap_nats_mean" in curve[0] and len(curve) == 3
    assert set(json.loads((pop_dir / "ngram.json").read_text())) == {
        f"{n}-gram {s}" for n in (1, 2, 3) for s in ("add_k", "kneser_ney")}
    assert [r["n"] for r in summary["ngram"]] == [1, 2, 3]
    header = (run_dir / "table.md").read_text().splitlines()[0]
    assert header.startswith("| model |") and "| members |" in header
    assert_figure(run_dir / "curves.png")
    sample = (pop_dir / "sample.txt").read_text("utf-8")
    prime = (pop_dir / "prime.txt").read_text("utf-8")
    assert sample.startswith(prime) and len(sample) == len(prime) + 40


@pytest.mark.slow  # an end-to-end experiment run
def test_config_json_holds_every_field_that_affects_the_result(quick_run):
    run_dir, _ = quick_run
    saved = json.loads((run_dir / "config.json").read_text())
    fields = {f.name for f in dataclasses.fields(char_lm.Config)}
    assert set(saved) == fields - set(template.Base.NOT_IN_CONFIG)
    assert (saved["temperature"], saved["top_k"], saved["baselines"], saved["layers"],
            saved["text_chars"], saved["hidden"]) == (0.9, 20, True, 2, 20000, 32)
    members = json.loads((run_dir / "population" / "config.json").read_text())["members"]
    assert [m["seed"] for m in members] == [0, 1]


def test_quick_and_flags_come_from_the_dataclass():
    default = driver.parse(char_lm.EXPERIMENT, [])
    assert (default.hidden, default.seq_len, default.batch, default.lr) == (512, 64, 64, 2e-3)
    quick = driver.parse(char_lm.EXPERIMENT, ["--quick"])
    assert {k: getattr(quick, k) for k in char_lm.QUICK} == char_lm.QUICK
    assert driver.parse(char_lm.EXPERIMENT, ["--quick", "--hidden=20"]).hidden == 20


@pytest.mark.slow  # a child process
def test_a_chosen_member_samples_the_same_text_in_a_new_process(quick_run, tmp_path):
    run_dir, _ = quick_run
    result = subprocess.run(
        [sys.executable, "-m", "experiments.char_lm", "--sample_only", f"--checkpoint={run_dir}",
         "--sample_len=40", "--temperature=0.9", "--top_k=20",
         f"--out_dir={tmp_path}", "--compilation_cache_dir="],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout == (run_dir / "population" / "sample.txt").read_text("utf-8") + "\n"
    other = call(tmp_path, "--sample_only", f"--checkpoint={run_dir / 'population'}",
                 "--sample_len=40", "--temperature=0.9", "--top_k=20", "--sample_member=1")
    assert other["sample"] != result.stdout[:-1]  # member 1 has its own parameters and key
    with pytest.raises(template.FlagError, match="--sample_member: expected a member of the 2"):
        call(tmp_path, "--sample_only", f"--checkpoint={run_dir}", "--sample_member=2")


@pytest.mark.slow  # an end-to-end experiment run
def test_report_only_redraws_the_tables(quick_run, tmp_path):
    run_dir, _ = quick_run
    (run_dir / "table.md").unlink()
    summary = call(run_dir.parents[1], *QUICK_POPULATION, "--report_only")
    assert (run_dir / "table.md").exists() and summary["table"][0]["members"] == 2
    assert summary["table"][0]["steps_to_success"] == "- -"  # nobody reached 1.55 nats
    final = [r for r in records(run_dir / "population") if r["step"] == 30]
    between = (min(r["val_nats"] for r in final) + max(r["val_nats"] for r in final)) / 2
    summary = call(run_dir.parents[1], *QUICK_POPULATION, "--report_only",
                   f"--success_nats={between}")  # exactly one member reached it, at step 30
    row = summary["table"][0]
    assert sorted(row["steps_to_success"].split()) == ["-", "30"] and row["solved"] == "1/2"


@pytest.mark.slow  # an end-to-end experiment run
def test_members_of_a_population_equal_their_single_seed_runs(tmp_path):
    """Member 1 of --seeds=2 is seed 1: the same init and keys as a run of that seed."""
    call(tmp_path / "pop", "--quick", "--seeds=2", "--steps=10", "--dropout=0.2")
    call(tmp_path / "one", "--quick", "--seed=1", "--steps=10", "--dropout=0.2")
    (pop,) = (tmp_path / "pop" / "char_lm").glob("*/population")
    (one,) = (tmp_path / "one" / "char_lm").glob("*/population")
    member, single = records(pop)[-1], records(one)[-1]
    assert member["member"] == 1
    for key in ("loss", "val_nats"):
        assert member[key] == pytest.approx(single[key], rel=1e-4), key


def test_hello_toy_learns_hello(tmp_path):
    call(tmp_path, "--data=hello", "--steps=150", "--lr=0.05", "--batch=1", "--hidden=16",
         "--seq_len=4", "--eval_every=50", "--checkpoint_every=150", "--greedy",
         "--sample_len=4")
    (pop_dir,) = (tmp_path / "char_lm").glob("*/population")
    assert json.loads((pop_dir / "vocab.json").read_text())["tokens"] == ["h", "e", "l", "o"]
    assert (pop_dir / "sample.txt").read_text() == "hello"
    assert records(pop_dir)[-1]["val_nats"] < 0.05
    # the toy is its own validation text, so its training-text evaluation is the same number
    assert records(pop_dir)[-1]["train_nats"] == pytest.approx(records(pop_dir)[-1]["val_nats"])


@pytest.mark.slow  # an end-to-end experiment run
def test_word_level_runs_with_a_capped_vocabulary(tmp_path):
    call(tmp_path, "--quick", "--level=word", "--vocab_cap=200", "--steps=4",
         "--checkpoint_every=4", "--sample_len=5")
    (run_dir,) = (tmp_path / "char_lm").iterdir()
    assert "levelword" in run_dir.name
    vocab = json.loads((run_dir / "population" / "vocab.json").read_text())
    assert vocab["level"] == "word" and len(vocab["tokens"]) == 200
    assert vocab["tokens"][0] == vocab["unknown"] == "<unk>"
    sample = (run_dir / "population" / "sample.txt").read_text()
    prime = (run_dir / "population" / "prime.txt").read_text()
    assert sample.startswith(prime + " ") and len(sample) > len(prime) + 5


def test_the_window_model_trains_in_the_same_loop(tmp_path):
    summary = call(tmp_path, "--quick", "--model=window", "--window=4", "--steps=10")
    (row,) = summary["table"]
    assert row["model"] == "window K=4, 32 units" and math.isfinite(row["val_nats_mean"])


@pytest.mark.slow  # an end-to-end experiment run
def test_each_text_gets_its_own_run_name(tmp_path):
    """--data_path's stem and content hash name the run: a second text in the same --out_dir
    trains beside the first (no 'changed config' refusal); the same text elsewhere is the
    same run name."""
    texts = {"a": "to be or not to be " * 60, "b": "that is the question " * 60}
    for name, body in texts.items():
        (tmp_path / f"{name}.txt").write_text(body)
    (tmp_path / "copy").mkdir()
    (tmp_path / "copy" / "a.txt").write_text(texts["a"])
    name = lambda path: char_lm.run_name(driver.parse(  # noqa: E731
        char_lm.EXPERIMENT, ["--quick", f"--data_path={path}"]))
    digest = hashlib.sha256(texts["a"].encode()).hexdigest()[:8]
    assert name(tmp_path / "a.txt") == f"quick_dataa-{digest}_lstm_layers1_hidden32_seq_len16_seed0"
    assert name(tmp_path / "copy" / "a.txt") == name(tmp_path / "a.txt") != name(tmp_path / "b.txt")
    for text in ("a", "b"):
        call(tmp_path / "out", "--quick", f"--data_path={tmp_path / text}.txt", "--steps=2",
             "--hidden=8", "--batch=2")
    assert len(list((tmp_path / "out" / "char_lm").iterdir())) == 2


CELL_CHOICES = {f.name: f for f in dataclasses.fields(char_lm.Config)}["cell"].metadata["choices"]


@pytest.mark.slow  # an end-to-end experiment run
@pytest.mark.parametrize("cell", CELL_CHOICES)
def test_every_offered_cell_trains_and_samples(cell, tmp_path):
    """Each of --cell's choices runs --quick: training, evaluation and sampling from the
    checkpoint (the uRNN's readout reads its 2 x hidden real outputs)."""
    summary = call(tmp_path, "--quick", f"--cell={cell}", "--steps=2", "--hidden=8",
                   "--text_chars=3000", "--checkpoint_every=2", "--sample_len=3")
    (row,) = summary["table"]
    assert math.isfinite(row["val_nats_mean"]) and math.isfinite(row["train_nats_mean"])
    assert len(next(iter(summary["samples"].values()))) >= 3


@pytest.mark.parametrize("steps", [[0, 1, 2], [5, 6, 7, 12]])
def test_the_traced_batches_are_the_streams_chunks(steps):
    """chunk_sampler under jit (vmapped over members) against streams.get_chunk."""
    ids = np.random.default_rng(0).integers(0, 7, size=200).astype(np.int32)
    data = streams.make_streams(ids, 3, 11)  # 199 pairs: 67 per row, padded to 6 chunks
    sample = jax.jit(jax.vmap(char_lm_data.chunk_sampler(data), in_axes=(0, None)))
    keys = jax.random.split(jax.random.key(0), 2)
    for step in steps:
        got, want = sample(keys, step), streams.get_chunk(data, step)
        for name in ("inputs", "targets", "mask"):
            np.testing.assert_array_equal(got[name][1], want[name])
        assert bool(got["reset"][0]) == bool(want["reset"])


BAD_INPUT = [
    (["--dropout=1.5"], r"--dropout: expected a rate in \[0, 1\), received 1.5"),
    (["--sample_only"], "--checkpoint: expected a run directory with --sample_only"),
    (["--checkpoint=somewhere"], "--checkpoint: expected no value without --sample_only"),
    (["--temperature=0"], "--temperature: expected a finite temperature > 0, received 0.0"),
    (["--top_k=-1"], "--top_k: expected an integer >= 0"),
    (["--sample_len=0"], "--sample_len: expected an integer >= 1"),
    (["--model=window", "--embed=0"], "--embed: expected an embedding size > 0"),
    (["--layers=0"], "--layers: expected at least 1 layer"),
    (["--valid_fraction=1"], r"--valid_fraction: expected a fraction in \(0, 1\)"),
    (["--vocab_cap=1"], "--vocab_cap: expected an integer >= 2"),
    (["--window=0"], "--window: expected an integer >= 1"),
    (["--ngram_max=0"], "--ngram_max: expected an integer >= 1"),
    (["--text_chars=-1"], "--text_chars: expected an integer >= 0"),
    (["--success_nats=0"], "--success_nats: expected a positive loss"),
    (["--seeds=2", "--sample_member=2"], r"--sample_member: expected one of the 2 members"),
    (["--prime=\u2603"], "--prime: expected only symbols of the"),
    (["--data_path=/nonexistent/text.txt"], "--data_path: expected a non-empty UTF-8 text "
                                            "file, received '/nonexistent/text.txt'"),
    (["--text_chars=300", "--batch=400"], "--batch: expected at most 269 streams"),
    (["--data=wiki"], r"expected one of .*, received "),
    (["--lr=nan"], "--lr: expected a positive, finite learning rate"),
]


@pytest.mark.parametrize("argv, match", BAD_INPUT)
def test_bad_input_fails_before_anything_is_compiled_or_written(argv, match, monkeypatch,
                                                                tmp_path):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    with pytest.raises(template.FlagError, match=match):
        call(tmp_path, "--quick", *argv)
    assert not (tmp_path / "char_lm").exists()


def test_sample_only_names_what_a_directory_lacks(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(template.FlagError, match="--checkpoint: expected a char_lm population "
                                                 "directory .* without config.json"):
        call(tmp_path, "--sample_only", f"--checkpoint={tmp_path / 'empty'}")
    with pytest.raises(template.FlagError, match="not a directory"):
        call(tmp_path, "--sample_only", f"--checkpoint={tmp_path / 'absent'}")
