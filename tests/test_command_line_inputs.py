"""Bad command-line inputs of every experiment, tried as a hostile user would: each is one line,
`--flag: expected X, received Y`, raised before any training (nothing compiled, nothing
written), and from the command line an exit status 1 with no traceback."""

import json
import os
import re
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from experiments import char_lm, long_memory, parity, summation, vanishing_gradients
from experiments import flags as shared
from rnn_jax import results, train
from rnn_jax.data import text

REPO = Path(__file__).resolve().parents[1]
MAINS = {"char_lm": char_lm, "parity": parity, "summation": summation,
         "long_memory": long_memory, "vanishing_gradients": vanishing_gradients}
TAIL_TEXT = "abcab " * 300 + "zzz!"  # 'z' and '!' only in the last 10 % (the validation text)


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict:
    """Small files and directories the bad inputs point at (made here, nothing shared)."""
    root = tmp_path_factory.mktemp("inputs")
    files = {"empty": b"", "binary": b"ab\x00\x01\x02" * 50, "latin1": "caf\xe9 ".encode(
        "latin-1") * 50, "two_chars": b"ab", "tiny": b"abcdefghij" * 3, "one_word": b"a" * 100,
             "words_at_the_end": b" " * 100 + b"a b c d e f"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "directory").mkdir()
    run = root / "run_without_checkpoints"  # a char_lm run directory that saved none
    run.mkdir()
    config = char_lm.Config(shared.TrainConfig(), "pydoc", "", "char", 10000, 0.1, "rnn", 1, 8,
                            0.0, 8, 0)
    (run / "config.json").write_text(json.dumps(results.to_jsonable(config)))
    text.save_vocabulary(text.Vocabulary(tuple(" ab")), run / "vocab.json")
    (run / "prime.txt").write_text("a")
    other = root / "parity_run"  # another experiment's run directory
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"train": {}, "target": "many_to_many"}))
    for name in ("vocab.json", "prime.txt"):
        (other / name).write_text((run / name).read_text())
    return {"root": root, **{name: root / name for name in [*files, "directory"]},
            "run": run, "other": other}


