"""Process-wide settings for fast training steps: the programs' choice (the experiments' entry
point applies them), never the library's.

`keep_host_memory()`: XLA:CPU's per-step buffers stop page-faulting (below).
`enable_compilation_cache(directory)`: compiled programs are kept on disk, so a second run of
the same experiment (a resume, a sweep, a re-run with the same shapes) skips XLA compilation.
Results are unchanged by either.

Why `keep_host_memory` helps: XLA:CPU allocates a step's temporaries afresh on every call
(`[time, batch, 4*hidden]` gate activations, deltas, ...). glibc serves blocks above its mmap
threshold with fresh `mmap`ed pages and unmaps them on `free`, so every step touches new pages
and pays one page fault per page. With JAX's asynchronous CPU dispatch the step runs on a
worker thread, whose malloc arena has a small per-heap cap, so large blocks are mmapped there
whatever the threshold.

`keep_host_memory()` (1) tells glibc to keep freed memory: blocks up to `threshold_bytes`
come from the heap, and the heap top is not trimmed below twice that; (2) turns off JAX's
asynchronous dispatch on CPU (`jax_cpu_enable_async_dispatch`), so each computation runs on
the calling thread, i.e. in glibc's main arena, which has no such cap. Steps then reuse pages
that are already mapped. Capping glibc at one arena instead of (2) also stops the faults, but
makes XLA's parallel compilation (and any other threaded library in the process) contend for
that arena. The threshold is a trade: too small and a large step's blocks are still mapped
afresh; too large and fragmentation of the kept heap raises the peak memory of long chunked-
remat runs. The costs otherwise: resident memory stays at its peak instead of shrinking
between steps, and Python no longer runs ahead of the computation (a training loop prepares
the next batch after the step, not during it; cheap for in-memory batches). The experiments'
command-line entry points apply it (`--keep_host_memory`, default on). The measurements behind
these choices are in `benchmarks/README.md`.
"""

import ctypes
import ctypes.util
import os
import platform

import jax

from rnn_jax import jax_state

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3

HEAP_THRESHOLD_BYTES = 1 << 29  # blocks up to this many bytes stay in the heap


def _check_threshold(threshold_bytes: int) -> None:
    if not 0 < threshold_bytes < 2**31:
        raise ValueError("expected 0 < threshold_bytes < 2**31 (a C int), received "
                         f"{threshold_bytes}")


def set_malloc_thresholds(threshold_bytes: int = HEAP_THRESHOLD_BYTES) -> bool:
    """glibc `mallopt`: blocks up to `threshold_bytes` come from the heap, whose top is not
    trimmed below twice that; returns whether applied (False where the C library is not glibc:
    macOS, musl). Half of `keep_host_memory()`; on its own, steps that JAX dispatches to a worker
    thread still fault (that thread's arena mmaps large blocks whatever the threshold)."""
    _check_threshold(threshold_bytes)
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (_M_MMAP_THRESHOLD, threshold_bytes),
        (_M_TRIM_THRESHOLD, min(2 * threshold_bytes, 2**31 - 1)),
    )
    return all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1
               for param, value in settings)


def keep_host_memory(threshold_bytes: int = HEAP_THRESHOLD_BYTES) -> bool:
    """Keeps freed host memory mapped (`set_malloc_thresholds`) and runs CPU computations on the
    calling thread; returns whether the malloc settings were applied (dispatch is made
    synchronous either way).

    Call it once, early, before the first JAX computation: JAX reads the dispatch setting when
    it starts its CPU backend, so a later call raises `RuntimeError`.
    """
    _check_threshold(threshold_bytes)
    if jax_state.backends_are_initialized():
        raise RuntimeError(
            "keep_host_memory() must be called before the first JAX computation, but JAX's "
            "backends are already initialized; call it at the start of the program"
        )
    jax.config.update("jax_cpu_enable_async_dispatch", False)
    return set_malloc_thresholds(threshold_bytes)


def enable_compilation_cache(directory: str) -> str:
    """Keeps every compiled XLA program in `directory` (JAX's persistent compilation cache)
    and reuses it in later processes; returns the absolute directory. Safe to share between
    runs: entries are keyed by the program, the JAX version and the device."""
    if not directory:
        raise ValueError("expected a compilation cache directory, received an empty string")
    directory = os.path.abspath(os.path.expanduser(directory))
    os.makedirs(directory, exist_ok=True)
    jax.config.update("jax_compilation_cache_dir", directory)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)  # small programs too
    return directory
