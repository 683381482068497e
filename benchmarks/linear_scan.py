"""minGRU over time: `jax.lax.scan` (rnn_jax.unroll) against the associative scan
(rnn_jax.parallel.linear_cells), forward and forward+backward; peak memory at long T.

    python -m benchmarks.linear_scan [--time=4096] [--batch=32] [--hidden=256] [--inputs=256]
        [--rounds=3] [--steps=3] [--memory_time=65536] [--memory_batch=1]

The same minGRU params and inputs `[batch, time, inputs]` (float32) go through three paths:
`unroll(..., backward="autodiff")` (one `lax.scan` step per time step), and `parallel_unroll`
with the paper's log-space scan and with the plain one. Forward is the jitted `ys`;
forward+backward is the jitted gradient of `sum(ys^2)` with respect to params and inputs.
Paths are timed in interleaved rounds (`benchmarks.timing`); each speed-up is the ratio to
`lax.scan` within a round. With `--memory_time`, each path's forward+backward at that T runs
once in a fresh child process, and the table gives the child's peak resident set size (the
whole process: Python, XLA and the step's buffers), measured before the timing.
"""

import argparse
import functools
import os
import statistics
import subprocess
import sys

import jax
import jax.numpy as jnp

from benchmarks import timing
from experiments import runtime
from rnn_jax import get_cell, unroll
from rnn_jax.parallel.linear_cells import parallel_unroll

CELL = get_cell("mingru")
PATHS = {
    "lax.scan": functools.partial(unroll, CELL, backward="autodiff"),
    "associative scan, log space": functools.partial(parallel_unroll, CELL, log_space=True),
    "associative scan, plain": functools.partial(parallel_unroll, CELL, log_space=False),
}


def operands(batch: int, time: int, inputs: int, hidden: int):
    key_params, key_xs = jax.random.split(jax.random.key(0))
    params = CELL.init(key_params, inputs, hidden)
    return params, jax.random.normal(key_xs, (batch, time, inputs), jnp.float32)


def compiled(path: str, backward: bool, params, xs):
    """A `() -> None` running the jitted path once (compiled here), blocking until done."""
    run = PATHS[path]
    if backward:
        function = jax.jit(jax.grad(lambda p, x: jnp.sum(run(p, x)[0] ** 2), argnums=(0, 1)))
    else:
        function = jax.jit(lambda p, x: run(p, x)[0])

    def call():
        jax.block_until_ready(function(params, xs))

    call()
    return call


def peak_memory(path: str, batch: int, time: int, inputs: int, hidden: int) -> float:
    """Peak RSS in MiB of a child process running one forward+backward of `path`.

    The child reports its own VmHWM (`/proc/self/status`): a new process image starts its
    high-water mark afresh at exec, while `wait4`'s maxrss would carry the parent's peak.
    """
    command = [sys.executable, "-m", "benchmarks.linear_scan", "--child", path, "--batch",
               str(batch), "--time", str(time), "--inputs", str(inputs), "--hidden", str(hidden)]
    child = subprocess.run(command, capture_output=True, text=True)
    lines = [line for line in child.stdout.splitlines() if line.startswith("VmHWM:")]
    if child.returncode != 0 or not lines:
        return float("nan")
    return int(lines[-1].split()[1]) / 1024  # kB


def own_peak() -> str:
    """This process's `VmHWM:` line (peak resident set size since exec, in kB)."""
    with open("/proc/self/status") as status:
        return next(line.strip() for line in status if line.startswith("VmHWM:"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--time", type=int, default=4096)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--inputs", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=3, help="0: no timing table")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--memory_time", type=int, default=0, help="0: no memory table")
    parser.add_argument("--memory_batch", type=int, default=1)
    parser.add_argument("--child", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    runtime.keep_host_memory()
    if args.child:  # one forward+backward for peak_memory
        compiled(args.child, True, *operands(args.batch, args.time, args.inputs, args.hidden))
        print(own_peak())
        return
    if args.memory_time:  # first, while this process is small
        memory_table(args)
    if args.rounds:
        timing_table(args)


def memory_table(args) -> None:
    print(f"| path | forward+backward peak RSS, MiB (T{args.memory_time} B{args.memory_batch} "
          f"H{args.hidden} in{args.inputs}) |\n|---|---|")
    for path in PATHS:
        mib = peak_memory(path, args.memory_batch, args.memory_time, args.inputs, args.hidden)
        print(f"| {path} | {mib:.0f} |", flush=True)


def timing_table(args) -> None:
    params, xs = operands(args.batch, args.time, args.inputs, args.hidden)
    shape = f"T{args.time} B{args.batch} H{args.hidden} in{args.inputs}"
    print("| path | pass | shape | ms | speed-up vs lax.scan (median, min-max over rounds) |\n"
          "|---|---|---|---|---|")
    for backward in (False, True):
        calls = {path: compiled(path, backward, params, xs) for path in PATHS}
        rounds = timing.run_rounds(calls, args.rounds, args.steps)
        walls = {path: [r[0] for r in rounds[path]] for path in PATHS}
        for path in PATHS:
            ratio = timing.paired_ratio(walls["lax.scan"], walls[path])
            print(f"| {path} | {'forward+backward' if backward else 'forward'} | {shape} | "
                  f"{1e3 * statistics.median(walls[path]):.1f} | "
                  f"{ratio[0]:.2f}x ({ratio[1]:.2f}-{ratio[2]:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
