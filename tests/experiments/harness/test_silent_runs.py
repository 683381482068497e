"""Nothing silent in the run directory and the experiment harness: Ctrl-C, a full disk,
--report_only on a stopped run, moved runs and added flags, corrupt config.json, `~` in paths,
long run names, validation linear in --seeds, and the loop's progress line."""

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from experiments.harness import driver, template
from experiments.parity import experiment as parity
from rnn_jax import training
from rnn_jax.training import population

ROOT = Path(__file__).resolve().parents[3]
QUICK = ["--quick", "--hidden=4", "--seq_len=3", "--test_seq_len=4", "--batch=8",
         "--steps=6", "--log_every=3", "--eval_every=3"]


def _rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl without the wall-clock times."""
    return [{k: v for k, v in r.items() if k != "wall_s"} for r in training.read_metrics(run_dir)]


def _child(argv: list[str], **kwargs) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "JAX_PLATFORMS": "cpu"}
    return subprocess.Popen([sys.executable, *argv], cwd=ROOT, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,  # Ctrl-C on, even
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
                            **kwargs)  # under a shell that started the tests in the background


def _outcomes(run: training.Run) -> list[dict]:
    return [{**m, "final": {k: v for k, v in m["final"].items() if k != "wall_s"}}
            for m in run.summary()["members"]]


@pytest.mark.slow  # experiments in child processes
def test_ctrl_c_says_where_it_stopped_and_the_same_command_resumes_exactly(tmp_path):
    cache = tmp_path / "xla"
    flags = ["-m", "experiments.parity", "--quick", "--steps=800", "--seeds=2",
             "--log_every=10", "--eval_every=1000", "--checkpoint_every=20", "--run_name=r",
             f"--compilation_cache_dir={cache}"]
    interrupted = _child([*flags, f"--out_dir={tmp_path / 'a'}"])
    metrics = tmp_path / "a" / "parity" / "r" / "population" / training.METRICS
    deadline = time.monotonic() + 300
    while not (metrics.exists() and len(metrics.read_text().splitlines()) >= 10):
        assert interrupted.poll() is None, interrupted.communicate()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    interrupted.send_signal(signal.SIGINT)
    _, err = interrupted.communicate(timeout=120)
    assert interrupted.returncode == 130, err
    assert "Traceback" not in err and "KeyboardInterrupt" not in err
    line = err.strip().splitlines()[-1]
    assert line.startswith(f"interrupted: {tmp_path / 'a' / 'parity' / 'r' / 'population'} "
                           "stopped after step "), line
    assert "a restart resumes from its checkpoint at step " in line, line
    assert line.endswith("To resume, run the same command again: " + " ".join(
        [sys.executable, *flags, f"--out_dir={tmp_path / 'a'}"])), line
    stopped = training.Run(tmp_path / "a" / "parity" / "r" / "population")
    assert not stopped.finished
    assert not list(stopped.checkpoint_dir.glob("*orbax-checkpoint-tmp*"))

    for out in ("a", "b"):  # resume with the same command; "b": never interrupted
        child = _child([*flags, f"--out_dir={tmp_path / out}"])
        _, err = child.communicate(timeout=600)
        assert child.returncode == 0, err
    resumed, plain = (training.Run(tmp_path / o / "parity" / "r" / "population") for o in "ab")
    assert resumed.summary()["resumed_from_step"] > 0
    assert _rows(resumed.path) == _rows(plain.path)
    assert _outcomes(resumed) == _outcomes(plain)


def test_an_interrupted_or_failed_checkpoint_write_leaves_no_temporary_directory(
        tmp_path, monkeypatch):
    state = {"w": jnp.arange(3.0), "step": jnp.zeros((), jnp.int32)}
    saver = training.Checkpointer(tmp_path / "checkpoints")
    saver.save(state, step=1)
    original = saver._manager.save

    def half_written(step, **kwargs):  # orbax's partial directory, then the fault
        (saver.directory / f"{step}.orbax-checkpoint-tmp-1234" / "arrays").mkdir(parents=True)
        raise fault

    monkeypatch.setattr(saver._manager, "save", half_written)
    for fault, caught in ((KeyboardInterrupt(), KeyboardInterrupt),
                          (ValueError("RESOURCE_EXHAUSTED: Error writing local file: No space "
                                      "left on device [os_error_code='28']"),
                           training.CheckpointWriteError)):
        with pytest.raises(caught) as raised:
            saver.save(state, step=2)
        assert sorted(p.name for p in saver.directory.iterdir()) == ["1"]
    assert raised.value.errno == errno.ENOSPC and "no space left on device" in str(raised.value)
    monkeypatch.setattr(saver._manager, "save", original)
    saver.close()
    # one left by a killed process is removed when the directory is opened again
    (tmp_path / "checkpoints" / "7.orbax-checkpoint-tmp-99" / "arrays").mkdir(parents=True)
    reopened = training.Checkpointer(tmp_path / "checkpoints")
    assert sorted(p.name for p in reopened.directory.iterdir()) == ["1"]
    assert reopened.all_steps() == [1]
    reopened.close()


FULL_DISK = """
import errno, sys
from experiments.harness import driver
from experiments.parity import experiment as parity
from rnn_jax import training
real_log = training.Run.log
def log(self, record):
    if record["step"] >= 6:
        raise OSError(errno.ENOSPC, "No space left on device", str(self.path / "metrics.jsonl"))
    real_log(self, record)
