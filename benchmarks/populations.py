"""Populations: step time per member for P = 1, 4, 16, 64 against running them one by one.

    python -m benchmarks.populations [--sizes=1,4,16,64] [--rounds=5] [--steps=10]

Two models of the result pages: the parity LSTM (hidden 16, T = 20, batch 32, Adam) and the
copying uRNN (hidden 128, delay T = 100 so 120 steps, batch 20, RMSProp). A population of P
trains as one vmapped step (rnn_jax.training.population via training.make_train_step);
running the members one after another costs P single steps. Sizes are timed in interleaved rounds
(benchmarks.timing), and each ratio is taken within a round. Columns: ms per population
step, ms per member, and throughput against one member at a time (P * t(1) / t(P)).
"""

import argparse
import statistics

import jax
import jax.numpy as jnp

from benchmarks import timing
from experiments.harness import runtime
from rnn_jax import losses, sequence_model, training
from rnn_jax.cells import get_cell
from rnn_jax.data import copying, parity
from rnn_jax.training import population

MODELS = {
    # name: (cell, input size, hidden, optimizer, batch sampler, loss)
    "parity LSTM h16 T20 B32": ("lstm", 1, 16, "adam",
                                lambda key: parity.sample(key, 32, 20), "binary"),
    "copying uRNN h128 T100 B20": ("urnn", copying.NUM_TOKENS, 128, "rmsprop",
                                   lambda key: copying.sample(key, 20, 100), "softmax"),
}


def make_loss(cell, kind: str):
    def loss_fn(params, batch, key, stream):
        xs, ys = batch
        out = sequence_model.apply(cell, params, xs)
        if kind == "binary":
            loss = losses.binary_cross_entropy(out[..., 0], ys)
        else:
            loss = losses.softmax_cross_entropy(out, ys)
        return loss, ({}, stream)
    return loss_fn


def population_step(name: str, size: int):
    """A `() -> None` that runs one training step of a population of `size` members."""
    cell_name, inputs, hidden, optimizer_name, sample, kind = MODELS[name]
    cell = get_cell(cell_name)
    outputs = 1 if kind == "binary" else copying.NUM_TOKENS
    optimizer = training.make_member_optimizer(optimizer_name)

    def member(key):
        params = sequence_model.init(key, cell, inputs, hidden, outputs)
        opt_state = training.init_member_state(optimizer, params, lr=1e-3, clip=1.0)
        return training.TrainState(params, opt_state, jnp.zeros((), jnp.int32), key)

    keys = jax.random.split(jax.random.key(0), size)
    state = [population.create(jax.vmap(member)(keys))]
    batch = jax.vmap(sample)(keys)
    step = training.make_train_step(make_loss(cell, kind), optimizer)

    def run():
        state[0], metrics = step(state[0], batch)
        jax.block_until_ready(metrics["loss"])

    run()  # compile
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1,4,16,64")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    runtime.keep_host_memory()
    sizes = [int(s) for s in args.sizes.split(",")]
    print("| model | P | ms / population step | ms / member | throughput vs one at a time "
          "(median, min-max over rounds) |\n|---|---|---|---|---|")
    for name in args.models.split(","):
        steps = {size: population_step(name, size) for size in sizes}
        rounds = timing.run_rounds(steps, args.rounds, args.steps)
        walls = {size: [r[0] for r in rounds[size]] for size in sizes}
        for size in sizes:
            speedup = [size * one / t for one, t in zip(walls[sizes[0]], walls[size])]
            ms = 1e3 * statistics.median(walls[size])
            print(f"| {name} | {size} | {ms:.2f} | {ms / size:.3f} | "
                  f"{statistics.median(speedup):.2f}x ({min(speedup):.2f}-{max(speedup):.2f}) |")


if __name__ == "__main__":
    main()
