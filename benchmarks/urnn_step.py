"""uRNN training step, factored and dense W, next to the LSTM it is compared with.

    python -m benchmarks.urnn_step --keep_host_memory    # the table in benchmarks/README.md
    python -m benchmarks.urnn_step --rounds 3 --steps 3  # no process-wide settings

One training step: `jax.value_and_grad` of a mean-squared readout loss (a linear readout of
every step's output to 10 targets, `rnn_jax.losses.squared_error`) and an Adam update, jitted
with the state donated (`benchmarks.jax_models.make_train_step`); inputs `[batch, T, 10]` (the
copying task's 10 symbols), float32. Cases run in `--rounds` interleaved rounds of `--steps`
steps (`benchmarks.timing`). Columns: ms/step, the median over rounds of each round's median
step; vs LSTM, the median (and range) over rounds of this case's step time over the LSTM's at
the same T, within the round (below 3: the uRNN's step costs less than 3 LSTM steps).
`--keep_host_memory` applies `experiments.harness.runtime.keep_host_memory()` first, as the
experiments' command lines do by default: the uRNN's `[T, batch, hidden]` complex buffers are
large, and without it each step page-faults them in afresh.
"""

import statistics
from typing import Callable, NamedTuple

import jax

from benchmarks import jax_models, timing
from benchmarks.train_step import rounds_arguments
from rnn_jax import get_cell, losses, readout, unroll
from rnn_jax.unroll import output_size

INPUTS = OUTPUTS = 10


class Case(NamedTuple):
    name: str
    cell: str
    options: dict  # get_cell options
    hidden: int
    time: int
    batch: int = 20


CASES = [
    Case("lstm", "lstm", {}, 128, 200),
    Case("urnn factored", "urnn", {"dense_W": False}, 512, 200),
    Case("urnn dense", "urnn", {"dense_W": True}, 512, 200),
    Case("lstm", "lstm", {}, 128, 100),
    Case("urnn factored", "urnn", {"dense_W": False}, 128, 100),
    Case("urnn dense", "urnn", {"dense_W": True}, 128, 100),
]


def loss_function(cell) -> Callable:
    """`loss_fn(params, xs, targets)`: squared error of the readout of every step's output."""

    def loss_fn(params, xs, targets):
        ys, _ = unroll(cell, params["cell"], xs)
        return losses.squared_error(readout.linear(params["readout"], ys), targets)

    return loss_fn


def make_step(case: Case, seed: int = 0, cell=None) -> Callable[[], float]:
    """`step() -> loss`: one training step of `case` (or of `cell`, when given), blocking."""
    cell = get_cell(case.cell, **case.options) if cell is None else cell
    key_cell, key_readout, key_x, key_y = jax.random.split(jax.random.key(seed), 4)
    cell_params = cell.init(key_cell, INPUTS, case.hidden)
    params = {"cell": cell_params,
              "readout": readout.init_linear(key_readout, output_size(cell, cell_params), OUTPUTS)}
    xs = jax.random.normal(key_x, (case.batch, case.time, INPUTS))
    targets = jax.random.normal(key_y, (case.batch, case.time, OUTPUTS))
    train_step, opt_state = jax_models.make_train_step(loss_function(cell), params)
    state = [params, opt_state]

    def step() -> float:
        state[0], state[1], loss = train_step(state[0], state[1], xs, targets)
        return float(loss)  # waits for the step

    return step


def label(case: Case) -> str:
    return f"{case.name} H{case.hidden} T{case.time} B{case.batch}"


def measure(cases: dict, rounds: int, steps: int) -> list[dict]:
    """Rows for `{label: (case, step)}`, timed in interleaved rounds; the reference of each
    row is the LSTM at the same T."""
    for _, step in cases.values():
        timing.time_first(step)  # compile outside the rounds
    results = timing.run_rounds({name: step for name, (_, step) in cases.items()}, rounds, steps)
    walls = {name: [wall for wall, _, _ in rounds_] for name, rounds_ in results.items()}
    rows = []
    for name, (case, _) in cases.items():
        reference = next((n for n, (c, _) in cases.items()
                          if c.cell == "lstm" and c.time == case.time), None)
        ratio = (None if reference is None or reference == name  # this row's time / LSTM's
                 else timing.paired_ratio(walls[name], walls[reference]))
        rows.append({"label": name, "median_ms": 1e3 * statistics.median(walls[name]),
                     "vs_lstm": ratio})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = ["| case | ms/step | vs LSTM (paired rounds) |", "|---|---|---|"]
    for row in rows:
        ratio = "reference" if row["vs_lstm"] is None else "{:.2f}x ({:.2f}-{:.2f})".format(
            *row["vs_lstm"])
        lines.append(f"| {row['label']} | {row['median_ms']:.1f} | {ratio} |")
    return "\n".join(lines)


def main(argv=None) -> None:
    args = rounds_arguments(__doc__.splitlines()[0], argv, unit="steps")
    cases = {label(case): (case, make_step(case)) for case in CASES}
    print(format_rows(measure(cases, args.rounds, args.steps)))


if __name__ == "__main__":
    main()
