"""Run directories cannot be destroyed by accident: names, --overwrite, finished runs, atomic
metrics rewrites, one process per run directory, unusable --out_dir."""

import os
import pathlib
import signal
import subprocess
import sys
import textwrap

import pytest

from experiments.harness import driver, template
from experiments.parity import experiment as parity
from rnn_jax import training

ROOT = pathlib.Path(__file__).resolve().parents[3]


def files_of(root):
    """{relative path: bytes} of every file under `root` (lock files included)."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file()}


def two_runs(tmp_path):
    for name in ("a", "b"):
        run = training.Run.create(tmp_path, "parity", name, {"name": name})
        run.log({"step": 1, "loss": 1.0})
        run.close()
    (tmp_path / "keep.txt").write_text("not a run")
    return files_of(tmp_path)


@pytest.mark.parametrize("name", [".", "..", "", "a/b", "../parity", "x\0y"])
def test_a_run_name_that_is_not_one_path_component_deletes_nothing(tmp_path, name):
    before = two_runs(tmp_path)
    with pytest.raises(ValueError, match="expected the run name to be one path component"):
        training.Run.create(tmp_path, "parity", name, {}, overwrite=True)
    with pytest.raises(ValueError, match="expected the experiment name to be one path component"):
        training.Run.create(tmp_path / "parity", name or ".", "a", {}, overwrite=True)
    assert files_of(tmp_path) == before


@pytest.mark.parametrize("name", [".", ".."])
def test_run_name_flag_dot_and_dot_dot_are_flag_errors(tmp_path, name):
    before = two_runs(tmp_path)
    expected = rf"--run_name: expected one path component .*, received '{name}'"
    with pytest.raises(template.FlagError, match=expected):
        driver.call(parity.EXPERIMENT, ["--quick", f"--run_name={name}", "--overwrite",
                                       f"--out_dir={tmp_path}"])
    assert files_of(tmp_path) == before


def test_overwrite_removes_only_the_run_it_names_and_says_so(tmp_path, caplog):
    two_runs(tmp_path)
    b_before = files_of(tmp_path / "parity" / "b")
    (tmp_path / "parity" / "a2").mkdir()
    with caplog.at_level("WARNING"):
        run = training.Run.create(tmp_path, "parity", "a", {"new": 1}, overwrite=True)
    assert run.config() == {"new": 1} and run.metrics() == []
    assert f"--overwrite: removed the run directory {tmp_path / 'parity' / 'a'}" in caplog.text
    assert files_of(tmp_path / "parity" / "b") == b_before
    assert (tmp_path / "parity" / "a2").is_dir() and (tmp_path / "keep.txt").exists()
    assert sorted(p.name for p in (tmp_path / "parity").iterdir()) == ["a", "a2", "b"]


def test_overwrite_refuses_a_symbolic_link_and_leaves_its_target(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "precious.txt").write_text("data")
    (tmp_path / "out" / "parity").mkdir(parents=True)
    (tmp_path / "out" / "parity" / "link").symlink_to(elsewhere)
    with pytest.raises(training.RunDirectoryError, match="received a symbolic link; nothing"):
        training.Run.create(tmp_path / "out", "parity", "link", {}, overwrite=True)
    assert (elsewhere / "precious.txt").read_text() == "data"


@pytest.mark.slow  # an end-to-end experiment run
def test_a_finished_run_started_again_reports_it_and_changes_nothing(tmp_path, capsys):
    argv = ["--quick", "--steps=100", "--seq_len=3", "--lr=0.05", "--stop_at_success",
            "--success_accuracy=0.6", "--seeds=2", "--run_name=r", f"--out_dir={tmp_path}"]
    driver.call(parity.EXPERIMENT, argv)
    run_dir = tmp_path / "parity" / "r"
    first = training.Run(run_dir / "population").summary()
    assert [m["stopped"] for m in first["members"]] == ["target", "target"]
    assert first["stopped"] == "all members stopped" and first["steps"] < 100
    before = files_of(run_dir)
    capsys.readouterr()
    again = driver.call(parity.EXPERIMENT, argv)
    assert isinstance(again, training.RunFinished) and again.run.path == run_dir
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and f"run {run_dir} is already finished (1 populations trained)" in out[0]
    assert "--overwrite" in out[0] and "--run_name" in out[0]
    assert files_of(run_dir) == before  # not trained past its target, nothing rewritten
    driver.call(parity.EXPERIMENT, [*argv, "--overwrite"])  # trains again, from step 0
    replaced = training.Run(run_dir / "population").summary()
    assert replaced["steps"] == first["steps"] and replaced["wall_time_s"] != first["wall_time_s"]


@pytest.mark.slow  # an end-to-end experiment run
def test_an_interrupted_grid_keeps_its_finished_populations(tmp_path, monkeypatch):
    """A grid stopped after its first population: started again, that one is kept as it is
    and only the others train."""
    argv = ["--quick", "--steps=10", "--grid=seq_len=3,4", "--run_name=r", f"--out_dir={tmp_path}"]
    train_population = driver.train_population
    calls = []

    def second_is_interrupted(task, config, members, run):
        calls.append(config.seq_len)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return train_population(task, config, members, run)

    monkeypatch.setattr(driver, "train_population", second_is_interrupted)
    with pytest.raises(KeyboardInterrupt):
        driver.call(parity.EXPERIMENT, argv)
    first = files_of(tmp_path / "parity" / "r" / "seq_len3")
    monkeypatch.setattr(driver, "train_population", train_population)
    summary = driver.call(parity.EXPERIMENT, argv)
    assert files_of(tmp_path / "parity" / "r" / "seq_len3") == first
    assert [row["seq_len"] for row in summary["table"]] == [3, 4]


def test_a_kill_during_the_metrics_rewrite_loses_no_record(tmp_path, monkeypatch):
    run = training.Run.create(tmp_path, "x", "r", {})
    for step in (3, 6, 9, 12):
        run.log({"step": step, "loss": 1.0 / step})
    before = (run.path / training.METRICS).read_bytes()
    real_replace = os.replace

    def killed(src, dst):  # the process dies after the new file is written, before the rename
        if str(dst).endswith(training.METRICS):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", killed)
    with pytest.raises(KeyboardInterrupt):
        run.drop_metrics_after(6)
    assert (run.path / training.METRICS).read_bytes() == before  # every record still there
    monkeypatch.setattr(os, "replace", real_replace)
    assert [r["step"] for r in run.drop_metrics_after(6)] == [3, 6]
    assert [r["step"] for r in run.metrics()] == [3, 6]
    mtime = (run.path / training.METRICS).stat().st_mtime_ns
    run.drop_metrics_after(6)  # nothing to drop: the file is not rewritten
    assert (run.path / training.METRICS).stat().st_mtime_ns == mtime


def test_a_partial_last_line_is_skipped_then_repaired(tmp_path, caplog):
    run = training.Run.create(tmp_path, "x", "r", {})
    run.log({"step": 3, "loss": 0.5})
    with open(run.path / training.METRICS, "a") as f:
        f.write('{"step": 6, "lo')  # a kill in the middle of an append
    with caplog.at_level("WARNING"):
        assert run.metrics() == [{"step": 3, "loss": 0.5}]
    assert "skipped a partial last line" in caplog.text
    assert run.drop_metrics_after(10) == [{"step": 3, "loss": 0.5}]
    run.log({"step": 6, "loss": 0.25})
    assert [r["step"] for r in run.metrics()] == [3, 6]
    (run.path / training.METRICS).write_text('{"step": 1}\nnot json\n{"step": 2}\n')
    with pytest.raises(ValueError, match=r"metrics.jsonl line 2: expected one JSON object"):
        run.metrics()


HOLD = textwrap.dedent("""
    import os, sys, time
    from rnn_jax.training import run_lock
    run_lock.acquire(sys.argv[1])
    print(os.getpid(), flush=True)
    if sys.argv[2] == "die":
        os.kill(os.getpid(), 9)
    time.sleep(120)
