"""When `fit` saves checkpoints and where it resumes from.

A run resumes from its newest checkpoint that restores and verifies (`Checkpointer.
restore_latest`: a corrupt one is named and the one before it used). Parameters that are not
all finite are never saved: the save raises NonFiniteLossError naming the last checkpoint whose
parameters are finite, so a restart never resumes into NaNs. `NoCheckpoints` stands for
`checkpoint_every=0` with the same operations, so the loop does not ask which it has.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging

from rnn_jax import distributed
from rnn_jax.training.checkpoint import Checkpointer
from rnn_jax.training.trainee import NonFiniteLossError


def all_finite(tree: Any) -> bool:
    """Whether every floating-point leaf of `tree` is finite (one host transfer)."""
    leaves = [np.asarray(x) for x in jax.device_get(jax.tree.leaves(tree))]
    return all(np.isfinite(x).all() for x in leaves if np.issubdtype(x.dtype, np.inexact))


class Checkpoints:
    """A run's checkpoints in `directory`, saved every `every` steps and at the end."""

    def __init__(self, directory: str | Path, every: int, params_of: Callable[[Any], Any]):
        self.checkpointer = Checkpointer(directory)
        self.every, self.params_of = every, params_of
        self.last_finite: int | None = None  # the newest step saved with finite parameters

    def resume(self, state: Any) -> Any:
        """The newest valid checkpoint restored into `state`'s structure, or `state`."""
        restored = self.checkpointer.restore_latest(state)
        if restored is None:
            return state
        logging.info("resumed from %s at step %d", self.checkpointer.directory,
                     int(restored.step))
        self.last_finite = int(restored.step) if all_finite(self.params_of(restored)) else None
        return restored

    def due(self, done: int, num_steps: int) -> bool:
        return done == num_steps or done % self.every == 0

    def save(self, state: Any) -> None:
        """Saves `state`; NonFiniteLossError (nothing saved) when its parameters are not all
        finite."""
        if not all_finite(self.params_of(state)):
            raise NonFiniteLossError(
                f"the parameters became non-finite by step {int(state.step)} (not saved): "
                f"stopped; {self.last_good()}. Try a smaller --lr or --clip.")
        self.last_finite = self.checkpointer.save(state)

    def save_final(self, state: Any) -> None:
        """Saves `state` unless its step is saved already."""
        if int(state.step) not in self.checkpointer.all_steps():
            self.save(state)

    def last_good(self) -> str:
        if self.last_finite is None:
            return f"no checkpoint with finite parameters in {self.checkpointer.directory}"
        return (f"the last checkpoint with finite parameters is step {self.last_finite} in "
                f"{self.checkpointer.directory}")

    def resumes_from(self) -> str:
        saved = self.checkpointer.latest_step()
        if saved is None:
            return "no checkpoint saved yet: a restart trains it from step 0"
        return f"a restart resumes from its checkpoint at step {saved}"

    def close(self) -> None:
        self.checkpointer.close()


class NoCheckpoints:
    """`checkpoint_every=0` (or no directory): nothing is saved, and a restart starts over."""

    def due(self, done: int, num_steps: int) -> bool:
        return False

    def save(self, state: Any) -> None:
        pass

    def save_final(self, state: Any) -> None:
        pass

    def last_good(self) -> str:
        return "no checkpoints are saved (checkpoint_every=0)"

    def resumes_from(self) -> str:
        return "checkpoints are off (checkpoint_every=0): a restart trains it from step 0"

    def close(self) -> None:
        pass


def open_checkpoints(directory: str | Path | None, every: int, state: Any,
                     place: Callable[[Any], Any],
                     params_of: Callable[[Any], Any]) -> tuple[Checkpoints | NoCheckpoints, Any]:
    """`(checkpoints, state)`: with a `directory` and `every > 0`, `state` placed by `place`
    (its shardings are the restored arrays') and resumed from the newest valid checkpoint."""
    if directory is None or every <= 0:
        return NoCheckpoints(), state
    distributed.barrier("run directory made")  # by process 0, before the others use it
    state = place(state)
    checkpoints = Checkpoints(directory, every, params_of)
    return checkpoints, checkpoints.resume(state)
