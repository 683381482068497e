"""Timing one training step, the same way for every implementation."""

import resource
import time
from typing import Callable


def time_steps(step: Callable[[], object], steps: int):
    """Calls `step()` (which must block until done) `steps + 1` times.

    Returns `(first-step seconds, later steps' seconds, their process CPU seconds, their minor
    page faults)`; the first call includes compilation.
    """
    times, cpu_times, faults = [], [], []
    for _ in range(steps + 1):
        faults_start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        start, cpu_start = time.perf_counter(), time.process_time()
        step()
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults_start)
    return times[0], times[1:], cpu_times[1:], faults[1:]
