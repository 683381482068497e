"""The char-LM lessons of experiments/char_lm/README.md: samples at chosen updates of one run
(`--sample_at`, through `training.fit`'s `on_update`), word level's unknown-word rate and
baselines, and the comparison of runs (`experiments/char_lm/compare.py`). The memory of the
truncated-BPTT step is tested with its benchmark (tests/benchmarks/test_bptt_choice.py)."""

import collections
import json

import jax
import pytest

from experiments.char_lm import compare as char_lm_compare
from experiments.char_lm import data as char_lm_data
from experiments.char_lm import experiment as char_lm
from experiments.char_lm import sampling as char_lm_sampling
from experiments.harness import driver, template
from experiments.harness.population_state import init_population
from experiments.harness.records import Task
from rnn_jax import training
from rnn_jax.data import text
from rnn_jax.training import Checkpointer

# End to end: every test here trains or reads a char_lm run.
pytestmark = pytest.mark.slow

SAMPLED = ["--quick", "--seeds=2", "--sample_member=1", "--steps=30", "--checkpoint_every=10",
           "--sample_at=10,20", "--sample_len=30"]


def call(out, *argv):
    return driver.call(char_lm.EXPERIMENT, [f"--out_dir={out}", *argv])


@pytest.fixture(scope="module")
def sampled_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("sampled")
    call(out, *SAMPLED)
    (pop_dir,) = (out / "char_lm").glob("*/population")
    return pop_dir


def test_samples_at_chosen_updates_equal_sampling_from_those_checkpoints(sampled_run):
    rows = char_lm_sampling.read_samples(sampled_run)
    assert [(r["step"], r["member"], r["seed"]) for r in rows] == [(10, 1, 1), (20, 1, 1),
                                                                   (30, 1, 1)]
    assert len({r["sample"] for r in rows}) == 3  # the parameters changed between them
    # the last one is the report's sample, read back from the last checkpoint
    assert rows[-1]["sample"] == (sampled_run / "sample.txt").read_text("utf-8")
    # update 20: the checkpoint the run kept at that step, sampled independently
    config, members = char_lm_sampling.saved_config(char_lm.Config, sampled_run)
    vocab = text.load_vocabulary(sampled_run / "vocab.json")
    model = char_lm_data.build_model(config, vocab.size)
    task = Task(init=lambda key: model.init(key), loss_fn=None,
                            sample=None, stream=lambda p: model.initial_stream(p, config.batch))
    like, _, _ = init_population(task, config, members)
    checkpointer = Checkpointer(sampled_run / "checkpoints")
    try:
        state = checkpointer.restore(like, step=20)
    finally:
        checkpointer.close()
    params = jax.tree.map(lambda leaf: leaf[1], state.members.params)
    prime = (sampled_run / "prime.txt").read_text("utf-8")
    assert char_lm_sampling.sample_text(config, model, params, vocab, prime, seed=1) == \
        rows[1]["sample"]
    assert "update 20 (member 1" in (sampled_run / "samples.md").read_text("utf-8")


def test_the_same_flags_give_the_same_samples(sampled_run, tmp_path):
    call(tmp_path, *SAMPLED, "--checkpoint_every=0")
    (again,) = (tmp_path / "char_lm").glob("*/population")
    assert char_lm_sampling.read_samples(again) == char_lm_sampling.read_samples(sampled_run)


@pytest.mark.parametrize("value", ["0,10", "10,5", "10,10", "10,x", "10,31", "-3"])
def test_bad_sample_at_fails_before_compiling(value, monkeypatch, tmp_path):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    with pytest.raises(template.FlagError, match=r"--sample_at: expected comma-separated "
                       r"updates, positive, increasing and <= --steps \(30\), received"):
        call(tmp_path, "--quick", "--steps=30", f"--sample_at={value}")
    assert not (tmp_path / "char_lm").exists()


def test_unknown_rate_counts_validation_words_outside_the_capped_vocabulary():
    config = driver.parse(char_lm.EXPERIMENT, ["--quick", "--level=word", "--vocab_cap=50"])
    split = char_lm_data.load_split(config)
    corpus = text.load_corpus("pydoc", "")[:config.text_chars]
    train_text, valid_text = text.split_train_validation(corpus, config.valid_fraction)
    counts = collections.Counter(text.split_words(train_text))
    kept = set(sorted(counts, key=lambda w: (-counts[w], w))[:49])
    words = text.split_words(valid_text)
    expected = sum(w not in kept for w in words) / len(words)
    assert char_lm_data.unknown_rate(split) == pytest.approx(expected)
    assert 0 < expected < 1


def test_word_level_reports_unknown_rate_and_word_ngrams(tmp_path):
    summary = call(tmp_path, "--quick", "--level=word", "--vocab_cap=200", "--steps=4",
                   "--baselines", "--ngram_max=3")
    (row,) = summary["table"]
    assert 0 < row["val_unknown"] < 1
    assert [r["n"] for r in summary["ngram"]] == [1, 2, 3]
    (run_dir,) = (tmp_path / "char_lm").iterdir()
    assert "val_unknown" in (run_dir / "table.md").read_text()
    assert json.loads((run_dir / "population" / "vocab.json").read_text())["level"] == "word"


def test_compare_puts_separate_runs_in_one_table_and_figure(sampled_run, tmp_path):
    out = sampled_run.parents[2]
    call(out, "--quick", "--seeds=2", "--steps=30", "--seq_len=8", "--batch=16")
    runs = sorted(p.name for p in (out / "char_lm").iterdir() if not p.name.startswith("compare"))
    rows = char_lm_compare.compare(str(out), runs, "k", ["seq_len", "batch"])
    assert sorted(r["label"] for r in rows) == ["seq_len=16 batch=8", "seq_len=8 batch=16"]
    for row, run in zip(rows, runs):
        finals = [json.loads(line) for line in (out / "char_lm" / run / "population" /
                                                 "metrics.jsonl").read_text().splitlines()]
        last = [r for r in finals if r["step"] == 30]
        assert row["val_nats_mean"] == pytest.approx(sum(r["val_nats"] for r in last) / 2)
        assert row["loss_mean"] == pytest.approx(sum(r["loss"] for r in last) / 2)
    assert (out / "char_lm" / "compare_k" / "curves.png").stat().st_size > 0
    with pytest.raises(ValueError, match="--runs: expected a char_lm run directory"):
        char_lm_compare.compare(str(out), ["compare_k"], "again", ["seq_len"])
