"""Probe behind the reverse step's W^T: how the layout of W changes a small dot in an XLA:CPU loop.

    python -m benchmarks.dot_layout [--batch 32 --hidden 256 --time 100 --rounds 7]

Each case is a `lax.scan` of `time` steps whose body is the recurrent dot of one LSTM step
followed by a `tanh` (so the next step depends on it), with the weight stored in a different
layout; it prints the median time per iteration over `--rounds` rounds, the cases alternating
within each round (this VM's speed drifts). Same FLOPs in every case:

    forward  h(t-1) [B, H] x W [H, 4H]        (rnn_jax's forward step)
    backward delta [B, 4H] x W^T              W^T as W [H, 4H] with a transposed contraction,
                                              or as a materialised [4H, H] array (the kernels'
                                              `backward_weights`)
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp


def _cases(batch: int, hidden: int) -> dict:
    """name -> (step(carry, weight) -> carry, initial carry, weight)."""
    key_w, key_h, key_d = jax.random.split(jax.random.key(0), 3)
    W = jax.random.normal(key_w, (hidden, 4 * hidden)) / jnp.sqrt(hidden)  # [H, 4H]
    h = jax.random.normal(key_h, (batch, hidden))
    delta = jax.random.normal(key_d, (batch, 4 * hidden))

    def widen(x):  # [B, H] -> [B, 4H]: the next step's delta
        return jnp.tile(x, (1, 4))

    return {
        "forward: h [B, H] x W [H, 4H]": (lambda h, W: jnp.tanh(h @ W)[:, :hidden], h, W),
        "backward: delta x W.T, W stored [H, 4H]": (
            lambda d, W: widen(jnp.tanh(d @ W.T)), delta, W
        ),
        "backward: delta x W_T, W_T stored [4H, H]": (
            lambda d, W_T: widen(jnp.tanh(d @ W_T)), delta, jnp.asarray(W.T)
        ),
    }


def make_run(step, steps: int):
    """The jitted scan of a case: `(carry, weight) -> carry after `steps` steps."""
    return jax.jit(lambda c, w: jax.lax.scan(lambda c, _: (step(c, w), None), c, None, steps)[0])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--time", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5, help="scans per round and case")
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args(argv)
    runs = {}
    for name, (step, carry, weight) in _cases(args.batch, args.hidden).items():
        run = make_run(step, args.time)
        run(carry, weight).block_until_ready()  # compile
        runs[name] = (run, carry, weight)
    seconds = {name: [] for name in runs}
    for _ in range(args.rounds):
        for name, (run, carry, weight) in runs.items():
            start = time.perf_counter()
            for _ in range(args.repeats):
                run(carry, weight).block_until_ready()
            seconds[name].append((time.perf_counter() - start) / args.repeats / args.time)
    print(f"# B{args.batch} H{args.hidden}, {args.time} steps, {args.rounds} rounds; jax {jax.__version__}")
    print("| case | us per step, median round | fastest-slowest round |")
    print("|---|---|---|")
    for name, values in seconds.items():
        us = [v * 1e6 for v in values]
        print(f"| {name} | {statistics.median(us):.1f} | {min(us):.1f}-{max(us):.1f} |")


if __name__ == "__main__":
    main()
