"""The char-LM training step split over XLA CPU devices (`training.make_train_step(mesh=...)`),
beside the one-device step and PyTorch's `nn.LSTM` / `nn.GRU`, in one process.

    python -m benchmarks.data_parallel                         # B32 H256 and B64 H512, 2 devices
    python -m benchmarks.data_parallel --sizes 32x256 --cells lstm --rounds 5 --steps 3

`main` splits the CPU into `--devices` XLA devices before JAX starts its backend (the split is
the setting measured; nothing else process-wide is changed, as in a user's own script). Rows
per cell and size: torch; `rnn_jax.unroll` (embedded inputs) and `rnn_jax tokens` (the
char-LM's token gather), each through the library's one train step
(`rnn_jax.training.make_train_step`, Adam 1e-3, state donated) on one device and with the batch
split over the devices. Timing: interleaved rounds, ratios within a round (`benchmarks.timing`);
`vs torch` as in `benchmarks.train_step`, and `vs 1 device`: the split step against the same
implementation on one device, within each round.
"""

import argparse
import statistics
import sys

import jax
import optax

from benchmarks import implementations, model, timing
from rnn_jax import distributed, training

VOCAB = 65
JAX_KEYS = ("rnn_jax.unroll", "rnn_jax tokens")


def library_step(impl, weights, inputs, targets, mesh) -> callable:
    """`step() -> loss` through `rnn_jax.training`'s step (on `mesh`, or one device if None)."""
    params, loss_fn = implementations.loss_function(impl, weights)
    optimizer = optax.adam(1e-3)
    step_fn = training.make_train_step(
        lambda p, batch, key, stream: (loss_fn(p, *batch), ({}, stream)), optimizer, mesh=mesh)
    params = jax.tree.map(jax.numpy.array, params)  # own buffers: the step donates them
    state = [step_fn.place(training.init_state(params, optimizer, jax.random.key(0)))]
    batch = (inputs, targets) if mesh is None else distributed.place(
        (inputs, targets), distributed.split(mesh, 0))

    def step() -> float:
        state[0], metrics = step_fn(state[0], batch)
        return float(metrics["loss"])  # waits for the step

    return step


def measure(cell, batch, hidden, time_steps, devices, rounds, steps) -> list[dict]:
    """Rows for one cell and size: torch, and each JAX implementation on 1 and `devices`."""
    key_weights, key_batch = jax.random.split(jax.random.key(0))
    weights = model.init_weights(key_weights, cell, VOCAB, hidden)
    inputs, targets = model.make_batch(key_batch, batch, time_steps, VOCAB)
    mesh = distributed.make_mesh(devices)
    by_key = {impl.key: impl for impl in implementations.select(None, [cell])}
    steps_by_name, names = {}, {}
    if implementations.installed(by_key["torch"]):
        steps_by_name["torch"] = implementations.make_step(by_key["torch"], weights, inputs,
                                                           targets)
        names["torch"] = by_key["torch"].name
    for key in JAX_KEYS:
        for n, on in ((1, None), (devices, mesh)):
            steps_by_name[f"{key}@{n}"] = library_step(by_key[key], weights, inputs, targets,
                                                       on)
            names[f"{key}@{n}"] = f"{by_key[key].name}, {n} device{'s' * (n > 1)}"
    firsts = {name: timing.time_first(step) for name, step in steps_by_name.items()}
    results = timing.run_rounds(steps_by_name, rounds, steps)
    walls = {name: [wall for wall, _, _ in rounds_] for name, rounds_ in results.items()}
    rows = []
    for name, wall in walls.items():
        single = walls.get(name.replace(f"@{devices}", "@1")) if name.endswith(
            f"@{devices}") else None
        rows.append({
            "cell": cell, "batch": batch, "hidden": hidden, "name": names[name],
            "ms": 1e3 * statistics.median(wall),
            "tokens_per_s": batch * time_steps / statistics.median(wall),
            "vs_torch": timing.paired_ratio(walls["torch"], wall) if "torch" in walls and
            name != "torch" else None,
            "vs_one": timing.paired_ratio(single, wall) if single else None,
            "first_s": firsts[name][0], "first_loss": firsts[name][1]})
    return rows


def _ratio(ratio) -> str:
    return "-" if ratio is None else "{:.2f}x ({:.2f}-{:.2f})".format(*ratio)


HEADER = ("| cell | B | H | implementation | ms/step | tokens/s | vs torch (paired rounds) "
          "| vs 1 device | first step s | first loss |\n" + "|" + "---|" * 10)


def table(rows: list[dict]) -> str:
    """Markdown rows (without the header), one per implementation."""
    lines = [f"| {r['cell']} | {r['batch']} | {r['hidden']} | {r['name']} | {r['ms']:.1f} "
              f"| {r['tokens_per_s']:,.0f} | {_ratio(r['vs_torch'])} | {_ratio(r['vs_one'])} "
              f"| {r['first_s']:.2f} | {r['first_loss']:.5f} |" for r in rows]
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="32x256,64x512", help="BxH,BxH,...")
    parser.add_argument("--cells", default="lstm,gru")
    parser.add_argument("--devices", type=int, default=2, help="XLA CPU devices to split into")
    parser.add_argument("--time", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3)
    args = parser.parse_args(argv)
    if args.devices < 2:
        parser.error(f"--devices: expected at least 2, received {args.devices}")
    distributed.set_cpu_device_count(args.devices)  # before JAX starts its CPU backend
    print(f"{args.devices} XLA CPU devices; {implementations.versions()}\n{HEADER}", flush=True)
    for size in args.sizes.split(","):
        batch, hidden = (int(v) for v in size.split("x"))
        for cell in args.cells.split(","):  # each group's rows as soon as they are measured
            print(table(measure(cell, batch, hidden, args.time, args.devices, args.rounds,
                                args.steps)), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
