"""Char-LM training step (forward, backward, Adam): rnn_jax next to the peers a user would pick.

    python -m benchmarks.train_step                          # B32 H256, LSTM and GRU, every peer
    python -m benchmarks.train_step --sizes 64x512 --rounds 3 --steps 5
    python -m benchmarks.train_step --impls torch,rnn_jax.unroll --cells lstm
    python -m benchmarks.train_step --memory                 # peak RSS at T = 10,000

Every installed implementation (`benchmarks.implementations`) runs in this process from the
same weights and batch, in `--rounds` interleaved rounds of `--steps` steps (`benchmarks.timing`).
Columns: ms/step, the median over rounds of each round's median step; tokens/s = B*T / ms/step;
vs torch, the median (and range) over rounds of PyTorch's step time over this one's within the
round (above 1: faster than PyTorch); the first step (compilation included); minor page faults
per step; the first step's loss, equal across implementations of the same model definition.

The headline columns are what a user's own script gets: no process-wide settings. The
`keep_host_memory` columns repeat the measurement in a child process that first calls
`experiments.harness.runtime.keep_host_memory()` (process-wide, so it applies to every
implementation there, PyTorch's included, and cannot be undone in this process);
`--no-settings_column` skips them.
"""

import argparse
import datetime
import json
import os
import platform
import statistics
import subprocess
import sys

import jax

from benchmarks import implementations, memory, model, timing
from experiments.harness import runtime

MEMORY_CASES = ["rnn_jax tokens:false", "rnn_jax tokens:true", "rnn_jax tokens:sqrt",
                "rnn_jax.unroll:sqrt", "lax.scan:false", "flax", "haiku", "equinox", "torch"]


def machine() -> str:
    """CPU model name and core count, OS, date: the table's header."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next(line.split(":", 1)[1].strip() for line in handle
                       if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return (f"{cpu}, {os.cpu_count()} cores; {platform.system()} {platform.machine()}; "
            f"Python {platform.python_version()}; {datetime.date.today().isoformat()}")


def rounds_arguments(description: str, argv=None, unit: str = "steps") -> argparse.Namespace:
    """`--rounds`, `--steps`, `--keep_host_memory` of the interleaved-rounds benchmarks, checked
    and applied (the process-wide setting before any JAX computation); prints the header."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=5, help=f"timed {unit} per round")
    parser.add_argument("--keep_host_memory", action="store_true",
                        help="call experiments.harness.runtime.keep_host_memory() in this "
                             "process first")
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"expected --rounds and --steps >= 1, received {args.rounds} and {args.steps}")
    if args.keep_host_memory:
        runtime.keep_host_memory()
    settings = "keep_host_memory" if args.keep_host_memory else "none"
    print(f"# {machine()}\n# {implementations.versions()}\n# process-wide settings: {settings}")
    print(f"# {args.rounds} rounds x {args.steps} {unit}\n")
    return args


def measure_group(impls, batch, hidden, time_steps, vocab, rounds, steps, seed=0):
    """Rows for implementations of one cell at one size, timed in interleaved rounds."""
    cell = impls[0].cell
    key_weights, key_batch = jax.random.split(jax.random.key(seed))
    weights = model.init_weights(key_weights, cell, vocab, hidden)
    inputs, targets = model.make_batch(key_batch, batch, time_steps, vocab)
    step_fns, firsts = {}, {}
    for impl in impls:
        step_fns[impl.key] = implementations.make_step(impl, weights, inputs, targets)
        firsts[impl.key] = timing.time_first(step_fns[impl.key])
    results = timing.run_rounds(step_fns, rounds, steps)
    return summarise(impls, results, firsts, batch, hidden, time_steps)


def summarise(impls, results, firsts, batch, hidden, time_steps):
    """Rows from `timing.run_rounds`' results and `{key: (first step s, loss)}`."""
    reference = results.get(implementations.REFERENCE)
    rows = []
    for impl in impls:
        rounds = results[impl.key]
        round_s = [wall for wall, _, _ in rounds]
        median_s = statistics.median(round_s)
        rows.append({
            "key": impl.key, "name": impl.name, "cell": impl.cell, "model": impl.model,
            "batch": batch, "hidden": hidden, "time": time_steps,
            "median_ms": 1e3 * median_s, "round_ms": [1e3 * s for s in round_s],
            "tokens_per_s": batch * time_steps / median_s,
            "faults": statistics.median(faults for _, _, faults in rounds),
            "vs_torch": (timing.paired_ratio([wall for wall, _, _ in reference], round_s)
                         if reference else None),
            "first_step_s": firsts[impl.key][0], "first_loss": firsts[impl.key][1],
        })
    return rows


def run_speed(keys, cells, sizes, time_steps, vocab, rounds, steps):
    """Rows for every installed implementation at every size; notes for the skipped ones."""
    rows, notes = [], []
    for batch, hidden in sizes:
        for cell in cells:
            impls = implementations.select(keys, [cell])
            missing = [impl for impl in impls if not implementations.installed(impl)]
            if (batch, hidden) == sizes[0]:
                notes += [implementations.skip_note(impl) for impl in missing]
            impls = [impl for impl in impls if impl not in missing]
            if impls:
                rows += measure_group(impls, batch, hidden, time_steps, vocab, rounds, steps)
    return rows, notes


