"""Timing programs the same way for every implementation, in interleaved rounds.

A shared machine's speed drifts over minutes, so implementations are timed in rounds: every
round times each implementation for a few steps, one after the other (the order rotating from
round to round), and the comparison that counts is the ratio *within* a round, measured
seconds apart, summarised by its median over rounds. Used by the benchmarks (through
`benchmarks/timing.py`) and by `experiments/parallel_in_time/timing.py`.
"""

import resource
import statistics
import time
from typing import Callable, Sequence


def time_first(step: Callable[[], float]) -> tuple[float, float]:
    """`(seconds, loss)` of the first call (compilation included)."""
    start = time.perf_counter()
    loss = step()
    return time.perf_counter() - start, loss


def time_steps(step: Callable[[], object], steps: int) -> tuple[list, list, list]:
    """Calls `step()` (which must block until done) `steps` times; returns per-step lists of
    wall seconds, process CPU seconds (all threads) and minor page faults."""
    times, cpu_times, faults = [], [], []
    for _ in range(steps):
        faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start)
    return times, cpu_times, faults


def rotated(names: Sequence[str], round_index: int) -> list[str]:
    """The order of round `round_index`: `names` rotated left by the round number, so no
    implementation always runs first (after a pause) or right after the same neighbour."""
    shift = round_index % len(names) if names else 0
    return list(names[shift:]) + list(names[:shift])


def run_rounds(steps_by_name: dict, rounds: int, steps: int, timer=time_steps) -> dict:
    """Times every step function `steps` times per round, for `rounds` interleaved rounds.

    Returns `{name: [per round: (median wall s, median CPU s, median faults)]}`.
    """
    results = {name: [] for name in steps_by_name}
    for round_index in range(rounds):
        for name in rotated(list(steps_by_name), round_index):
            times, cpu_times, faults = timer(steps_by_name[name], steps)
            results[name].append(
                (statistics.median(times), statistics.median(cpu_times), statistics.median(faults))
            )
    return results


def paired_ratio(reference: Sequence[float], measured: Sequence[float]) -> tuple[float, ...]:
    """Speed relative to the reference within each round, `reference[r] / measured[r]` (time
    ratios: above 1 is faster than the reference); returns `(median, min, max)` over rounds."""
    if len(reference) != len(measured) or not reference:
        raise ValueError(f"expected two equal, non-empty lists of round times, received lengths "
                         f"{len(reference)} and {len(measured)}")
    ratios = [r / m for r, m in zip(reference, measured)]
    return statistics.median(ratios), min(ratios), max(ratios)
