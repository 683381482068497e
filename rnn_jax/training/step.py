"""The train step: value_and_grad of an injected loss, then an optax update, jitted once.

    state = init_state(params, optimizer, key)
    train_step = make_train_step(loss_fn, optimizer)       # jitted, state donated
    state, metrics = train_step(state, batch)

The loss is injected (nanodo style); nothing task-specific lives here:

    loss_fn(params, batch, key, stream) -> (loss, (metrics: dict, new_stream))

`stream` is the recurrent state carried from batch to batch for truncated BPTT (`()` when
unused). It enters the next step through `stop_gradient`, so gradients never cross a batch
boundary; `reset_stream` zeros it where a stream starts over (e.g. at an epoch boundary).

The key for step s is `fold_in(state.key, s)`, so a step depends only on the state and the
batch: a run resumed at step s replays the keys an uninterrupted run would.
"""

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from rnn_jax import sequence
from rnn_jax.training import population, sharding


class TrainState(NamedTuple):
    params: Any  # pytree of arrays
    opt_state: Any  # optax state
    step: jax.Array  # int32 scalar: number of updates done
    key: jax.Array  # base PRNG key; the key for step s is fold_in(key, s)
    stream: Any = ()  # recurrent state carried across batches (truncated BPTT), () when unused


class TrainStep(NamedTuple):
    """What `make_train_step` returns; call it: `train_step(state, batch) -> (state, metrics)`.

    `place(state)` moves a state where the step keeps it (the identity without a mesh), e.g. a
    template before restoring a checkpoint into its shardings; `num_traces()` counts how often
    the step was traced (a retrace guard for tests); `jitted` is the jitted function itself
    (e.g. for `.lower`)."""

    run: Callable[[Any, Any], tuple[Any, dict]]  # (state, batch) -> (state, metrics)
    jitted: Any  # the jax.jit-wrapped function `run` calls
    place: Callable[[Any], Any]  # state -> the state on the step's devices
    num_traces: Callable[[], int]  # how many times the step was traced

    def __call__(self, state: Any, batch: Any) -> tuple[Any, dict]:
        return self.run(state, batch)


def init_state(params: Any, optimizer: optax.GradientTransformation, key: jax.Array,
               stream: Any = ()) -> TrainState:
    """Step 0: fresh optimiser state for `params`."""
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key, stream)


reset_stream = sequence.reset_state  # zeros the carried stream where a stream starts over


def make_update(loss_fn: Callable, optimizer: optax.GradientTransformation) -> Callable:
    """One model's update, not jitted: `(state, batch) -> (state, metrics)`.

    Metrics are loss_fn's plus `loss`, `grad_norm` (global norm before clipping) and
    `update_norm`."""

    def update(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
        key = jax.random.fold_in(state.key, state.step)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, (metrics, stream)), grads = grad_fn(state.params, batch, key, state.stream)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "update_norm": optax.tree.norm(updates),
        }
        stream = jax.lax.stop_gradient(stream)  # truncated BPTT: no gradient across batches
        return TrainState(params, opt_state, state.step + 1, state.key, stream), metrics

    return update


def make_train_step(
    loss_fn: Callable, optimizer: optax.GradientTransformation, *, donate: bool = True,
    mesh: "jax.sharding.Mesh | None" = None, shard_members: bool = False,
) -> TrainStep:
    """The jitted `make_update` (state donated), as a `TrainStep`.

    Given a `population.Population` (and a batch with a leading member axis) the same step
    runs every member's update as one vmapped step, with `[P]` metrics
    (`population.masked_step`). Given a `mesh` the step is data parallel, or with
    `shard_members=True` splits a population's members over the devices (`sharding.on_mesh`).
    """
    update = make_update(loss_fn, optimizer)
    update_members = population.masked_step(update)
    traces = [0]

    def traced(state: Any, batch: Any) -> tuple[Any, dict]:
        traces[0] += 1
        if isinstance(state, population.Population):  # chosen at trace time, by the type
            return update_members(state, batch)
        return update(state, batch)

    num_traces = lambda: traces[0]
    donate_argnums = 0 if donate else ()
    if mesh is not None:
        return TrainStep(*sharding.on_mesh(traced, mesh, shard_members=shard_members,
                                           donate_argnums=donate_argnums,
                                           num_traces=num_traces), num_traces)
    jitted = jax.jit(traced, donate_argnums=donate_argnums)
    return TrainStep(jitted, jitted, lambda state: state, num_traces)