training.Run.log = log
sys.argv = ["experiments.parity", *sys.argv[1:]]
driver.main(parity.EXPERIMENT)
"""


@pytest.mark.slow  # an experiment in a child process
def test_a_full_disk_is_one_error_line_that_says_how_to_resume(tmp_path):
    script = tmp_path / "full_disk.py"
    script.write_text(textwrap.dedent(FULL_DISK))
    child = _child([str(script), *QUICK, "--steps=9", "--seeds=2", f"--out_dir={tmp_path}",
                    "--compilation_cache_dir=", "--run_name=r"])
    _, err = child.communicate(timeout=300)
    assert child.returncode == 1, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if not line.startswith(("I", "W"))]
    assert len(errors) == 1, err
    assert errors[0].startswith("error: No space left on device: "
                                f"{tmp_path / 'parity' / 'r' / 'population' / 'metrics.jsonl'}")
    assert errors[0].endswith(f"run the same command again to resume: {sys.executable} {script} "
                              + " ".join(child.args[2:]))


def _stopped_grid(tmp_path, monkeypatch) -> list[str]:
    """A two-population run stopped by an error while training the second."""
    argv = [*QUICK, "--grid=seq_len=3,4", "--run_name=g", f"--out_dir={tmp_path}"]
    real = driver.train_population
    calls = []

    def stop_in_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(driver, "train_population", stop_in_second)
    with pytest.raises(KeyboardInterrupt):
        driver.call(parity.EXPERIMENT, argv)
    monkeypatch.setattr(driver, "train_population", real)
    return argv


@pytest.mark.slow  # an end-to-end experiment run
def test_report_only_on_a_stopped_run_says_it_is_unfinished_and_how_to_finish(
        tmp_path, monkeypatch):
    argv = _stopped_grid(tmp_path, monkeypatch)
    with pytest.raises(template.FlagError, match=r"--report_only: expected a finished run, "
                       r"received .* with 1 of 2 populations unfinished \(seq_len4\).*run the "
                       r"same command without --report_only"):
        driver.call(parity.EXPERIMENT, [*argv, "--report_only"])
    driver.call(parity.EXPERIMENT, argv)  # finishing it: then the report is drawn
    assert driver.call(parity.EXPERIMENT, [*argv, "--report_only"])


def test_a_moved_run_directory_resumes_and_is_recognised_as_finished(tmp_path, monkeypatch):
    argv = _stopped_grid(tmp_path / "first", monkeypatch)
    shutil.move(tmp_path / "first" / "parity", tmp_path / "second" / "parity")
    moved = [a if not a.startswith("--out_dir") else f"--out_dir={tmp_path / 'second'}"
             for a in argv]
    first = training.Run(tmp_path / "second" / "parity" / "g" / "seq_len3").summary()
    summary = driver.call(parity.EXPERIMENT, moved)  # resumes: the finished population is kept
    assert summary["finished"] and summary["populations"] == 2
    assert training.Run(tmp_path / "second" / "parity" / "g" / "seq_len3").summary() == first
    finished = driver.call(parity.EXPERIMENT, moved)
    assert isinstance(finished, training.RunFinished)
    assert not (tmp_path / "first" / "parity").exists()


def test_a_flag_added_at_its_default_keeps_old_runs_and_a_change_is_refused_kindly(tmp_path):
    argv = [*QUICK, "--run_name=r", f"--out_dir={tmp_path}"]
    driver.call(parity.EXPERIMENT, argv)
    for path in (tmp_path / "parity" / "r").rglob(training.CONFIG):  # as written before the
        config = json.loads(path.read_text())                       # flag existed
        del config["success_accuracy"]
        for member in config.get("members", []):
            del member["lr"]
        path.write_text(json.dumps(config))
    assert isinstance(driver.call(parity.EXPERIMENT, argv), training.RunFinished)
    with pytest.raises(ValueError) as refused:
        driver.call(parity.EXPERIMENT, [*argv, "--success_accuracy=0.9"])
    message = str(refused.value)
    assert "success_accuracy: '(absent)' -> 0.9" in message
    assert message.index("choose another --run_name") < message.index("--overwrite would "
                                                                       "delete it")


@pytest.mark.parametrize("text", ["", "{not json", "[1, 2]"])
def test_an_empty_or_corrupt_config_json_names_the_file(tmp_path, text):
    run = training.Run.create(tmp_path, "x", "r", {"lr": 0.1})
    run.close()
    (run.path / training.CONFIG).write_text(text)
    with pytest.raises(training.RunDirectoryError, match=(
            rf"{run.path / training.CONFIG}: expected the run's config: an object of flag "
            r"values(?: \(JSON\))?, received")):
        training.Run.create(tmp_path, "x", "r", {"lr": 0.1})


def test_a_tilde_in_path_flags_is_the_home_directory(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    config = driver.parse(parity.EXPERIMENT, [*QUICK, "--out_dir=~/runs", "--figures_dir=~/figs"])
    assert (config.out_dir, config.figures_dir) == (str(tmp_path / "home" / "runs"),
                                                    str(tmp_path / "home" / "figs"))
    driver.call(parity.EXPERIMENT, [*QUICK, "--out_dir=~/runs", "--run_name=r"])
    assert (tmp_path / "home" / "runs" / "parity" / "r" / training.SUMMARY).exists()
    assert not (tmp_path / "~").exists()


def test_validating_many_seeds_builds_the_seed_list_a_bounded_number_of_times(monkeypatch):
    calls = []
    real = template.seeds_of
    monkeypatch.setattr(template, "seeds_of", lambda config: calls.append(1) or real(config))
    config = driver.parse(parity.EXPERIMENT, ["--quick", "--seeds=5000", "--grid=lr=0.01,0.02"])
    calls.clear()
    plan = template.expand(config)
    assert sum(len(members) for _, members in plan) == 10_000
    assert len(calls) <= 6  # not one per member


def test_a_run_name_over_the_file_system_limit_is_one_clear_error(tmp_path):
    with pytest.raises(template.FlagError, match=r"--run_name: expected at most 255 bytes .*, "
                       r"received '300 bytes"):
        driver.parse(parity.EXPERIMENT, ["--quick", "--run_name=" + "a" * 300])
    with pytest.raises(ValueError, match=r"expected the run name to be at most 255 bytes"):
        training.Run.create(tmp_path, "x", "é" * 128, {})  # 256 bytes in UTF-8
    assert training.Run.create(tmp_path, "x", "a" * 255, {}).path.is_dir()


def test_the_progress_line_counts_training_solved_and_diverged_members_and_time_left(caplog):
    def loss_fn(w, x, key, stream):
        return jnp.mean((w - x) ** 2), ({}, stream)

    optimizer = optax.sgd(1e-3)
    members = jax.vmap(lambda w: training.init_state(w, optimizer, jax.random.key(0)))(
        jnp.array([0.0, 5.0, 5.0]))
    state = population.create(members)

    def get_batch(step):  # member 2's data turns NaN at step 4: it diverges
        return jnp.array([0.0, 0.0, np.nan if step >= 4 else 0.0])

    with caplog.at_level("INFO", logger="absl"):
        training.fit(state, training.make_train_step(loss_fn, optimizer), get_batch, num_steps=8,
                  log_every=2, target=("loss", 1e-6, "<="))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("step ")]
    assert "3 members: 2 training, 1 solved, 0 diverged" in lines[0], lines  # member 0 at once
    assert "3 members: 1 training, 1 solved, 1 diverged" in lines[-1], lines
    assert all(" steps/s, " in line and line.endswith(" left") for line in lines), lines
