"""Probe behind the LSTM kernel's saved-gate layout: which reads make an XLA:CPU loop slow.

    python -m benchmarks.slice_probe [--batch 32 --hidden 256 --time 2000 --repeats 7]

Each case is a `lax.scan` whose body is one small elementwise step,
`c(t) = tanh(0.9 c(t-1) + a(t) * b(t))` on `[batch, hidden]`, where `a(t)` and `b(t)` are read
from the scanned input(s) in a different way per case; it prints the median time per iteration.
The work is the same in every case; only the layout of the scanned inputs differs. In the
hand-written BPTT the reverse step reads the saved gates exactly like this, so the layout that
is fast here is the one `rnn_jax/fast/kernels.py` saves.
"""

import argparse
import statistics
import time

import jax
import jax.numpy as jnp


def _cases(batch: int, hidden: int, steps: int) -> dict:
    """name -> (a(t), b(t) from the scanned slice x(t), scanned inputs)."""
    key_a, key_b = jax.random.split(jax.random.key(0))
    a = jax.random.normal(key_a, (steps, batch, hidden))
    b = jax.random.normal(key_b, (steps, batch, hidden))
    return {
        "two [T, B, H] arrays": (lambda x: x, (a, b)),
        "two column blocks of one [T, B, 2H] array": (
            lambda x: (x[:, :hidden], x[:, hidden:]), jnp.concatenate([a, b], axis=-1)
        ),
        "two rows of one [T, 2, B, H] array (unroll=2)": (
            lambda x: (x[0], x[1]), jnp.stack([a, b], axis=1)
        ),
        "one [T, B, H] array, read once (b = 1)": (
            lambda x: (x, jnp.ones_like(x)), a
        ),
    }


def make_run(read):
    """The jitted scan of a case: `(carry, xs) -> final c`, `c(t) = tanh(0.9 c(t-1) + a(t) b(t))`."""

    def body(c, x):
        a, b = read(x)
        return jnp.tanh(0.9 * c + a * b), None

    return jax.jit(lambda c, xs: jax.lax.scan(body, c, xs)[0])


def time_case(read, xs, carry, repeats: int) -> float:
    """Median seconds per scan iteration."""
    run = make_run(read)
    run(carry, xs).block_until_ready()  # compile
    steps = jax.tree.leaves(xs)[0].shape[0]
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run(carry, xs).block_until_ready()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / steps


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--time", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args(argv)
    carry = jnp.zeros((args.batch, args.hidden))
    print(f"# B{args.batch} H{args.hidden}, {args.time} iterations; jax {jax.__version__}")
    print("| scanned input(s) | us per iteration |")
    print("|---|---|")
    for name, (read, xs) in _cases(args.batch, args.hidden, args.time).items():
        print(f"| {name} | {time_case(read, xs, carry, args.repeats) * 1e6:.1f} |")


if __name__ == "__main__":
    main()