# (experiment, argv, flag, pattern the rest of the message must match). argv takes {name}
# placeholders from `paths`; every run also gets --quick and an empty --out_dir.
CASES = [
    # The text file.
    ("char_lm", ["--data_path={root}/missing.txt"], "data_path", r"missing.txt', which does not"),
    ("char_lm", ["--data_path={directory}"], "data_path", r"which is a directory"),
    ("char_lm", ["--data_path=/dev/null"], "data_path", r"which is a special file"),
    ("char_lm", ["--data_path={empty}"], "data_path", r"received the empty file"),
    ("char_lm", ["--data_path={binary}"], "data_path", r"binary file .* NUL byte at offset 2"),
    ("char_lm", ["--data_path={latin1}"], "data_path", r"not UTF-8 \(byte 0xe9 at offset 3\)"),
    ("char_lm", ["--data_path={two_chars}"], "data_path", r"long enough .*received 2 tokens"),
    ("char_lm", ["--data_path={one_word}", "--level=word"], "data_path",
     r"2 training and 2 validation words, received '1 and 1'"),
    ("char_lm", ["--data_path={words_at_the_end}", "--level=word"], "data_path",
     r"received '0 and 6'"),
    ("char_lm", ["--data_path={tiny}", "--batch=64"], "batch", r"at most 26 streams.*received 64"),
    ("char_lm", ["--data=bogus"], "data", r"a corpus among .*received 'bogus'"),
    ("char_lm", ["--data=tinyshakespeare", "--cache_dir={tiny}"], "cache_dir",
     r"a directory \(made if absent\), received '.*tiny'"),
    ("char_lm", ["--valid_fraction=0"], "valid_fraction", r"in \(0, 1\), received 0.0"),
    ("char_lm", ["--valid_fraction=1"], "valid_fraction", r"in \(0, 1\), received 1.0"),
    # Model and baselines.
    ("char_lm", ["--level=word", "--vocab_cap=1"], "vocab_cap", r">= 2 .*received 1"),
    ("char_lm", ["--model=window", "--window=0"], "window", r">= 1 .*received 0"),
    ("char_lm", ["--baselines", "--ngram_max=0"], "ngram_max", r">= 1, received 0"),
    # Flags used only after training: sampling and priming.
    ("char_lm", ["--prime=\u03a9"], "prime", r"vocabulary, received unknown chars \['\u03a9'\]"),
    ("char_lm", ["--data=hello", "--prime=x"], "prime", r"4-symbol .*unknown chars \['x'\]"),
    ("char_lm", ["--level=word", "--prime=  "], "prime", r"at least one word, received '  '"),
    ("char_lm", ["--sample_len=-1"], "sample_len", r">= 1, received -1"),
    ("char_lm", ["--sample_len=0"], "sample_len", r">= 1, received 0"),
    ("char_lm", ["--temperature=0"], "temperature", r"> 0, received 0.0"),
    ("char_lm", ["--temperature=-1"], "temperature", r"> 0, received -1.0"),
    ("char_lm", ["--temperature=inf"], "temperature", r"finite .*received inf"),
    ("char_lm", ["--top_k=-1"], "top_k", r">= 0 .*received -1"),
    # Sampling from a run directory.
    ("char_lm", ["--sample_only", "--checkpoint={root}/nope"], "checkpoint", r"not a directory"),
    ("char_lm", ["--sample_only", "--checkpoint={directory}"], "checkpoint",
     r"without config.json, vocab.json, prime.txt"),
    ("char_lm", ["--sample_only", "--checkpoint={other}"], "checkpoint", r"\(TypeError: .*\)"),
    ("char_lm", ["--sample_only", "--checkpoint={run}"], "checkpoint", r"which has none"),
    ("char_lm", ["--sample_only", "--checkpoint={run}", "--prime=c"], "prime",
     r"3-symbol vocabulary, received unknown chars \['c'\]"),
    ("char_lm", ["--sample_only", "--checkpoint={run}", "--temperature=0"], "temperature",
     r"received 0.0"),
    ("char_lm", ["--checkpoint={run}"], "checkpoint", r"without --sample_only .*received"),
    # parity.
    ("parity", ["--sweep", "--sweep_cells="], "sweep_cells", r"non-empty .*received ''"),
    ("parity", ["--sweep", "--sweep_cells=lstm,lstm"], "sweep_cells", r"'lstm,lstm'"),
    ("parity", ["--sweep", "--sweep_lengths="], "sweep_lengths", r"non-empty .*received ''"),
    ("parity", ["--sweep", "--sweep_lengths=4,4"], "sweep_lengths", r"repeats, received '4,4'"),
    ("parity", ["--sweep_lengths=0"], "sweep_lengths", r"positive integers, received '0'"),
    ("parity", ["--sweep_seeds=0"], "sweep_seeds", r"positive integer, received 0"),
    ("parity", ["--stop_at_success", "--eval_every=0"], "eval_every", r"received 0"),
    ("parity", ["--sweep", "--eval_every=0"], "eval_every", r"received 0"),
    ("parity", ["--lr=inf"], "lr", r"positive, finite learning rate, received inf"),
    ("parity", ["--clip=inf"], "clip", r"finite global norm .*received inf"),
    # summation.
    ("summation", ["--max_value=3000000000"], "max_value", r"exact in float32\), received 3000"),
    ("summation", ["--max_value=0"], "max_value", r">= 1, received 0"),
    # long_memory.
    ("long_memory", ["--cells="], "cells", r"non-empty list without repeats, received ''"),
    ("long_memory", ["--cells=lstm,lstm"], "cells", r"received 'lstm,lstm'"),
    ("long_memory", ["--cell=gru"], "cell", r"cells among .*received 'gru'"),
    ("long_memory", ["--report_only"], "report_only", r"finished runs .*received 'none'"),
    ("long_memory", ["--T=1"], "T", r">= 2, received 1"),
    ("long_memory", ["--eval_batch=0"], "eval_batch", r">= 1, received 0"),
    # vanishing_gradients.
    ("vanishing_gradients", ["--parts="], "parts", r"non-empty .*received ''"),
    ("vanishing_gradients", ["--parts=recall,recall"], "parts", r"received 'recall,recall'"),
    ("vanishing_gradients", ["--parts=plots"], "parts", r"parts among .*'plots'"),
    ("vanishing_gradients", ["--radii=a"], "radii", r"positive finite radii, received 'a'"),
    ("vanishing_gradients", ["--radii=inf"], "radii", r"received 'inf'"),
    ("vanishing_gradients", ["--radii=1,1"], "radii", r"repeats, received '1.0,1.0'"),
    ("vanishing_gradients", ["--recall_radii=-1"], "recall_radii", r"received '-1'"),
    ("vanishing_gradients", ["--recall_radii=x"], "recall_radii", r"received 'x'"),
    ("vanishing_gradients", ["--delays=1.5"], "delays", r"integer delays >= 0, received '1.5'"),
    ("vanishing_gradients", ["--delays="], "delays", r"non-empty .*received ''"),
    ("vanishing_gradients", ["--recall_eval_batch=0"], "recall_eval_batch", r"received 0"),
    ("vanishing_gradients", ["--clip_lr=inf"], "clip_lr", r"finite .*received inf"),
    ("vanishing_gradients", ["--parts=clipping", "--clip=0"], "clip", r"clipping.*received 0.0"),
]


