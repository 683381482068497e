"""Where a train step's values live on a device mesh (`rnn_jax.distributed.make_mesh`).

Data parallel (the default): the state is replicated on every device and the batch split along
its batch axis (the first axis; the second for a population, whose first is the member axis),
so each device computes the gradient of its part and XLA all-reduces them. With
`shard_members=True` a population's members are split over the devices instead (each device
trains whole members: no all-reduce); its small `[P]` bookkeeping and the metrics stay
replicated so every process can read them.

State and batch are moved onto the mesh on the first call (`place` does it ahead); a batch
that does not divide over the devices is a ValueError naming both numbers.
"""

from collections.abc import Callable
from typing import Any

import jax

from rnn_jax import distributed
from rnn_jax.training import population


class Shardings:
    """A sharding per value of a step on `mesh`: everything replicated but the batch (or, with
    `shard_members`, a population's member states)."""

    def __init__(self, mesh: "jax.sharding.Mesh", shard_members: bool):
        self.mesh, self.shard_members = mesh, shard_members
        self.replicated = distributed.replicated(mesh)

    def of_state(self, state: Any) -> Any:
        """A sharding per leaf of `state` (same tree)."""
        where = jax.tree.map(lambda _: self.replicated, state)
        if not (self.shard_members and isinstance(state, population.Population)):
            return where
        return where._replace(members=jax.tree.map(
            lambda _: distributed.split(self.mesh, 0), state.members))

    def place(self, state: Any) -> Any:
        """`state` moved onto the mesh (leaves already there are kept)."""
        if self.shard_members and isinstance(state, population.Population):
            distributed.check_divisible(state.active, self.mesh, 0, "population")
        return jax.tree.map(distributed.place, state, self.of_state(state))

    def of_batch(self, state: Any, batch: Any) -> jax.sharding.NamedSharding:
        """`batch` split over the mesh along its member axis (`shard_members`) or its batch
        axis (after the member axis of a population's batch); checks that it divides."""
        is_population = isinstance(state, population.Population)
        if self.shard_members and not is_population:
            raise ValueError("expected a population.Population with shard_members=True, "
                             f"received a {type(state).__name__}")
        axis, what = (0, "population") if self.shard_members else (int(is_population), "batch")
        distributed.check_divisible(batch, self.mesh, axis, what)
        return distributed.split(self.mesh, axis)


def on_mesh(
    traced: Callable[[Any, Any], tuple[Any, dict]], mesh: "jax.sharding.Mesh", *,
    shard_members: bool, donate_argnums: int | tuple, num_traces: Callable[[], int],
) -> tuple[Callable, Any, Callable]:
    """`traced` (`(state, batch) -> (state, metrics)`) jitted on `mesh`, its outputs pinned
    where its inputs live. Returns `(run, jitted, place)`: `run(state, batch)` places both and
    calls `jitted`; `place(state)` places a state ahead."""
    shardings = Shardings(mesh, shard_members)

    def sharded(state, batch):
        new, metrics = traced(state, batch)
        new = jax.tree.map(jax.lax.with_sharding_constraint, new, shardings.of_state(new))
        return new, jax.lax.with_sharding_constraint(metrics, shardings.replicated)

    jitted = jax.jit(sharded, donate_argnums=donate_argnums)

    def run(state, batch):
        batch_sharding = shardings.of_batch(state, batch)
        state = shardings.place(state)
        batch = distributed.place(batch, batch_sharding)
        if jax.process_count() > 1 and num_traces() == 0:  # every process compiled: then run
            jitted.lower(state, batch).compile()
            distributed.barrier("first train step")
        return jitted(state, batch)

    return run, jitted, shardings.place
