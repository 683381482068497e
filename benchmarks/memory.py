"""Peak host memory of one training step at long T, one fresh child process per case.

`python -m benchmarks.train_step --memory` runs the table; each case runs as

    python -m benchmarks.memory CASE --batch B --hidden H --time T --steps N [--keep_host_memory]

where CASE is `implementation:remat` (`rnn_jax tokens:sqrt`; remat false, true, an integer
chunk length or sqrt, for the rnn_jax and lax.scan rows only). The parent reads the child's peak
resident set size from `wait4` (the whole process: Python, XLA and the step's buffers).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

import jax

from benchmarks import implementations, model, timing
from experiments.harness import runtime


def parse_remat(text: str):
    lowered = text.lower()
    if lowered in ("false", "true"):
        return lowered == "true"
    if lowered == "sqrt":
        return lowered
    if lowered.isdigit():
        return int(lowered)
    raise ValueError(f"expected remat false, true, sqrt or an integer, received {text!r}")


def parse_case(case: str, cell: str):
    """`(implementation, remat)` of `"key:remat"` (remat false when omitted)."""
    key, _, remat = case.partition(":")
    (impl,) = implementations.select([key], [cell]) or [None]
    if impl is None:
        raise ValueError(f"expected an implementation of the {cell} in {implementations.KEYS}, "
                         f"received {key!r}")
    return impl, parse_remat(remat or "false")


def run_case(case, cell, batch, hidden, time_steps, vocab, steps, keep_host_memory=False) -> dict:
    """Runs one case in a child process; returns its row, with the child's peak RSS."""
    row = {"case": case, "batch": batch, "hidden": hidden, "time": time_steps}
    impl, _ = parse_case(case, cell)
    if not implementations.installed(impl):
        row["error"] = f"skipped, {impl.library} is not installed"
        return row
    command = [sys.executable, "-m", "benchmarks.memory", case, "--cell", cell,
               "--batch", str(batch), "--hidden", str(hidden), "--time", str(time_steps),
               "--vocab", str(vocab), "--steps", str(steps)]
    command += ["--keep_host_memory"] if keep_host_memory else []
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen(command, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(child.pid, 0)  # the child's peak RSS, measured from outside
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read(), err.read()
    if child.returncode != 0:
        row["error"] = "failed: " + (stderr.strip().splitlines() or ["?"])[-1][:120]
        return row
    row.update(json.loads(stdout.strip().splitlines()[-1]))
    row["peak_rss_gb"] = usage.ru_maxrss * 1024 / 1e9  # Linux: kibibytes; GB = 10^9 bytes
    return row


def format_memory(rows) -> str:
    lines = ["| case (implementation:remat) | B | H | T | peak RSS GB (10^9 B) | first step s "
             "| step s |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        size = f"| {r['case']} | {r['batch']} | {r['hidden']} | {r['time']} |"
        if "error" in r:
            lines.append(f"{size} {r['error']} | | |")
        else:
            lines.append(f"{size} {r['peak_rss_gb']:.2f} | {r['first_step_s']:.1f} "
                         f"| {r['step_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    """The child: times the case's first step and `--steps` more, prints one JSON line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("case")
    parser.add_argument("--cell", default="lstm")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--time", type=int, default=10_000)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--keep_host_memory", action="store_true")
    args = parser.parse_args(argv)
    if args.keep_host_memory:
        runtime.keep_host_memory()  # process-wide: before any JAX computation
    impl, remat = parse_case(args.case, args.cell)
    key_weights, key_batch = jax.random.split(jax.random.key(0))
    weights = model.init_weights(key_weights, args.cell, args.vocab, args.hidden)
    inputs, targets = model.make_batch(key_batch, args.batch, args.time, args.vocab)
    step = implementations.make_step(impl, weights, inputs, targets, remat=remat)
    first_s, loss = timing.time_first(step)
    times = timing.time_steps(step, args.steps)[0] if args.steps else [first_s]
    print(json.dumps({"first_step_s": first_s, "step_s": statistics.median(times), "loss": loss}))


if __name__ == "__main__":
    main()
