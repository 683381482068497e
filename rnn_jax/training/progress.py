"""Where `fit`'s records go: its history, the run's metrics.jsonl, and one absl line per log.

    step 100/200 loss 0.1 grad_norm 0.3 | 5.0 steps/s, 20s left
    step 100/200 5 members: 3 training, 1 solved, 1 diverged; medians: loss 0.1 | ...
"""

import time

import numpy as np
from absl import logging

from rnn_jax.training.run_dir import Run


class Recorder:
    """The records of one `fit` call, its wall clock (from construction) and the step count
    reached (`completed`, for the message of an interrupt)."""

    def __init__(self, run: Run | None, num_steps: int):
        self.started = time.perf_counter()
        self.run, self.num_steps = run, num_steps
        self.history: list[dict] = []
        self.completed = 0
        self._window = (0, self.started)  # (step, time) the speed is measured from

    def resume(self, step: int) -> None:
        """Starts counting at `step`; the run's records after it are dropped (atomically), as
        those steps run again, and the ones before it become the history."""
        if self.run is not None:
            self.history = self.run.drop_metrics_after(step)
        self.completed = step
        self._window = (step, time.perf_counter())

    def wall_s(self) -> float:
        return time.perf_counter() - self.started

    def add(self, rows: list[dict], done: int, described: str | None) -> None:
        """Records `rows` (stamped with `wall_s`) and logs the progress line (prefixed by
        `described`, e.g. a population's member counts)."""
        now = time.perf_counter()
        for row in rows:
            row["wall_s"] = round(now - self.started, 3)
            self.history.append(row)
            if self.run is not None:
                self.run.log(row)
        start, then = self._window
        log_progress(rows, done, self.num_steps, (done - start) / max(now - then, 1e-9),
                     described)
        self._window = (done, now)


def log_progress(rows: list[dict], done: int, num_steps: int, speed: float,
                 described: str | None) -> None:
    """One absl line: the medians of the float metrics over `rows` (a model's one record, or
    a population's logged members), after `described` when given; the speed over the last
    interval and the time left at that speed (an upper bound for a population, whose members
    may all stop before `num_steps`)."""
    names = [k for k, v in rows[0].items() if isinstance(v, float) and k != "wall_s"] if rows \
        else []
    values = {k: float(np.median([r[k] for r in rows])) for k in names}
    shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    if described is not None:
        shown = f"{described}; medians: {shown}"
    left = duration((num_steps - done) / speed) if speed > 0 else "?"
    logging.info("step %d/%d %s | %.1f steps/s, %s left", done, num_steps, shown, speed, left)


def duration(seconds: float) -> str:
    """`seconds` for a person: '42s', '5m20s', '3h05m'."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