def fill(argv: list[str], paths: dict) -> list[str]:
    return [arg.format(**paths) for arg in argv]


@pytest.mark.parametrize("experiment, argv, flag, pattern", CASES,
                         ids=[f"{c[0]}{''.join(c[1])}" for c in CASES])
def test_bad_input_is_one_line_before_any_training(experiment, argv, flag, pattern, paths,
                                                    tmp_path, monkeypatch):
    def training_started(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    for name in ("init_state", "make_train_step", "fit"):
        monkeypatch.setattr(train, name, training_started)
    monkeypatch.setattr(vanishing_gradients, "gradient_study", training_started)
    out = tmp_path / "out"
    with pytest.raises(shared.FlagError) as caught:
        shared.call_main(MAINS[experiment].main, ["--quick", f"--out_dir={out}",
                                                  *fill(argv, paths)])
    message = str(caught.value)
    assert re.fullmatch(rf"--{flag}: expected [^\n]+, received [^\n]+", message), message
    assert re.search(pattern, message), message
    assert not out.exists()  # no run directory made


@pytest.mark.parametrize("experiment, argv, flag", [
    ("char_lm", ["--data_path={binary}"], "data_path"),
    ("char_lm", ["--prime=\u03a9"], "prime"),
    ("char_lm", ["--sample_len=-1"], "sample_len"),
    ("long_memory", ["--cells="], "cells"),
    ("vanishing_gradients", ["--recall_eval_batch=0"], "recall_eval_batch"),
])
def test_command_line_prints_one_line_and_exits_1(experiment, argv, flag, paths, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", f"experiments.{experiment}", "--quick", f"--out_dir={out}",
         "--compilation_cache_dir=", *fill(argv, paths)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"--{flag}: expected ") and ", received " in line
    assert result.stdout == "" and not out.exists()


def test_no_network_names_data_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(shared.FlagError, match=r"^--data: could not download .*--data_path="):
        shared.call_main(char_lm.main, ["--quick", "--data=tinyshakespeare",
                                        f"--cache_dir={tmp_path}", f"--out_dir={tmp_path}"])


def test_a_character_only_in_the_validation_text_is_known(tmp_path):
    """The vocabulary comes from the whole text: a prime of characters that occur only in its
    last 10 % is accepted, and the train / validation split of the tokens is unchanged."""
    path = tmp_path / "tail.txt"
    path.write_text(TAIL_TEXT)
    shared.call_main(char_lm.main, [
        f"--data_path={path}", "--prime=z!", f"--out_dir={tmp_path / 'out'}", "--steps=2",
        "--batch=4", "--seq_len=8", "--hidden=8", "--embed=8", "--sample_len=5",
        "--log_every=1", "--eval_every=0", "--checkpoint_every=0"])
    (run_dir,) = (tmp_path / "out" / "char_lm").iterdir()
    assert json.loads((run_dir / "vocab.json").read_text())["tokens"] == sorted(set(TAIL_TEXT))
    assert (run_dir / "sample.txt").read_text().startswith("z!")
    summary = json.loads((run_dir / "summary.json").read_text())
    cut = round(len(TAIL_TEXT) * 0.9)
    assert "z" not in TAIL_TEXT[:cut]  # the case this test is about
    assert (summary["train_tokens"], summary["valid_tokens"]) == (cut, len(TAIL_TEXT) - cut)
