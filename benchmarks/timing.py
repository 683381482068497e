"""Interleaved-round timing, as the benchmarks import it: the code is
`experiments/harness/timing.py` (an experiment times programs too,
`experiments/parallel_in_time/experiment.py --mode=timing`, and the experiments do not import
the benchmarks)."""

from experiments.harness.timing import (
    paired_ratio,
    rotated,
    run_rounds,
    time_first,
    time_steps,
)

__all__ = ["paired_ratio", "rotated", "run_rounds", "time_first", "time_steps"]
