"""Char-LM training step (forward, backward, Adam): tokens/s of rnn_jax and its peers.

Default (quick, < 2 min): rnn_jax's LSTM at batch 32, time 100, hidden 256, vocabulary 65,
next to PyTorch's nn.LSTM when torch is installed:

    python -m benchmarks.train_step
    python -m benchmarks.train_step --full       # every variant, B32 H256 and B64 H512
    python -m benchmarks.train_step --memory     # peak RSS at T = 10,000, one child per case
    python -m benchmarks.train_step --memory --memory_time 100000 --memory_cases "rnn_jax lstm gather+fast:sqrt"

Columns: median step time over `--steps` steps (after the first; with `--rounds N` every
variant is timed N times in turn and the median round is shown, with the fastest and slowest
round), the median CPU time of the process per step (all threads), tokens/s =
batch*time/median,
GFLOP/s of the dense model's matmul FLOPs (3 x forward: forward, input grads, weight grads),
fraction of a 2048x2048 float32 matmul measured in the same run, ratio to the PyTorch peer,
the first step's time (compile + run) and the minor page faults per step. Load averages are printed with every table: the
machine may be shared.

Host memory: by default the process first calls `rnn_jax.runtime.keep_host_memory()` (glibc
keeps freed memory mapped and JAX runs each step on the calling thread, so per-step buffers do
not page-fault), which applies to every implementation in the run, PyTorch's included;
`--default_malloc` leaves glibc's defaults and JAX's asynchronous dispatch.
"""

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

from benchmarks import jax_models, timing, torch_models
from rnn_jax import runtime

QUICK_VARIANTS = ["rnn_jax lstm gather+fast", "torch nn.LSTM"]
FULL_VARIANTS = list(jax_models.VARIANTS) + list(torch_models.VARIANTS)
MEMORY_CASES = [
    "rnn_jax lstm gather+fast:false",
    "rnn_jax lstm gather+fast:true",
    "rnn_jax lstm gather+fast:sqrt",
    "rnn_jax lstm fast:sqrt",
    "rnn_jax lstm autodiff:sqrt",
]


def parse_remat(text: str):
    lowered = text.lower()
    if lowered in ("false", "true"):
        return lowered == "true"
    return lowered if lowered == "sqrt" else int(lowered)


def load() -> str:
    return "load average %.2f %.2f %.2f" % os.getloadavg()


def matmul_peak(size=2048, repeats=10) -> float:
    """GFLOP/s of a jitted float32 [size, size] x [size, size] matmul (the fastest repeat: a
    peak, so a slow spell of a shared machine lowers it less than a median would)."""
    a = jax.random.normal(jax.random.key(0), (size, size))
    matmul = jax.jit(jnp.dot)
    matmul(a, a).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, a).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2 * size**3 / min(times) / 1e9


def model_flops(cell: str, batch: int, time_steps: int, hidden: int, vocab: int) -> float:
    """Dense matmul FLOPs of one training step: 3 x (input + recurrent + readout) forward."""
    gates = {"lstm": 4, "gru": 3}[cell]
    forward = 2 * hidden * gates * hidden * 2 + 2 * hidden * vocab
    return 3.0 * forward * batch * time_steps


def time_jax(name, batch, time_steps, hidden, vocab, steps, remat=False):
    """`benchmarks.timing.time_steps`'s tuple for a jitted train step."""
    builder, _ = jax_models.VARIANTS[name]
    key_params, key_data = jax.random.split(jax.random.key(0))
    params, loss_fn = builder(key_params, vocab, hidden, remat=remat)
    step, opt_state = jax_models.make_train_step(loss_fn, params)
    tokens = jax.random.randint(key_data, (batch, time_steps + 1), 0, vocab)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
    state = [params, opt_state]
    jax.block_until_ready((state, inputs, targets))  # the first step times compile + run only

    def one_step():
        state[0], state[1], loss = step(*state, inputs, targets)
        loss.block_until_ready()

    return timing.time_steps(one_step, steps)


def cell_of(name: str) -> str:
    if name in torch_models.VARIANTS:
        return torch_models.VARIANTS[name][0]
    return jax_models.VARIANTS[name][1]


