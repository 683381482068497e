"""Where a training step's time goes on XLA:CPU: a `jax.profiler` trace, summed per op.

    python -m benchmarks.profile_step "rnn_jax lstm gather+fast" [--hidden 256 --batch 32]

Prints the ops with the most time per step (ms) and how often each runs per step (100 per
step means: once per scan iteration at T = 100). Trace overhead inflates small ops.
"""

import argparse
import collections
import glob
import gzip
import json
import tempfile

import jax

from benchmarks import jax_models
from rnn_jax import runtime


def profile(name, batch, hidden, time_steps, vocab, steps, top):
    builder, _ = jax_models.VARIANTS[name]
    key_params, key_data = jax.random.split(jax.random.key(0))
    params, loss_fn = builder(key_params, vocab, hidden)
    step, opt_state = jax_models.make_train_step(loss_fn, params)
    tokens = jax.random.randint(key_data, (batch, time_steps + 1), 0, vocab)
    inputs, targets = tokens[:, :-1], tokens[:, 1:]
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
    print(f"# {name}, B{batch} H{hidden} T{time_steps}; ms per step, calls per step")
    for op, (count, duration) in ranked:
        print(f"{duration / steps / 1e3:8.2f} ms {count // steps:5d}x  {op[:90]}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("variant", choices=sorted(jax_models.VARIANTS))
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--time", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=65)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    runtime.keep_host_memory()  # as benchmarks.train_step does by default
    profile(args.variant, args.batch, args.hidden, args.time, args.vocab, args.steps, args.top)


if __name__ == "__main__":
    main()
