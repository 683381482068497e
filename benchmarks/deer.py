"""DEER and quasi-DEER against the sequential scan: wall time versus T and hidden size.

    python -m benchmarks.deer [--cell=gru] [--hidden=16,64] [--lengths=256,1024,4096]
        [--batch=8] [--rounds=3] [--steps=3] [--full_max=2e8] [--tol=1e-5]

A command line over `experiments.parallel_in_time.timing` (its docstring says what is measured): for
each hidden size and length T, the sequential `rnn_jax.unroll`, DEER and quasi-DEER, forward
and forward + backward, timed in interleaved rounds, with Newton's iterations and final
residual. DEER is skipped where its Jacobians would hold more than `--full_max` numbers
(T * batch * D^2), the memory it needs being O(T D^2). The same measurement, with the
linear cells and a run directory: `python -m experiments.parallel_in_time --mode=timing`.
"""

import argparse

from experiments.harness import runtime
from experiments.parallel_in_time import timing as parallel_timing


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden", default="16,64")
    parser.add_argument("--lengths", default="256,1024,4096")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--full_max", type=float, default=2e8)
    parser.add_argument("--tol", type=float, default=None, help="default: by dtype (1e-5)")
    args = parser.parse_args(argv)
    print(f"{args.cell}, batch {args.batch}, float32\n")
    header = True
    for hidden in (int(h) for h in args.hidden.split(",")):
        for time in (int(t) for t in args.lengths.split(",")):
            rows = parallel_timing.measure(
                parallel_timing.Case(args.cell, hidden, time, args.batch), rounds=args.rounds,
                steps=args.steps, tol=args.tol, full_max=args.full_max)
            lines = parallel_timing.table(rows).splitlines()
            print("\n".join(lines if header else lines[2:]), flush=True)
            header = False


if __name__ == "__main__":
    runtime.keep_host_memory()
    main()
