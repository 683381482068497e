"""DEER and quasi-DEER against the sequential scan: wall time versus T and hidden size.

    python -m benchmarks.deer [--cell=gru] [--hidden=16,64] [--lengths=256,1024,4096]
        [--batch=8] [--rounds=3] [--steps=3] [--full_max=2e8]

For each hidden size and length T, five jitted programs on the same params and inputs
(float32, batch `--batch`): the sequential `rnn_jax.unroll` (its default backward), DEER
(`jacobian="full"`) and quasi-DEER (`jacobian="diagonal"`), each forward only and forward +
backward (the gradient of the sum of the outputs in the params). They are timed in interleaved
rounds (benchmarks.timing) and each speed-up is the sequential time over the method's time
within a round (above 1: faster than sequential). Newton iterations and the final residual come
from one forward call. DEER is skipped where its Jacobians would hold more than `--full_max`
numbers (T * batch * D^2), the memory it needs being O(T D^2).
"""

import argparse
import statistics

import jax
import jax.numpy as jnp

from benchmarks import timing
from experiments import runtime
from rnn_jax import get_cell, unroll
from rnn_jax.parallel.deer import deer_unroll

METHODS = ("sequential", "full", "diagonal")


def programs(cell, params, xs, method: str):
    """`(forward, forward_backward)` as `() -> None` calls that block, compiled first."""
    if method == "sequential":
        run = lambda p: unroll(cell, p, xs)[0]
    else:
        run = lambda p: deer_unroll(cell, p, xs, jacobian=method, on_failure="return")[0]
    forward = jax.jit(run)
    backward = jax.jit(jax.grad(lambda p: jnp.sum(run(p))))
    calls = (lambda: jax.block_until_ready(forward(params)),
             lambda: jax.block_until_ready(backward(params)))
    for call in calls:
        call()  # compile
    return calls


def newton_info(cell, params, xs, method: str):
    info = jax.jit(lambda p: deer_unroll(cell, p, xs, jacobian=method, on_failure="return")[2])
    return jax.device_get(info(params))


def measure(cell_name: str, hidden: int, time: int, args) -> list[str]:
    """Markdown rows of one (hidden, T): per method, ms and speed-up, forward and fwd+bwd."""
    cell = get_cell(cell_name)
    key_params, key_xs = jax.random.split(jax.random.key(0))
    params = cell.init(key_params, 1, hidden)
    xs = jax.random.normal(key_xs, (args.batch, time, 1))
    state = sum(leaf.shape[-1] for leaf in jax.tree.leaves(cell.initial_carry(params)))
    methods = [m for m in METHODS
               if m != "full" or time * args.batch * state**2 <= args.full_max]
    calls = {}
    for method in methods:
        forward, both = programs(cell, params, xs, method)
        calls[(method, "forward")], calls[(method, "fwd+bwd")] = forward, both
    rounds = timing.run_rounds(calls, args.rounds, args.steps)
    walls = {name: [r[0] for r in rounds[name]] for name in calls}
    rows = []
    for method in methods:
        if method == "sequential":
            iterations, residual = "-", "-"
        else:
            info = newton_info(cell, params, xs, method)
            iterations, residual = f"{int(info.iterations)}", f"{float(info.residual):.1e}"
        cells = []
        for mode in ("forward", "fwd+bwd"):
            ms = 1e3 * statistics.median(walls[(method, mode)])
            ratio = timing.paired_ratio(walls[("sequential", mode)], walls[(method, mode)])
            cells.append(f"{ms:.1f} | {ratio[0]:.2f}x ({ratio[1]:.2f}-{ratio[2]:.2f})")
        rows.append(f"| {hidden} | {time} | {method} | {cells[0]} | {cells[1]} | {iterations} "
                    f"| {residual} |")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cell", default="gru")
    parser.add_argument("--hidden", default="16,64")
    parser.add_argument("--lengths", default="256,1024,4096")
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--full_max", type=float, default=2e8)
    args = parser.parse_args()
    runtime.keep_host_memory()
    print(f"{args.cell}, batch {args.batch}, float32\n")
    print("| hidden | T | method | forward ms | forward vs sequential (median, min-max) | "
          "fwd+bwd ms | fwd+bwd vs sequential | Newton iterations | residual |\n"
          "|---|---|---|---|---|---|---|---|---|")
    for hidden in (int(h) for h in args.hidden.split(",")):
        for time in (int(t) for t in args.lengths.split(",")):
            for row in measure(args.cell, hidden, time, args):
                print(row, flush=True)


if __name__ == "__main__":
    main()