def time_variant(name, batch, hidden, time_steps, vocab, steps):
    """`benchmarks.timing.time_steps`'s tuple for one variant (None: torch is not installed)."""
    if name not in torch_models.VARIANTS:
        return time_jax(name, batch, time_steps, hidden, vocab, steps)
    if not torch_models.available():
        return None
    kind, threads = torch_models.VARIANTS[name]
    return torch_models.time_train_step(
        kind, batch, time_steps, hidden, vocab, steps, threads=threads
    )


def run_speed(variants, sizes, time_steps, vocab, steps, rounds=1):
    """Times every variant at every (batch, hidden), `rounds` times in turn (so that a slow
    spell of a shared machine hits every variant alike); returns rows (dicts) and notes.

    A row's times are the median over rounds of each round's median step; `range_ms` gives the
    fastest and slowest round. `vs_torch_paired` is the median over rounds of the ratio within
    each round (PyTorch's step time over the variant's, measured seconds apart), with its range:
    on a VM whose speed drifts between rounds it is steadier than the ratio of the medians.
    """
    peak = matmul_peak()
    rows, notes = [], [f"matmul peak (2048^2 float32, jax): {peak:.1f} GFLOP/s", load()]
    for batch, hidden in sizes:
        runs = {name: [] for name in variants}
        for _ in range(rounds):
            for name in runs:
                result = time_variant(name, batch, hidden, time_steps, vocab, steps)
                if result is not None:
                    runs[name].append(result)
        for name, results in runs.items():
            if not results:
                notes.append(f"{name}: skipped, torch is not installed")
                continue
            medians = [statistics.median(times) for _, times, _, _ in results]
            median = statistics.median(medians)
            flops = model_flops(cell_of(name), batch, time_steps, hidden, vocab)
            rows.append(
                {"variant": name, "batch": batch, "hidden": hidden, "time": time_steps,
                 "median_ms": 1e3 * median, "round_ms": [1e3 * m for m in medians],
                 "range_ms": (1e3 * min(medians), 1e3 * max(medians)),
                 "cpu_ms": 1e3 * statistics.median(
                     statistics.median(cpu) for _, _, cpu, _ in results),
                 "faults": statistics.median(statistics.median(f) for _, _, _, f in results),
                 "tokens_per_s": batch * time_steps / median,
                 "gflops": flops / median / 1e9, "peak_fraction": flops / median / 1e9 / peak,
                 "first_step_s": statistics.median(first for first, _, _, _ in results)}
            )
    for row in rows:  # ratio to the PyTorch peer of the same cell and size
        peer = "torch nn.LSTM" if cell_of(row["variant"]) == "lstm" else "torch nn.GRU"
        match = [r for r in rows if r["variant"] == peer and r["batch"] == row["batch"]
                 and r["hidden"] == row["hidden"]]
        row["vs_torch"] = row["tokens_per_s"] / match[0]["tokens_per_s"] if match else None
        row["vs_torch_cpu"] = match[0]["cpu_ms"] / row["cpu_ms"] if match else None
        paired = [p / v for p, v in zip(match[0]["round_ms"], row["round_ms"])] if match else []
        row["vs_torch_paired"] = (
            (statistics.median(paired), min(paired), max(paired)) if paired else None
        )
    notes.append(load())
    return rows, notes


