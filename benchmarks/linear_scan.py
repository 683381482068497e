"""minGRU over time: `jax.lax.scan` (rnn_jax.unroll) against the associative scan
(rnn_jax.parallel.linear_cells), forward and forward+backward; peak memory at long T.

    python -m benchmarks.linear_scan [--time=4096] [--batch=32] [--hidden=256] [--inputs=256]
        [--rounds=3] [--steps=3] [--memory_time=65536] [--memory_batch=1]

The same minGRU params and inputs `[batch, time, inputs]` (float32) go through three paths
(`experiments.parallel_in_time.timing`'s methods): `unroll` (one `lax.scan` step per time step,
autodiff: the minGRU has no hand-written kernel), and `parallel_unroll` with the paper's
log-space scan and with the plain one. Forward is the jitted `ys`; forward+backward is the
jitted gradient of `sum(ys^2)` with respect to params and inputs. Paths are timed in
interleaved rounds, forward and forward+backward separately; each speed-up is the ratio to
`lax.scan` within a round. With `--memory_time`, each path's forward+backward at that T runs
once in a fresh child process, and the table gives the child's peak resident set size (the
whole process: Python, XLA and the step's buffers), measured before the timing.
"""

import argparse
import subprocess
import sys

from experiments.harness import runtime
from experiments.parallel_in_time import timing as parallel_timing
from rnn_jax import get_cell

CELL = get_cell("mingru")
PATHS = {  # the table's names of `parallel_timing`'s methods
    "lax.scan": parallel_timing.SEQUENTIAL,
    "associative scan, log space": "associative_log",
    "associative scan, plain": "associative",
}


def compiled(path: str, backward: bool, params, xs):
    """A `() -> None` running the jitted path once (compiled here), blocking until done."""
    return parallel_timing.compiled(parallel_timing.path(CELL, PATHS[path]), backward, params,
                                    xs)[0]


def operands(args, batch: int, time: int):
    """The minGRU params and inputs `[batch, time, --inputs]` (seed 0)."""
    return parallel_timing.operands(
        CELL, parallel_timing.Case("mingru", args.hidden, time, batch, args.inputs))


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
        compiled(args.child, True, *operands(args, args.batch, args.time))
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
    params, xs = operands(args, args.batch, args.time)
    shape = f"T{args.time} B{args.batch} H{args.hidden} in{args.inputs}"
    print("| path | pass | shape | ms | speed-up vs lax.scan (median, min-max over rounds) |\n"
          "|---|---|---|---|---|")
    for backward, name in zip((False, True), ("forward", "forward+backward")):
        calls = {path: compiled(path, backward, params, xs) for path in PATHS}
        walls = parallel_timing.wall_times(calls, args.rounds, args.steps)
        for path in PATHS:
            measured = parallel_timing.speed(walls, path, "lax.scan")
            print(f"| {path} | {name} | {shape} | {measured['ms']:.1f} | "
                  f"{measured['speedup']:.2f}x ({measured['speedup_min']:.2f}-"
                  f"{measured['speedup_max']:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
