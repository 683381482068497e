"""Bad command-line inputs of every experiment, tried as a hostile user would: each is one line,
`--flag: expected X, received Y` (`template.FlagError`), raised before any training (nothing
compiled, nothing written) and, from the real command line, exit status 1 with no traceback.

One table across experiments: the template's inputs (--seeds, --grid, the memory check) for
every experiment, then combinations and values each experiment adds. Other single-flag checks
asserted in tests/experiments/harness/test_template.py and tests/experiments/test_*.py are not
repeated here.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import jax
import pytest

from experiments.char_lm import data as char_lm_data
from experiments.char_lm import experiment as char_lm
from experiments.harness import driver, template
from experiments.harness.population_state import init_population
from experiments.harness.records import Task
from experiments.long_memory import experiment as long_memory
from experiments.parity import experiment as parity
from experiments.summation import experiment as summation
from experiments.vanishing_gradients import experiment as vanishing_gradients
from rnn_jax import training
from rnn_jax.data import text
from rnn_jax.training import Checkpointer

REPO = Path(__file__).resolve().parents[2]
MODULES = {"char_lm": char_lm, "parity": parity, "summation": summation,
           "long_memory": long_memory, "vanishing_gradients": vanishing_gradients}
TAIL_TEXT = "abcab " * 300 + "zzz!"  # 'z' and '!' only in the last 10 % (the validation text)
SMALL = char_lm.Config(hidden=8, embed=4, batch=2, seq_len=4)  # the fake populations' model


def fake_population(path: Path, config_json: dict, checkpoint: bool) -> None:
    """A population directory as char_lm writes it: config.json (`config_json` and one member),
    vocabulary ' ab', prime 'a', and (if `checkpoint`) the step-0 state of `SMALL`'s member,
    saved without training."""
    path.mkdir()
    config = SMALL
    members = [{"seed": 0, "lr": config.lr, "clip": config.clip, "weight_decay": 0.0}]
    (path / "config.json").write_text(json.dumps({**config_json, "members": members}))
    text.save_vocabulary(text.Vocabulary(tuple(" ab")), path / "vocab.json")
    (path / "prime.txt").write_text("a")
    if checkpoint:
        model = char_lm_data.build_model(config, 3)
        task = Task(init=model.init, loss_fn=None,
                                sample=None, stream=lambda p: model.initial_stream(p, 2))
        state = jax.jit(lambda: init_population(task, config, members)[0])()
        checkpointer = Checkpointer(path / "checkpoints")
        checkpointer.save(state, step=1)
        checkpointer.close()


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict:
    """Small files and a directory the bad inputs point at (made here, nothing shared)."""
    root = tmp_path_factory.mktemp("inputs")
    files = {"empty": b"", "binary": b"ab\x00\x01\x02" * 50, "latin1": "caf\xe9 ".encode(
        "latin-1") * 50, "two_chars": b"ab", "tiny": b"abcdefghij" * 3, "one_word": b"a" * 100,
             "words_at_the_end": b" " * 100 + b"a b c d e f"}
    for name, data in files.items():
        (root / name).write_bytes(data)
    (root / "directory").mkdir()
    return {"root": root, **{name: root / name for name in [*files, "directory"]}}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> dict:
    """char_lm population directories for --sample_only (made only for the cases using them)."""
    root = tmp_path_factory.mktemp("runs")
    fake_population(root / "run", template.config_json(SMALL), checkpoint=True)
    fake_population(root / "run_without_checkpoints", template.config_json(SMALL),
                    checkpoint=False)
    # Another experiment's population: parity's config.json next to a char_lm checkpoint.
    fake_population(root / "parity_run", template.config_json(parity.Config()), checkpoint=False)
    shutil.copytree(root / "run" / "checkpoints", root / "parity_run" / "checkpoints")
    return {"runs": root, **{name: root / name for name in ["run", "run_without_checkpoints",
                                                            "parity_run"]}}


# (experiment, argv, flag, pattern the message must match). argv takes {name} placeholders
# from `paths` and `runs`; every run also gets --quick and an empty --out_dir.
WRONG_TYPE = {"parity": "test_seq_len=long", "summation": "max_value=nine",
              "vanishing_gradients": "delay=1.5", "long_memory": "paper_sizes=maybe",
              "char_lm": "dropout=high"}
TOO_BIG = {"parity": [], "summation": ["--task=compare"], "long_memory": [],
           "vanishing_gradients": ["--part=recall"], "char_lm": []}  # with --hidden=10**6
CASES = [
    # The template, for every experiment: seeds, grids, the population's memory.
    *[case for name in MODULES for case in [
        (name, ["--seeds=0"], "seeds", r"a positive count or a list .*, received '0'$"),
        (name, ["--grid=learning_rate=0.1,0.2"], "grid",
         r"a config field \(.*\blr\b.*\), received 'learning_rate'$"),
        (name, [f"--grid={WRONG_TYPE[name]}"], WRONG_TYPE[name].split("=")[0],
         rf"(int|float|bool) values, received '{WRONG_TYPE[name].split('=')[1]}'$"),
        (name, ["--grid="], "grid", r"name=v1,v2,\.\.\. with at least one value, received ''$"),
        (name, ["--hidden=1000000", *TOO_BIG[name]], "seeds",
         r"a population that fits in memory \(.* GiB here\), received '1 members, estimated "
         r"\d+\.\d GiB; use fewer --seeds or grid values'$"),
    ]],
    ("parity", ["--seeds=3", "--grid=lr=0.1,0.2", "--batch=10000000", "--seq_len=1000"],
     "seeds", r"received '6 members, estimated"),  # the members of the grid count
    ("parity", ["--grid=seed=1,2"], "grid",  # seed is --seeds' business: not listed
     r"a config field \((?![^)]*\bseed\b).*\), received 'seed'$"),
    ("summation", ["--steps=ten"], "steps", r"a value of type int, received 'ten'$"),
    ("long_memory", ["--task=multiply"], "task", r"one of copying, adding, received 'multiply'$"),
    # Shared values, each tried once.
    ("parity", ["--lr=inf"], "lr", r"positive, finite learning rate, received inf$"),
    ("parity", ["--clip=inf"], "clip", r"finite global norm .*received inf$"),
    ("summation", ["--weight_decay=-1"], "weight_decay", r"finite value >= 0, received -1\.0$"),
    ("long_memory", ["--lr_schedule=warmup_cosine", "--warmup_steps=20"], "warmup_steps",
     r"fewer than --steps=20, received 20$"),
    ("vanishing_gradients", ["--run_name=../elsewhere"], "run_name",
     r"one path component .*received '\.\./elsewhere'$"),
    ("summation", ["--out_dir={empty}/out"], "out_dir", r"empty/out \(.*empty is not a "
                                                          r"directory\)'$"),
    ("summation", ["--report_only"], "report_only", r"an existing run directory, received"),
    ("char_lm", ["stray"], "argv", r"only --flags, received \['stray'\]$"),
    # parity.
    ("parity", ["--success_accuracy=1.5"], "success_accuracy", r"\(0\.5, 1\], received 1\.5$"),
    ("parity", ["--eval_every=0", "--grid=stop_at_success=false,true"], "eval_every",
     r"positive interval with --stop_at_success .*received 0$"),  # one grid value is bad
    # summation.
    ("summation", ["--test_seq_len=2000000"], "max_value",
     r"integer <= 8 \(sums of 2000000 values exact in float32\), received 9$"),
    ("summation", ["--success_error=inf"], "success_error", r"positive, finite error, "
                                                            r"received inf$"),
    ("summation", ["--task=compare", "--success_accuracy=1.5"], "success_accuracy",
     r"received 1\.5$"),
    # long_memory.
    ("long_memory", ["--paper_sizes", "--grid=cell=lstm,gru"], "cell",
     r"one of \['irnn', 'lstm', 'urnn', 'vanilla'\] with --paper_sizes, received 'gru'$"),
    ("long_memory", ["--cell=urnn", "--grid=clip=0,1"], "clip",  # a member's value
     r"0 for --cell=urnn .*received 1\.0$"),
    # vanishing_gradients.
    ("vanishing_gradients", ["--radii="], "radii", r"distinct positive finite radii, "
                                                   r"received ''$"),
    ("vanishing_gradients", ["--radii=1,inf"], "radii", r"received '1\.0,inf'$"),
    ("vanishing_gradients", ["--part=recall", "--grid=delay=2,-1"], "delay",
     r"integer delay >= 0, received -1$"),
    ("vanishing_gradients", ["--part=clipping", "--log_every=1", "--grid=clip=0.5,1"], "grid",
     r"clip=0,<norm> with --part=clipping .*received \['clip=0\.5,1'\]$"),
    ("vanishing_gradients", ["--num_symbols=2", "--success_accuracy=0.5"], "success_accuracy",
     r"\(1 / num_symbols, 1\], received 0\.5$"),
    # char_lm: the text file.
    ("char_lm", ["--data_path={root}/missing.txt"], "data_path", r"missing.txt', which does not"),
    ("char_lm", ["--data_path={directory}"], "data_path", r"which is a directory$"),
    ("char_lm", ["--data_path=/dev/null"], "data_path", r"which is a special file$"),
    ("char_lm", ["--data_path={empty}"], "data_path", r"received the empty file '.*empty'$"),
    ("char_lm", ["--data_path={binary}"], "data_path", r"binary file .* NUL byte at offset 2\)$"),
    ("char_lm", ["--data_path={latin1}"], "data_path", r"not UTF-8 \(byte 0xe9 at offset 3\)$"),
    ("char_lm", ["--data_path={two_chars}"], "data_path", r"long enough .*received 2 tokens$"),
    ("char_lm", ["--data_path={one_word}", "--level=word"], "data_path",
     r"2 training and 2 validation words, received '1 and 1'$"),
    ("char_lm", ["--data_path={words_at_the_end}", "--level=word"], "data_path",
     r"received '0 and 6'$"),
    ("char_lm", ["--data_path={tiny}", "--batch=64"], "batch", r"at most 26 streams.*"
                                                               r"received 64$"),
    ("char_lm", ["--data=tinyshakespeare", "--cache_dir={tiny}"], "cache_dir",
     r"a directory \(made if absent\), received '.*tiny'$"),
    ("char_lm", ["--valid_fraction=0"], "valid_fraction", r"in \(0, 1\), received 0\.0$"),
    # char_lm: sampling and priming (checked before training).
    ("char_lm", ["--prime=\u03a9"], "prime", r"vocabulary, received unknown chars \['\u03a9'\]"),
    ("char_lm", ["--data=hello", "--batch=1", "--prime=x"], "prime",
     r"4-symbol .*unknown chars \['x'\]"),
    ("char_lm", ["--level=word", "--prime=  "], "prime", r"at least one word, received '  '$"),
    ("char_lm", ["--sample_len=-1"], "sample_len", r">= 1, received -1$"),
    ("char_lm", ["--temperature=-1"], "temperature", r"> 0, received -1\.0$"),
    ("char_lm", ["--temperature=inf"], "temperature", r"finite .*received inf$"),
    # char_lm: --sample_only from a population directory.
    ("char_lm", ["--sample_only", "--checkpoint={run_without_checkpoints}"], "checkpoint",
     r"saved checkpoint .*received '.*run_without_checkpoints', which has none$"),
    ("char_lm", ["--sample_only", "--checkpoint={run}", "--prime=c"], "prime",
     r"3-symbol vocabulary, received unknown chars \['c'\]"),
    ("char_lm", ["--sample_only", "--checkpoint={run}", "--sample_member=1"], "sample_member",
     r"a member of the 1 in .*run, received 1$"),
    ("char_lm", ["--sample_only", "--checkpoint={runs}"], "checkpoint",
     r"with 3 populations \(parity_run, run, run_without_checkpoints\); name one$"),
    ("char_lm", ["--sample_only", "--checkpoint={parity_run}"], "checkpoint",
     r"a char_lm population's config.json, received .*parity_run.*KeyError: 'no "),
]


def fill(argv: list[str], request) -> list[str]:
    """`argv` with its {placeholders} filled from the fixtures `paths` (and `runs` if used)."""
    values = request.getfixturevalue("paths")
    if any("{run" in arg or "{parity_run" in arg for arg in argv):
        values = {**values, **request.getfixturevalue("runs")}
    return [arg.format(**values) for arg in argv]


def case_id(case) -> str:
    values = case.values if hasattr(case, "values") else case
    return f"{values[0]}{''.join(values[1])}"


@pytest.mark.parametrize("experiment, argv, flag, pattern", CASES, ids=map(case_id, CASES))
def test_bad_input_is_one_line_before_any_training(experiment, argv, flag, pattern, request,
                                                    tmp_path, monkeypatch):
    def training_started(*args, **kwargs):
        raise AssertionError("training started before the bad input was reported")

    for name in ("make_train_step", "fit"):
        monkeypatch.setattr(training, name, training_started)
    monkeypatch.setattr(vanishing_gradients.norms, "measure", training_started)
    out = tmp_path / "out"
    with pytest.raises(template.FlagError) as caught:
        driver.call(MODULES[experiment].EXPERIMENT, ["--quick", f"--out_dir={out}",
                                               *fill(argv, request)])
    message = str(caught.value)
    assert re.fullmatch(rf"--{flag}: expected [^\n]+, received [^\n]+", message), message
    assert re.search(pattern, message), message
    assert not out.exists()  # no run directory made


@pytest.mark.slow  # child processes
@pytest.mark.parametrize("experiment, argv, flag", [
    ("char_lm", ["--data_path={binary}"], "data_path"),
    ("parity", ["--seeds=0"], "seeds"),
    ("vanishing_gradients", ["--part=recall", "--grid=delay=2,-1"], "delay"),
    ("summation", ["--task=compare", "--hidden=1000000"], "seeds"),  # JAX started: no log
    ("long_memory", ["--task=multiply"], "task"),  # absl's parse errors in the same form
    ("summation", ["--steps=ten"], "steps"),
])
def test_command_line_prints_one_line_and_exits_1(experiment, argv, flag, request, tmp_path):
    out = tmp_path / "out"
    result = subprocess.run(
        [sys.executable, "-m", f"experiments.{experiment}", "--quick", f"--out_dir={out}",
         "--compilation_cache_dir=", *fill(argv, request)],
        cwd=REPO, capture_output=True, text=True, timeout=300,
        env={**{k: v for k, v in os.environ.items() if k != "JAX_PLATFORMS"},
             "PYTHONPATH": str(REPO)},
    )
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, lines
    (line,) = lines
    assert line.startswith(f"--{flag}: expected ") and ", received " in line
    assert result.stdout == "" and not out.exists()


def test_no_network_names_data_path(tmp_path, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(template.FlagError, match=r"^--data: could not download .*--data_path="):
        driver.call(char_lm.EXPERIMENT, ["--quick", "--data=tinyshakespeare",
                                   f"--cache_dir={tmp_path / 'cache'}",
                                   f"--out_dir={tmp_path / 'out'}"])
    assert not (tmp_path / "out").exists()


@pytest.mark.slow  # an end-to-end experiment run
def test_a_character_only_in_the_validation_text_is_known(tmp_path):
    """The vocabulary comes from the whole text: a prime of characters that occur only in its
    last 10 % is accepted, and the train / validation split of the tokens is unchanged."""
    path = tmp_path / "tail.txt"
    path.write_text(TAIL_TEXT)
    driver.call(char_lm.EXPERIMENT, [
        f"--data_path={path}", "--prime=z!", f"--out_dir={tmp_path / 'out'}", "--steps=2",
        "--batch=4", "--seq_len=8", "--hidden=8", "--embed=8", "--sample_len=5",
        "--log_every=1", "--eval_every=0", "--checkpoint_every=2"])
    (pop_dir,) = (tmp_path / "out" / "char_lm").glob("*/population")
    assert json.loads((pop_dir / "vocab.json").read_text())["tokens"] == sorted(set(TAIL_TEXT))
    assert (pop_dir / "sample.txt").read_text().startswith("z!")
    cut = round(len(TAIL_TEXT) * 0.9)
    assert "z" not in TAIL_TEXT[:cut]  # the case this test is about
    split = char_lm_data.load_split(driver.parse(char_lm.EXPERIMENT, [f"--data_path={path}"]))
    assert (len(split.train_ids), len(split.valid_ids)) == (cut, len(TAIL_TEXT) - cut)