def run_settings_child(argv) -> tuple[list, str | None]:
    """The same measurement in a child process with `keep_host_memory()`: `(rows, error)`."""
    command = [sys.executable, "-m", "benchmarks.train_step", *argv, "--keep_host_memory",
               "--child_json", "--no-settings_column"]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        return [], "failed: " + (done.stderr.strip().splitlines() or ["?"])[-1][:160]
    return json.loads(done.stdout.strip().splitlines()[-1]), None


def merge(rows, kept_rows) -> None:
    """Adds each kept row's `kept_*` columns to the headline row of the same case."""
    index = {(r["batch"], r["hidden"], r["cell"], r["key"]): r for r in kept_rows}
    for row in rows:
        kept = index.get((row["batch"], row["hidden"], row["cell"], row["key"]))
        if kept:
            row.update({f"kept_{name}": kept[name] for name in ("median_ms", "vs_torch", "faults")})


def _ratio(ratio, key) -> str:
    if key == implementations.REFERENCE:
        return "1 (reference)"
    return "-" if ratio is None else "{:.2f}x ({:.2f}-{:.2f})".format(*ratio)


def format_speed(rows, settings_column: bool) -> str:
    header = ("| cell | implementation | ms/step | tokens/s | vs torch (paired rounds) "
              "| first step s | page faults/step | first loss |")
    if settings_column:
        header += " keep_host_memory: ms/step | vs torch | page faults/step |"
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        line = (f"| {r['cell']} | {r['name']} | {r['median_ms']:.1f} | {r['tokens_per_s']:,.0f} "
                f"| {_ratio(r['vs_torch'], r['key'])} | {r['first_step_s']:.2f} "
                f"| {r['faults']:,.0f} | {r['first_loss']:.5f} |")
        if settings_column:
            line += (f" {r['kept_median_ms']:.1f} | {_ratio(r['kept_vs_torch'], r['key'])} "
                     f"| {r['kept_faults']:,.0f} |" if "kept_median_ms" in r else " - | - | - |")
        lines.append(line)
    return "\n".join(lines)


def parse_sizes(text: str) -> list[tuple[int, int]]:
    try:
        sizes = [tuple(int(n) for n in size.split("x")) for size in text.split(",")]
    except ValueError:
        sizes = []
    if not sizes or any(len(size) != 2 or min(size) < 1 for size in sizes):
        raise ValueError(f"expected sizes as BATCHxHIDDEN[,BATCHxHIDDEN...], received {text!r}")
    return sizes


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32x256", help="comma-separated BATCHxHIDDEN")
    parser.add_argument("--cells", default="lstm,gru", help="comma-separated: lstm, gru")
    parser.add_argument("--impls", default=None,
                        help=f"comma-separated, from {implementations.KEYS} (default: all)")
    parser.add_argument("--time", type=int, default=100, help="sequence length T")
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--rounds", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--steps", type=int, default=10, help="timed steps per round")
    parser.add_argument("--settings_column", action=argparse.BooleanOptionalAction, default=True,
                        help="also measure with keep_host_memory() in a child process")
    parser.add_argument("--keep_host_memory", action="store_true",
                        help="call experiments.harness.runtime.keep_host_memory() in this "
                             "process first")
    parser.add_argument("--memory", action="store_true", help="the peak-memory table instead")
    parser.add_argument("--memory_time", type=int, default=10_000)
    parser.add_argument("--memory_cases", default=",".join(MEMORY_CASES),
                        help="comma-separated implementation:remat (LSTM)")
    parser.add_argument("--memory_steps", type=int, default=1, help="steps after the first")
    parser.add_argument("--child_json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.steps < 1:
        parser.error(f"expected --rounds and --steps >= 1, received {args.rounds} and {args.steps}")
    return args


def main(argv=None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.keep_host_memory:
        runtime.keep_host_memory()  # process-wide: before any JAX computation
    sizes, cells = parse_sizes(args.sizes), args.cells.split(",")
    keys = args.impls.split(",") if args.impls else None
    if args.child_json:
        rows, _ = run_speed(keys, cells, sizes, args.time, args.vocab, args.rounds, args.steps)
        print(json.dumps(rows))
        return
    settings = "keep_host_memory" if args.keep_host_memory else "none"
    print(f"# {machine()}\n# {implementations.versions()}\n# process-wide settings: {settings}")
    if args.memory:
        batch, hidden = sizes[0]
        rows = [memory.run_case(case, "lstm", batch, hidden, args.memory_time, args.vocab,
                                args.memory_steps, args.keep_host_memory)
                for case in args.memory_cases.split(",")]
        print(memory.format_memory(rows))
        return
    rows, notes = run_speed(keys, cells, sizes, args.time, args.vocab, args.rounds, args.steps)
    settings_column = args.settings_column and not args.keep_host_memory
    if settings_column:
        kept_rows, error = run_settings_child(argv)
        merge(rows, kept_rows)
        notes += [f"keep_host_memory columns: {error}"] if error else []
    print(f"# T = {args.time}, vocabulary {args.vocab}; {args.rounds} rounds x {args.steps} steps")
    for batch, hidden in sizes:
        print(f"\nB = {batch}, H = {hidden}:\n")
        print(format_speed([r for r in rows if (r["batch"], r["hidden"]) == (batch, hidden)],
                           settings_column))
    models = sorted({(r["model"], r["name"]) for r in rows if r["cell"] == "gru"})
    for definition in sorted({m for m, _ in models}):
        print(f"# {definition}: " + ", ".join(n for m, n in models if m == definition))
    for note in notes:
        print(f"# {note}")


if __name__ == "__main__":
    main()