""")


def hold_lock(directory, mode):
    process = subprocess.Popen([sys.executable, "-c", HOLD, str(directory), mode],
                               stdout=subprocess.PIPE, text=True)
    return process, process.stdout.readline().strip()


@pytest.mark.slow  # child processes hold the lock
def test_a_second_process_is_refused_and_a_dead_ones_lock_is_taken_over(tmp_path, caplog):
    run = training.Run.create(tmp_path, "x", "r", {"a": 1})
    run.log({"step": 1, "loss": 1.0})
    run.close()
    before = files_of(run.path)
    process, pid = hold_lock(run.path, "hold")
    try:
        assert pid.isdigit()
        for overwrite in (False, True):
            with pytest.raises(training.RunLockedError,
                               match=rf"{run.path} is in use by pid {pid} on .*one process per"):
                training.Run.create(tmp_path, "x", "r", {"a": 1}, overwrite=overwrite)
        assert files_of(run.path) == {**before, ".lock": files_of(run.path)[".lock"]}
    finally:
        process.kill()
        process.wait()
    process, pid = hold_lock(run.path, "die")
    assert process.wait() == -signal.SIGKILL
    assert pid in (run.path / training.LOCK).read_text()  # left behind by kill -9
    with caplog.at_level("WARNING"):
        again = training.Run.create(tmp_path, "x", "r", {"a": 1})
    assert f"taking over the lock of pid {pid}" in caplog.text
    assert again.metrics() == [{"step": 1, "loss": 1.0}]
    again.close()
    assert (run.path / training.LOCK).read_text() == ""  # a clean release empties it


def test_an_out_dir_that_is_a_file_is_a_clear_error(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    for out_dir in (a_file, a_file / "below"):
        with pytest.raises(template.FlagError, match=r"--out_dir: expected a directory that can be "
                                                   r"created and written, received .*is not a dir"):
            driver.call(parity.EXPERIMENT, ["--quick", f"--out_dir={out_dir}"])
        with pytest.raises(training.RunDirectoryError, match=r"expected a directory that can be "
                                                            "created and written, received"):
            training.Run.create(out_dir, "parity", "r", {})
    assert a_file.read_text() == "x"


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_a_read_only_out_dir_is_a_clear_error(tmp_path):
    read_only = tmp_path / "read_only"
    read_only.mkdir()
    read_only.chmod(0o500)
    try:
        with pytest.raises(template.FlagError, match="--out_dir: .*no permission to write in"):
            driver.call(parity.EXPERIMENT, ["--quick", f"--out_dir={read_only / 'runs'}"])
        with pytest.raises(training.RunDirectoryError, match="Permission denied"):
            training.Run.create(read_only, "parity", "r", {})
    finally:
        read_only.chmod(0o700)


@pytest.mark.slow  # an experiment in a child process
def test_the_command_line_prints_one_line_without_a_traceback(tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("x")
    done = subprocess.run([sys.executable, "-m", "experiments.parity", "--quick",
                           f"--out_dir={a_file}"], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--out_dir: expected a directory that can be created and written" in done.stderr
