"""experiments.harness.runtime: keep_host_memory's malloc thresholds and synchronous dispatch,
the compilation cache. (The page faults it saves are measured by `benchmarks.train_step`, its
"page faults/step" columns: machine-dependent numbers, not asserted here.)"""

import pathlib
import platform
import subprocess
import sys
import textwrap

import pytest

from experiments.harness import runtime

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


class _RecordingLibc:
    """Stands in for glibc: records mallopt(param, value) calls and accepts them (returns 1)."""

    def __init__(self):
        self.calls = []

    def mallopt(self, param, value):
        self.calls.append((param.value, value.value))
        return 1


@pytest.mark.parametrize("threshold", [1 << 20, runtime.HEAP_THRESHOLD_BYTES, 2**31 - 1])
def test_malloc_thresholds_set_mmap_and_trim_thresholds(monkeypatch, threshold):
    """mallopt(M_MMAP_THRESHOLD = -3, threshold), mallopt(M_TRIM_THRESHOLD = -1, 2 * threshold
    capped at the largest C int) (glibc malloc.h), whatever machine runs the test."""
    libc = _RecordingLibc()
    monkeypatch.setattr(runtime.platform, "system", lambda: "Linux")
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("glibc", "2.39"))
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: libc)
    assert runtime.set_malloc_thresholds(threshold) is True
    assert runtime.set_malloc_thresholds(threshold) is True  # idempotent: the same two settings
    expected = [(-3, threshold), (-1, min(2 * threshold, 2**31 - 1))]
    assert libc.calls == expected * 2


def test_malloc_thresholds_are_not_applied_without_glibc(monkeypatch):
    def no_c_library(name):
        raise AssertionError("no C library may be loaded without glibc")

    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("", ""))
    monkeypatch.setattr(runtime.ctypes, "CDLL", no_c_library)
    assert runtime.set_malloc_thresholds() is False


def test_a_refused_mallopt_is_reported(monkeypatch):
    libc = _RecordingLibc()
    libc.mallopt = lambda param, value: 0  # glibc returns 0 on error
    monkeypatch.setattr(runtime.platform, "system", lambda: "Linux")
    monkeypatch.setattr(runtime.platform, "libc_ver", lambda: ("glibc", "2.39"))
    monkeypatch.setattr(runtime.ctypes, "CDLL", lambda name: libc)
    assert runtime.set_malloc_thresholds() is False


@pytest.mark.parametrize("threshold", [0, -1, 2**31])
@pytest.mark.parametrize("setter", [runtime.keep_host_memory, runtime.set_malloc_thresholds])
def test_malloc_settings_reject_bad_threshold(setter, threshold):
    with pytest.raises(ValueError, match="threshold_bytes"):
        setter(threshold)


_ORDER_CHILD = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from experiments.harness import runtime
    print("applied", runtime.keep_host_memory(), runtime.keep_host_memory())
    print("async dispatch", jax.config.values["jax_cpu_enable_async_dispatch"])
    jnp.ones(3).block_until_ready()  # starts JAX's CPU backend
    try:
        runtime.keep_host_memory()
    except RuntimeError as error:
        print("late call:", error)
    """
)


@pytest.mark.slow  # a child process
def test_keep_host_memory_runs_steps_inline_and_must_come_first():
    """Dispatch is synchronous afterwards (steps allocate in glibc's main arena); a call after
    the first computation, when JAX no longer reads the setting, is an error, not a no-op."""
    result = subprocess.run([sys.executable, "-c", _ORDER_CHILD], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    # applied (glibc's mallopt accepted both thresholds) on glibc, twice: idempotent
    assert f"applied {GLIBC} {GLIBC}" in result.stdout
    assert "async dispatch False" in result.stdout
    assert "late call: keep_host_memory() must be called before the first JAX computation" \
        in result.stdout


_COMPILE_CHILD = textwrap.dedent(
    """
    import sys
    from experiments.harness import runtime
    runtime.enable_compilation_cache(sys.argv[1])
    import jax, jax.numpy as jnp
    print(float(jax.jit(lambda x: jnp.sum(jnp.tanh(x) ** 2))(jnp.arange(5.0))))
    """
)


@pytest.mark.slow  # two child processes
def test_compilation_cache_is_written_once_and_reused(tmp_path):
    directory = tmp_path / "nested" / "cache"

    def run_child():
        result = subprocess.run([sys.executable, "-c", _COMPILE_CHILD, str(directory)],
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-2000:]
        return result.stdout.strip(), sorted(path.name for path in directory.iterdir())

    value, entries = run_child()
    assert entries, "the first process wrote no compiled program"
    assert run_child() == (value, entries)  # same result; every program came from the cache


def test_compilation_cache_rejects_empty_directory():
    with pytest.raises(ValueError, match="compilation cache directory"):
        runtime.enable_compilation_cache("")


def _run_parity_quick(tmp_path, cache_dir) -> subprocess.CompletedProcess:
    """`python -m experiments.parity --quick` in a child process (through `flags.run`)."""
    command = [sys.executable, "-m", "experiments.parity", "--quick", "--cell=gru",
               f"--out_dir={tmp_path / 'runs'}", f"--compilation_cache_dir={cache_dir}"]
    repo_root = pathlib.Path(__file__).resolve().parents[3]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=repo_root)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "accuracy" in result.stdout
    return result


@pytest.mark.slow  # an experiment in a child process
def test_experiment_command_line_fills_the_compilation_cache(tmp_path):
    """`python -m experiments.parity` goes through `experiments.harness.driver.main`, which applies
    `--compilation_cache_dir` (and `--keep_host_memory`) before the first computation."""
    cache = tmp_path / "cache"
    _run_parity_quick(tmp_path, cache)
    assert any(cache.iterdir()), "no compiled program was written to --compilation_cache_dir"


@pytest.mark.slow  # an experiment in a child process
def test_experiment_runs_without_the_cache_when_its_directory_cannot_be_made(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = _run_parity_quick(tmp_path, blocker / "cache")
    assert "compilation cache off (--compilation_cache_dir)" in result.stderr
