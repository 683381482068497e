"""experiments.harness.runtime.keep_host_memory: XLA:CPU's per-call buffers stop page-faulting."""

import pathlib
import platform
import subprocess
import sys
import textwrap

import pytest

from experiments.harness import runtime

# A jitted scan whose stacked outputs are a 64 MB float32 temporary (above glibc's largest
# dynamic mmap threshold, 32 MB); prints the median minor page faults of a call after warm-up,
# in a fresh process (mallopt is process-wide).
_CHILD = textwrap.dedent(
    """
    import resource, sys
    from experiments.harness import runtime
    if sys.argv[1] == "keep":
        assert runtime.keep_host_memory()
    import jax, jax.numpy as jnp
    def f(x):
        _, ys = jax.lax.scan(lambda c, _: (jnp.tanh(c), c), x, None, length=64)
        return jnp.sum(ys * ys)
    f = jax.jit(f)
    x = jnp.full((512, 512), 0.01)
    faults = []
    for _ in range(12):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        f(x).block_until_ready()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(sorted(faults[3:])[4])  # the median call after three warm-up calls
    """
)


def _median_faults_per_call(mode: str) -> float:
    result = subprocess.run(
        [sys.executable, "-c", _CHILD, mode], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return float(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(
    platform.system() != "Linux" or platform.libc_ver()[0] != "glibc", reason="glibc only"
)
def test_keep_host_memory_removes_per_call_page_faults():
    default, kept = _median_faults_per_call("default"), _median_faults_per_call("keep")
    # 64 MB of fresh pages is 16,384 faults of 4 kB: the default pays them on every call. (Kept
    # memory is occasionally faulted in again, so the median call is compared.)
    assert default > 8000, default
    assert kept < 100, kept


@pytest.mark.parametrize("threshold", [0, -1, 2**31])
@pytest.mark.parametrize("setter", [runtime.keep_host_memory, runtime.set_malloc_thresholds])
def test_malloc_settings_reject_bad_threshold(setter, threshold):
    with pytest.raises(ValueError, match="threshold_bytes"):
        setter(threshold)


_ORDER_CHILD = textwrap.dedent(
    """
    import jax, jax.numpy as jnp
    from experiments.harness import runtime
    runtime.keep_host_memory()
    print("async dispatch", jax.config.values["jax_cpu_enable_async_dispatch"])
    jnp.ones(3).block_until_ready()  # starts JAX's CPU backend
    try:
        runtime.keep_host_memory()
    except RuntimeError as error:
        print("late call:", error)
    """
)


def test_keep_host_memory_runs_steps_inline_and_must_come_first():
    """Dispatch is synchronous afterwards (steps allocate in glibc's main arena); a call after
    the first computation, when JAX no longer reads the setting, is an error, not a no-op."""
    result = subprocess.run([sys.executable, "-c", _ORDER_CHILD], capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
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


def test_experiment_command_line_fills_the_compilation_cache(tmp_path):
    """`python -m experiments.parity` goes through `experiments.harness.driver.main`, which applies
    `--compilation_cache_dir` (and `--keep_host_memory`) before the first computation."""
    cache = tmp_path / "cache"
    _run_parity_quick(tmp_path, cache)
    assert any(cache.iterdir()), "no compiled program was written to --compilation_cache_dir"


def test_experiment_runs_without_the_cache_when_its_directory_cannot_be_made(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    result = _run_parity_quick(tmp_path, blocker / "cache")
    assert "compilation cache off (--compilation_cache_dir)" in result.stderr
