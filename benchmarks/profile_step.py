"""Where a training step's time goes on XLA:CPU: a `jax.profiler` trace, summed per op.

    python -m benchmarks.profile_step "rnn_jax tokens" [--cell lstm --batch 32 --hidden 256]

Prints the ops with the most time per step (ms) and how often each runs per step (100 per
step means: once per scan iteration at T = 100). Trace overhead inflates small ops. Any JAX
implementation of `benchmarks.implementations` can be profiled; like the benchmark's headline,
no process-wide settings unless `--keep_host_memory`.
"""

import argparse
import collections
import glob
import gzip
import json
import tempfile

import jax
import jax.numpy as jnp

from benchmarks import implementations, jax_models, model
from experiments.harness import runtime


def profile(key, cell, batch, hidden, time_steps, vocab, steps, top):
    impls = implementations.select([key], [cell])
    if not impls:
        raise ValueError(f"expected an implementation of the {cell}, received {key!r}")
    impl = impls[0]
    key_weights, key_batch = jax.random.split(jax.random.key(0))
    weights = model.init_weights(key_weights, cell, vocab, hidden)
    inputs, targets = model.make_batch(key_batch, batch, time_steps, vocab)
    params, loss_fn = implementations.loss_function(impl, weights)
    params = jax.tree.map(jnp.array, params)  # its own buffers: the step donates them
    step, opt_state = jax_models.make_train_step(loss_fn, params)
    for _ in range(3):  # compile and warm up outside the trace
        params, opt_state, loss = step(params, opt_state, inputs, targets)
    loss.block_until_ready()
    with tempfile.TemporaryDirectory() as directory:
        with jax.profiler.trace(directory):
            for _ in range(steps):
                params, opt_state, loss = step(params, opt_state, inputs, targets)
                loss.block_until_ready()
        trace_file = glob.glob(f"{directory}/**/*.trace.json.gz", recursive=True)[0]
        with gzip.open(trace_file) as handle:
            events = json.load(handle)["traceEvents"]
    totals = collections.defaultdict(lambda: [0, 0.0])
    for event in events:
        if event.get("ph") == "X" and "Execute" not in event["name"] and ".py" not in event["name"]:
            totals[event["name"]][0] += 1
            totals[event["name"]][1] += event["dur"]  # microseconds
    ranked = sorted(totals.items(), key=lambda item: -item[1][1])[:top]
    print(f"# {impl.name} ({cell}), B{batch} H{hidden} T{time_steps}; ms per step, calls per step")
    for op, (count, duration) in ranked:
        print(f"{duration / steps / 1e3:8.2f} ms {count // steps:5d}x  {op[:90]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    jax_keys = [k for k in implementations.KEYS if k != implementations.REFERENCE]
    parser.add_argument("implementation", choices=jax_keys)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--time", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--keep_host_memory", action="store_true",
                        help="call experiments.harness.runtime.keep_host_memory() first")
    args = parser.parse_args(argv)
    if args.keep_host_memory:
        runtime.keep_host_memory()  # process-wide: before any JAX computation
    profile(args.implementation, args.cell, args.batch, args.hidden, args.time, args.vocab,
            args.steps, args.top)


if __name__ == "__main__":
    main()
