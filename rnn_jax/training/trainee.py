"""What `fit` trains: one model (`OneModel`) or a population (`population.Members`).

`fit` runs the same loop for both; the few things that differ are the operations of a
`Trainee`: where the parameters are, which records a step logs, what a non-finite loss or a
reached target does, and what the summary adds. `trainee_of(state)` picks one by the state's
type, once.
"""

from typing import Any, Protocol

import numpy as np

from rnn_jax.training import population
from rnn_jax.training.records import num_params, scalars


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


class Trainee(Protocol):
    finished_as: str  # summary.json's "stopped" when training ended before num_steps

    def params(self, state: Any) -> Any:
        """The parameters (for a population, stacked along the member axis)."""

    def check_finite(self, pending: list[dict], done: int, last_good: str) -> None:
        """Looks at the host metrics of the steps up to `done` for a non-finite loss."""

    def rows(self, state: Any, done: int, metrics: dict) -> list[dict]:
        """The records logged at step `done` (`metrics`: that step's, on the host)."""

    def add_eval(self, rows: list[dict], evaluated: dict) -> None:
        """Adds `eval_fn`'s results to `rows`, in place."""

    def after_targets(self, state: Any, rows: list[dict], reached: list[bool]) -> tuple:
        """`(state, finished)` once `reached[i]` says whether `rows[i]` reached the target."""

    def describe(self, state: Any) -> str | None:
        """A prefix for the progress line, or None."""

    def finished_line(self, target: tuple | None) -> str:
        """Why training ended early, for the log."""

    def summary(self, state: Any, history: list[dict]) -> dict:
        """summary.json's `final` and `num_params` (and a population's `members`)."""


class OneModel:
    """`fit`'s view of one model's `TrainState`: a non-finite loss stops training with a
    NonFiniteLossError; reaching the target ends it."""

    finished_as = "target"

    def params(self, state: Any) -> Any:
        return state.params

    def check_finite(self, pending: list[dict], done: int, last_good: str) -> None:
        """Raises NonFiniteLossError naming the first of the `pending` steps with a
        non-finite loss (`pending` are the metrics of the steps up to `done`)."""
        for i, metrics in enumerate(pending):
            loss = float(np.asarray(metrics["loss"]))
            if not np.isfinite(loss):
                bad = done - len(pending) + i + 1  # numbered like metrics.jsonl: updates done
                raise NonFiniteLossError(
                    f"non-finite loss ({loss}) at step {bad} (the update on batch get_batch("
                    f"{bad - 1})): stopped; {last_good}. Try a smaller --lr or --clip.")

    def rows(self, state: Any, done: int, metrics: dict) -> list[dict]:
        return [{"step": done, **scalars(metrics)}]

    def add_eval(self, rows: list[dict], evaluated: dict) -> None:
        for row in rows:
            row.update(scalars(evaluated))

    def after_targets(self, state: Any, rows: list[dict], reached: list[bool]) -> tuple:
        return state, any(reached)

    def describe(self, state: Any) -> None:
        return None

    def finished_line(self, target: tuple | None) -> str:
        return f"target {target} reached"

    def summary(self, state: Any, history: list[dict]) -> dict:
        return {"final": history[-1] if history else {}, "num_params": num_params(state.params)}


def trainee_of(state: Any) -> Trainee:
    """`population.Members()` for a `population.Population`, else `OneModel()`."""
    return population.Members() if isinstance(state, population.Population) else OneModel()
