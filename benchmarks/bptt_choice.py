"""Truncated BPTT as a choice: memory and time of one char-LM training step against the chunk
length k (`--seq_len`) at equal characters per update (batch x k constant).

    python -m benchmarks.bptt_choice --data_path=../shared/data/tinyshakespeare.txt \
        --chunks 8,16,32,64,128 --chars 4096 --hidden 256 --rounds 5 --steps 3
    python -m benchmarks.bptt_choice --data_path=... --batch 64 --rounds 0   # memory, fixed batch

Memory: XLA's `memory_analysis()` of the compiled training step of one member (one seed of
`experiments/char_lm/experiment.py`'s model): temp + argument + output bytes, less those the donated
train state shares with the output (alias). Deterministic for one build of jax and one
model, unlike a process's resident set. Time: ms per update (median within each round),
interleaved rounds (`experiments.timing`), and the ratio to the reference chunk (k = 64 by
default) within each round, summarised by its median and range over rounds.
"""

import argparse
import statistics

import jax

from experiments.char_lm import experiment as char_lm
from experiments.harness import driver, runtime, template
from experiments.harness.population_state import init_population
from experiments.harness.timing import paired_ratio, run_rounds
from rnn_jax import training


def build_step(argv: list[str]):
    """`(step, state, batch)`: char_lm's jitted training step for the one member of `argv`
    (char_lm flags), its step-0 population state and training batch 0."""
    config = driver.parse(char_lm.EXPERIMENT, ["--seed=0", *argv])
    ((pop, members),) = template.expand(config)
    task = char_lm.task(pop)
    state, optimizer, keys = init_population(task, pop, members)
    step = training.make_train_step(task.loss_fn, optimizer)
    batch = jax.jit(jax.vmap(task.sample, in_axes=(0, None)))(keys["data"], 0)
    return step, state, batch


def step_memory(step, state, batch) -> dict[str, int]:
    """Bytes of the compiled step (XLA's memory_analysis): `temp`, `argument`, `output`,
    `alias` (output buffers that reuse donated arguments) and `peak` = temp + argument +
    output - alias."""
    analysis = step.jitted.lower(state, batch).compile().memory_analysis()
    row = {"temp": analysis.temp_size_in_bytes, "argument": analysis.argument_size_in_bytes,
           "output": analysis.output_size_in_bytes, "alias": analysis.alias_size_in_bytes}
    return {**row, "peak": row["temp"] + row["argument"] + row["output"] - row["alias"]}


def updater(step, state, batch):
    """A no-argument function that runs one update (on the same batch) and waits for it."""
    holder = [state]

    def update():
        holder[0], metrics = step(holder[0], batch)
        jax.block_until_ready(metrics)

    return update


def measure(base: list[str], chunks: list[int], chars: int, rounds: int, steps: int,
            reference: int, fixed_batch: int = 0) -> list[dict]:
    """One row per k: batch = chars // k (or `fixed_batch`), memory, and with `rounds` > 0 ms
    per update and the ratio to `reference`."""
    updates, rows = {}, []
    for k in chunks:
        rows_k = fixed_batch or chars // k
        step, state, batch = build_step([*base, f"--seq_len={k}", f"--batch={rows_k}"])
        rows.append({"k": k, "batch": rows_k, **step_memory(step, state, batch)})
        if rounds:
            updates[k] = updater(step, state, batch)
            updates[k]()  # compile outside the rounds
    if not rounds:
        return rows
    timed = run_rounds(updates, rounds, steps)
    for row in rows:
        wall = [r[0] for r in timed[row["k"]]]
        ratio = paired_ratio([r[0] for r in timed[reference]], wall)
        row.update(ms_per_update=1e3 * statistics.median(wall), time_vs_ref=1 / ratio[0],
                   time_vs_ref_range=(1 / ratio[2], 1 / ratio[1]))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data_path", required=True, help="the text (tiny-shakespeare)")
    parser.add_argument("--chunks", default="8,16,32,64,128", help="k values (--seq_len)")
    parser.add_argument("--chars", type=int, default=4096, help="batch x k for every k")
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=3, help="updates timed per round")
    parser.add_argument("--reference", type=int, default=64, help="the k ratios refer to")
    parser.add_argument("--batch", type=int, default=0, help="a fixed batch instead of "
                        "--chars // k (memory at a fixed batch)")
    args = parser.parse_args()
    chunks = [int(k) for k in args.chunks.split(",")]
    if args.reference not in chunks or any(k < 1 or args.chars % k for k in chunks):
        parser.error(f"expected --chunks that divide --chars ({args.chars}) and include "
                     f"--reference ({args.reference}), received {args.chunks}")
    if args.batch < 0 or args.rounds < 0:
        parser.error(f"expected --batch >= 0 and --rounds >= 0, received {args.batch} and "
                     f"{args.rounds}")
    runtime.keep_host_memory()
    base = [f"--data_path={args.data_path}", f"--hidden={args.hidden}", "--checkpoint_every=0"]
    rows = measure(base, chunks, args.chars, args.rounds, args.steps, args.reference,
                   args.batch)
    print(f"| k | batch | peak MiB | temp MiB | argument MiB | ms per update | time / k="
          f"{args.reference} (range) |\n|---|---|---|---|---|---|---|")
    for r in rows:
        timing = "| - | - |"
        if "ms_per_update" in r:
            low, high = r["time_vs_ref_range"]
            timing = f"| {r['ms_per_update']:.0f} | {r['time_vs_ref']:.2f} ({low:.2f}-{high:.2f}) |"
        print(f"| {r['k']} | {r['batch']} | {r['peak'] / 2**20:.2f} | {r['temp'] / 2**20:.2f} "
              f"| {r['argument'] / 2**20:.2f} {timing}")


if __name__ == "__main__":
    main()