def format_speed(rows) -> str:
    lines = [
        "| variant | B | H | T | median ms | rounds' range ms | CPU ms | tokens/s | GFLOP/s "
        "| of peak | vs torch | vs torch, paired rounds | vs torch, CPU time | first step s "
        "| page faults/step |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = "-" if r["vs_torch"] is None else f"{r['vs_torch']:.2f}x"
        paired = "-" if r["vs_torch_paired"] is None else (
            "{:.2f}x ({:.2f}-{:.2f})".format(*r["vs_torch_paired"]))
        cpu_ratio = "-" if r["vs_torch_cpu"] is None else f"{r['vs_torch_cpu']:.2f}x"
        lines.append(
            f"| {r['variant']} | {r['batch']} | {r['hidden']} | {r['time']} | {r['median_ms']:.1f} "
            f"| {r['range_ms'][0]:.1f}-{r['range_ms'][1]:.1f} | {r['cpu_ms']:.1f} "
            f"| {r['tokens_per_s']:,.0f} | {r['gflops']:.1f} | {100 * r['peak_fraction']:.0f} % "
            f"| {ratio} | {paired} | {cpu_ratio} | {r['first_step_s']:.2f} | {r['faults']:,.0f} |"
        )
    return "\n".join(lines)


def run_memory_case(case, batch, hidden, time_steps, vocab, steps, default_malloc=False):
    """Runs one case in a child process; returns its row with the child's peak RSS."""
    name, remat = case.rsplit(":", 1)
    command = [sys.executable, "-m", "benchmarks.train_step", "--child", name, "--remat", remat,
               "--batch", str(batch), "--hidden", str(hidden), "--time", str(time_steps),
               "--vocab", str(vocab), "--steps", str(steps)]
    command += ["--default_malloc"] if default_malloc else []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # the child's peak RSS, measured from outside
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    row = {"case": case, "time": time_steps, "batch": batch, "hidden": hidden}
    if child.returncode != 0:
        row["error"] = (stderr.strip().splitlines() or ["?"])[-1][:120]
        return row
    row.update(json.loads(stdout.strip().splitlines()[-1]))
    row["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # Linux: kibibytes; GB = 10^9 bytes
    return row


def format_memory(rows) -> str:
    lines = ["| case (variant:remat) | B | H | T | peak RSS GB (10^9 B) | first step s | step s |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['case']} | {r['batch']} | {r['hidden']} | {r['time']} | failed: "
                         f"{r['error']} | | |")
            continue
        lines.append(f"| {r['case']} | {r['batch']} | {r['hidden']} | {r['time']} | "
                     f"{r['peak_rss_gb']:.2f} | {r['first_step_s']:.1f} | {r['step_s']:.1f} |")
    return "\n".join(lines)


def child_main(args) -> None:
    """One memory case: time `steps` steps and print JSON; the parent reads the peak RSS."""
    first, times, _, _ = time_jax(args.child, args.batch, args.time, args.hidden, args.vocab,
                            args.steps, remat=parse_remat(args.remat))
    step_s = statistics.median(times) if times else first
    print(json.dumps({"first_step_s": first, "step_s": step_s}))


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="all variants at both sizes")
    parser.add_argument("--variants", default=None, help="comma-separated variant names")
    parser.add_argument("--sizes", default=None, help="comma-separated BATCHxHIDDEN, e.g. 32x256")
    parser.add_argument("--time", type=int, default=100, help="sequence length T")
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=20, help="timed steps after the first")
    parser.add_argument("--rounds", type=int, default=None,
                        help="time every variant this many times, in turn (default: 3 with "
                             "--full, else 1); rows give the median round")
    parser.add_argument("--memory", action="store_true", help="long-sequence peak-memory table")
    parser.add_argument("--memory_time", type=int, default=10_000)
    parser.add_argument("--memory_cases", default=",".join(MEMORY_CASES))
    parser.add_argument("--default_malloc", action="store_true",
                        help="leave glibc's malloc defaults (no rnn_jax.runtime.keep_host_memory)")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--remat", default="false", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=32, help="batch of --child / --memory")
    parser.add_argument("--hidden", type=int, default=256, help="hidden of --child / --memory")
    return parser.parse_args(argv)


def main(argv=None) -> None:
    args = parse_args(argv)
    kept = False if args.default_malloc else runtime.keep_host_memory()
    if args.child:
        child_main(args)
        return
    print(f"# {platform.platform()}, {os.cpu_count()} CPUs; jax {jax.__version__}, "
          f"torch {torch_models.version()}; host memory kept (keep_host_memory): {kept}; {load()}")
    if args.memory:
        rows = [run_memory_case(case, args.batch, args.hidden, args.memory_time, args.vocab,
                                min(args.steps, 2), args.default_malloc)
                for case in args.memory_cases.split(",")]
        print(format_memory(rows))
        print(f"# {load()}")
        return
    variants = FULL_VARIANTS if args.full else QUICK_VARIANTS
    variants = args.variants.split(",") if args.variants else variants
    sizes = args.sizes or ("32x256,64x512" if args.full else "32x256")
    sizes = [tuple(int(n) for n in size.split("x")) for size in sizes.split(",")]
    rounds = args.rounds or (3 if args.full else 1)
    rows, notes = run_speed(variants, sizes, args.time, args.vocab, args.steps, rounds)
    print(format_speed(rows))
    for note in notes:
        print(f"# {note}")


if __name__ == "__main__":
    main()
