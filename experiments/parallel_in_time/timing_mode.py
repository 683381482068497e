"""`python -m experiments.parallel_in_time --mode=timing`: every (cell, hidden, T) timed into
the population's timing.json, and the table over them.

Why its own module: a run that trains nothing, resumed case by case; the measuring itself is
`experiments.parallel_in_time.timing` (shared with benchmarks/).
"""

import json
import os

from experiments.harness import reporting
from experiments.harness.records import Report
from experiments.parallel_in_time import timing as parallel_timing
from rnn_jax import training

TIMING = "timing.json"


def measure(config, members: list[dict], run: training.Run) -> None:
    """Times every (cell, hidden, T) of `config` (the experiment's --mode=timing flags) not yet
    in `run`'s timing.json, rewriting the file (whole, by rename) after each:
    `[parallel_timing.measure rows]`."""
    path = run.path / TIMING
    rows = json.loads(path.read_text()) if path.exists() else []
    done = {(r["cell"], r["hidden"], r["T"]) for r in rows}
    for cell in config.timing_cells:
        for hidden in config.hidden_sizes:
            for time in config.lengths:
                if (cell, hidden, time) in done:
                    continue
                measured = parallel_timing.measure(
                    parallel_timing.Case(cell, hidden, time, config.timing_batch, config.inputs),
                    rounds=config.rounds, steps=config.calls, tol=config.tol,
                    max_iterations=config.max_iterations, full_max=config.full_max,
                    seed=members[0]["seed"])
                rows += measured
                path.with_name(TIMING + ".tmp").write_text(json.dumps(rows, indent=1))
                os.replace(path.with_name(TIMING + ".tmp"), path)
                print(parallel_timing.table(measured), flush=True)


def report(run, done: list) -> Report:
    """table_timing.md and .csv from the populations' timing.json."""
    rows = [row for _, _, pop_run in done for row in json.loads(
        (pop_run.path / TIMING).read_text())]
    table = reporting.write_table(run, "table_timing", [parallel_timing.shown(r) for r in rows],
                                  parallel_timing.COLUMNS)
    return Report({"timing": rows}, {"table_timing": table})
