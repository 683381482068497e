"""Process-wide settings for fast training steps (opt-in: a library never applies them itself).

`keep_host_memory()`: XLA:CPU's per-step buffers stop page-faulting (below).
`enable_compilation_cache(directory)`: compiled programs are kept on disk, so a second run of
the same experiment (a resume, a sweep, a re-run with the same shapes) skips XLA compilation:
the README's main job (`python -m experiments.parity --cell=lstm`) took 10.6 s, then 4.7 s
when run again. Results are unchanged.

XLA:CPU allocates a step's temporaries afresh on every call: at batch 64, hidden 512, T = 100 an
LSTM step needs ~200 MB (`[time, batch, 4*hidden]` gate activations, deltas, ...). glibc serves
such blocks with fresh `mmap`ed pages and unmaps them on `free`, so every step touches new pages
and pays one page fault per 4 kB page: 43,000-49,000 faults per step, 207 ms per step against
162 ms without them (`python -m benchmarks.train_step --sizes 64x512 --default_malloc`, then
without the flag; `benchmarks/README.md`). Worker threads make it worse: their malloc arenas are capped at 64 MB
per heap, so large blocks are always mmapped there, whatever the threshold.

`keep_host_memory()` tells glibc to keep freed memory: one arena for all threads, blocks up to
`threshold_bytes` (256 MB) from the heap, and no trimming of the heap top below twice that.
Steps then reuse pages already mapped (0 faults per step). Blocks above the threshold are still
mapped and unmapped each time: with a 1 GB threshold, fragmentation of the kept heap raised the
peak of a T = 10,000 chunked-remat step from 1.40 to 2.15 GB; with 256 MB it is 1.36 GB. The
cost otherwise: resident memory stays at its peak instead of shrinking between steps. The
experiments' command-line entry points apply it (`--keep_host_memory`, default on); the
benchmarks apply it to every implementation alike.
"""

import ctypes
import ctypes.util
import os
import platform

import jax

# mallopt(3) parameter numbers (glibc malloc.h)
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3
_M_ARENA_MAX = -8


def keep_host_memory(threshold_bytes: int = 1 << 28) -> bool:
    """Keeps freed host memory mapped (glibc `mallopt`); returns whether it was applied.

    Call it once, early, before the first JAX computation (threads that already own a malloc
    arena keep it). A no-op returning False where the C library is not glibc (macOS, musl).
    """
    if not 0 < threshold_bytes < 2**31:
        raise ValueError(f"expected 0 < threshold_bytes < 2**31 (a C int), received {threshold_bytes}")
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
    settings = (
        (_M_ARENA_MAX, 1),
        (_M_MMAP_THRESHOLD, threshold_bytes),
        (_M_TRIM_THRESHOLD, min(2 * threshold_bytes, 2**31 - 1)),
    )
    return all(libc.mallopt(ctypes.c_int(param), ctypes.c_int(value)) == 1 for param, value in settings)


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
