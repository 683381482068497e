"""Populations: P models (seeds x hyperparameters) trained as one vmapped program.

    members = jax.vmap(init_member)(keys, values)       # a TrainState, every leaf [P, ...]
    state = population.create(members)
    state, history = fit(state, make_train_step(loss_fn, optimizer), get_batch,
                         num_steps=1000)                # get_batch(step) -> batch [P, ...]

Small RNNs leave most of a machine idle in one training step; because parameters are plain
pytrees, a leading member axis turns P independent runs into one compiled step (`jax.vmap`).
Members never mix: nothing in the step reduces over the member axis, so each member's numbers
are those of its own run.

Each member stops on its own. A member whose loss or parameters become non-finite is frozen
at its last finite state inside the step (its update is masked out), `diverged` says so, and
the others go on; `fit` freezes a member that reaches its target the same way (`freeze`). A
frozen member's state never changes again, and it is not logged after the step it stopped at.
`Members` is `fit`'s view of a population (the `Trainee` operations of
`rnn_jax.training.trainee`): one record per member, members stopping on their own.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from rnn_jax.training.records import num_params, scalars


class Population(NamedTuple):
    members: Any  # the members' TrainState: every leaf has a leading [P] axis
    step: jax.Array  # int32 scalar: training steps run (a frozen member's own step stays)
    active: jax.Array  # [P] bool: still training
    stopped_at: jax.Array  # [P] int32: the step a member stopped at; 0 while active
    diverged: jax.Array  # [P] bool: stopped because its loss or parameters became non-finite


def create(members: Any) -> Population:
    """Step 0 of a population whose member states are stacked along a leading axis."""
    sizes = {leaf.shape[0] if np.ndim(leaf) else None for leaf in jax.tree.leaves(members)}
    if len(sizes) != 1 or None in sizes or 0 in sizes:
        raise ValueError("expected member states stacked along one leading axis of size P >= 1"
                         f", received leading sizes {sorted(sizes, key=str)}")
    p = sizes.pop()
    return Population(members, jnp.zeros((), jnp.int32), jnp.ones(p, bool),
                      jnp.zeros(p, jnp.int32), jnp.zeros(p, bool))


def size(state: Population) -> int:
    return int(state.active.shape[0])


def _all_finite(tree: Any) -> jax.Array:
    flags = [jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)
             if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(flags)) if flags else jnp.array(True)


def masked_step(update: Callable) -> Callable:
    """`update(member, batch) -> (member, metrics)` for one member -> the population step.

    Members that are frozen, or whose new loss or parameters are non-finite, keep their state;
    the latter are marked diverged and stopped at this step. Metrics are `[P]` arrays.

    A population of one runs the unbatched update (no vmap, which may reorder floating-point
    sums). Its numbers still differ from a plain single run's in the last bits after a few
    steps: the masked step is a different XLA program, and XLA fuses and rounds its
    elementwise work differently (tests/training/test_population.py bounds the difference).
    """

    def step(state: Population, batch: Any) -> tuple[Population, dict]:
        if state.active.shape[0] == 1:  # one member needs no vmap: a single run's numbers
            first = lambda tree: jax.tree.map(lambda leaf: leaf[0], tree)
            new, metrics = jax.tree.map(lambda leaf: leaf[None], update(first(state.members),
                                                                        first(batch)))
        else:
            new, metrics = jax.vmap(update)(state.members, batch)
        finite = jax.vmap(_all_finite)(new.params) & jnp.isfinite(metrics["loss"])
        keep = state.active & finite
        members = jax.tree.map(
            lambda n, o: jnp.where(keep.reshape(keep.shape + (1,) * (n.ndim - 1)), n, o),
            new, state.members)
        done = state.step + 1
        newly_diverged = state.active & ~finite
        return Population(
            members, done, keep, jnp.where(newly_diverged, done, state.stopped_at),
            state.diverged | newly_diverged,
        ), metrics

    return step


def freeze(state: Population, stop: np.ndarray) -> Population:
    """Stops the active members where `stop` ([P] bool) is true, at the current step."""
    stop = jnp.asarray(stop) & state.active
    return state._replace(active=state.active & ~stop,
                          stopped_at=jnp.where(stop, state.step, state.stopped_at))


def describe(state: Population) -> str:
    """How many members are training, solved (stopped at their target) and diverged, e.g.
    '5 members: 3 training, 1 solved, 1 diverged'."""
    active, diverged = np.asarray(state.active), np.asarray(state.diverged)
    solved = (np.asarray(state.stopped_at) > 0) & ~diverged
    return (f"{size(state)} members: {int(active.sum())} training, {int(solved.sum())} solved, "
            f"{int(diverged.sum())} diverged")


def logged(state: Population, done: int) -> np.ndarray:
    """[P] bool: members whose record at step `done` is kept (running, or stopped at it)."""
    stopped_at = np.asarray(state.stopped_at)
    return (stopped_at == 0) | (stopped_at >= done)


def rows(done: int, metrics: dict, keep: np.ndarray) -> list[dict]:
    """Per-member records `{"step", "member", metric: float}` for the members in `keep`."""
    host = {k: np.asarray(v) for k, v in jax.device_get(metrics).items()}
    return [{"step": done, "member": int(i), **{k: v[i].item() for k, v in host.items()}}
            for i in np.flatnonzero(keep)]


def outcomes(state: Population, last_rows: dict[int, dict]) -> list[dict]:
    """Per member: how it stopped ('target', 'diverged' or 'num_steps'), its steps and its last
    record."""
    stopped_at, diverged = np.asarray(state.stopped_at), np.asarray(state.diverged)
    done = int(state.step)
    return [{
        "member": i,
        "stopped": ("diverged" if diverged[i] else "target") if stopped_at[i] else "num_steps",
        "steps": int(stopped_at[i]) or done,
        "final": last_rows.get(i, {}),
    } for i in range(size(state))]


class Members:
    """`fit`'s view of a `Population`: one record per member still logged; a member whose loss
    became non-finite was already frozen by `masked_step` (the others go on), one that reaches
    the target is frozen here; training ends when every member has stopped."""

    finished_as = "all members stopped"

    def params(self, state: Population) -> Any:
        return state.members.params

    def check_finite(self, pending: list[dict], done: int, last_good: str) -> None:
        pass  # `masked_step` froze a diverged member and marked it `diverged`

    def rows(self, state: Population, done: int, metrics: dict) -> list[dict]:
        return rows(done, metrics, logged(state, done))

    def add_eval(self, records: list[dict], evaluated: dict) -> None:
        """`evaluated`: `[P]` arrays, one entry per member."""
        for row in records:
            member = row["member"]
            row.update(scalars(jax.tree.map(lambda v, m=member: v[m], evaluated)))

    def after_targets(self, state: Population, records: list[dict],
                      reached: list[bool]) -> tuple[Population, bool]:
        if any(reached):
            stop = np.zeros(size(state), bool)
            stop[[r["member"] for r, hit in zip(records, reached) if hit]] = True
            state = freeze(state, stop)
        return state, not bool(np.any(state.active))

    def describe(self, state: Population) -> str:
        return describe(state)

    def finished_line(self, target: tuple | None) -> str:
        return "every member stopped"

    def summary(self, state: Population, history: list[dict]) -> dict:
        last_rows = {r["member"]: r for r in history if "member" in r}
        return {"final": {}, "num_params": num_params(self.params(state)) // size(state),
                "members": outcomes(state, last_rows)}
