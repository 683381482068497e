"""The one training loop: a jitted optax train step over an injected loss, and `fit`.

    state = init_state(params, optimizer, key)
    train_step = make_train_step(loss_fn, optimizer)       # jitted, state donated
    state, history = fit(state, train_step, get_batch, num_steps=1000, run=run)

The same step and loop train a population (`rnn_jax.population`): P members as one vmapped
program, each with its own keys, data and optimiser values, stopping on its own.

The loss is injected (nanodo style); nothing task-specific lives here:

    loss_fn(params, batch, key, stream) -> (loss, (metrics: dict, new_stream))

`stream` is the recurrent state carried from batch to batch for truncated BPTT (`()` when
unused). It enters the next step through `stop_gradient`, so gradients never cross a batch
boundary; `reset_stream` zeros it where a stream starts over (e.g. at an epoch boundary).

Reproducibility: the key for step s is `fold_in(state.key, s)` and batches are a pure function
of the step index (`get_batch(s)`), so a run resumed from its checkpoint at step s replays
exactly the batches and keys an uninterrupted run would: the same final numbers, bit for bit.
"""

import time
from pathlib import Path
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from absl import logging

from rnn_jax import distributed, population, results, run_lock, sequence
from rnn_jax.checkpoint import Checkpointer

# Metrics where smaller is better: a 2-tuple target on them means "stop when <= value".
_MINIMISED = ("loss", "bpc", "perplexity", "error", "nll", "mse")


class TrainState(NamedTuple):
    params: Any  # pytree of arrays
    opt_state: Any  # optax state
    step: jax.Array  # int32 scalar: number of updates done
    key: jax.Array  # base PRNG key; the key for step s is fold_in(key, s)
    stream: Any = ()  # recurrent state carried across batches (truncated BPTT), () when unused


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the message names the step."""


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during `fit`: `str(error)` says where the run stopped and where a
    restart resumes. A KeyboardInterrupt, so code that handles those still does.

    Decision: an interrupt is not a crash. `fit` stops at once (the step in flight is lost;
    a checkpoint being written is finished first, never left half-written), closes its
    checkpoints and raises this; the experiments' entry point prints its one line and the
    command that resumes (the same command), and exits with status 130 (SIGINT's code).
    """


def init_state(params: Any, optimizer: optax.GradientTransformation, key: jax.Array,
               stream: Any = ()) -> TrainState:
    """Step 0: fresh optimiser state for `params`."""
    return TrainState(params, optimizer.init(params), jnp.zeros((), jnp.int32), key, stream)


reset_stream = sequence.reset_state  # zeros the carried stream where a stream starts over


def make_train_step(
    loss_fn: Callable, optimizer: optax.GradientTransformation, *, donate: bool = True,
    mesh: "jax.sharding.Mesh | None" = None, shard_members: bool = False,
) -> Callable[[TrainState, Any], tuple[TrainState, dict]]:
    """A jitted `(state, batch) -> (state, metrics)`: value_and_grad of `loss_fn` + optax update.

    Metrics are loss_fn's plus `loss`, `grad_norm` (global norm before clipping) and
    `update_norm`. Given a `population.Population` (and a batch with a leading member axis)
    the same function runs every member's update as one vmapped step, with `[P]` metrics. The
    returned function has `num_traces()` (how often it was traced: a retrace guard for tests)
    and `jitted` (the underlying jitted function, e.g. for `.lower`).

    Given a `mesh` (`rnn_jax.distributed.make_mesh`), the step is data parallel: the state is
    replicated on every device and the batch split along its batch axis (the first axis; the
    second for a population, whose first is the member axis), so each device computes the
    gradient of its part and XLA all-reduces them. `shard_members=True` splits a population's
    members over the devices instead (each device trains whole members: no all-reduce).
    State and batch are moved onto the mesh on the first call (`step.place` does it ahead);
    a batch that does not divide over the devices is a ValueError naming both numbers.
    """
    traces = [0]

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

    update_population = population.masked_step(update)

    def train_step(state, batch):
        traces[0] += 1
        if isinstance(state, population.Population):
            return update_population(state, batch)
        return update(state, batch)

    if mesh is None:
        jitted = jax.jit(train_step, donate_argnums=0 if donate else ())

        def step(state: TrainState, batch: Any) -> tuple[TrainState, dict]:
            return jitted(state, batch)

        step.place = lambda state: state
    else:
        shardings = _Shardings(mesh, shard_members)

        def sharded_step(state, batch):
            new, metrics = train_step(state, batch)  # outputs pinned where the inputs live
            new = jax.tree.map(jax.lax.with_sharding_constraint, new, shardings.of_state(new))
            return new, jax.lax.with_sharding_constraint(metrics, shardings.replicated)

        jitted = jax.jit(sharded_step, donate_argnums=0 if donate else ())

        def step(state, batch):
            is_population = isinstance(state, population.Population)
            if shard_members and not is_population:
                raise ValueError("expected a population.Population with shard_members=True, "
                                 f"received a {type(state).__name__}")
            axis, what = (0, "population") if shard_members else (int(is_population), "batch")
            distributed.check_divisible(batch, mesh, axis, what)
            state = shardings.place(state)
            batch = distributed.place(batch, distributed.split(mesh, axis))
            if jax.process_count() > 1 and traces[0] == 0:  # every process compiled: then run
                jitted.lower(state, batch).compile()
                distributed.barrier("first train step")
            return jitted(state, batch)

        step.place = shardings.place

    step.num_traces = lambda: traces[0]
    step.jitted = jitted
    return step


class _Shardings:
    """Where a data-parallel step's values live: everything replicated but the batch (or, with
    `shard_members`, a population's member states, split over the devices; its small `[P]`
    bookkeeping and metrics stay replicated so every process can read them)."""

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


def _target_reached(record: dict, target: tuple) -> bool:
    name, value = target[0], target[1]
    if name not in record or record[name] is None:
        return False
    minimise = target[2] == "<=" if len(target) > 2 else any(m in name for m in _MINIMISED)
    return record[name] <= value if minimise else record[name] >= value


def _scalars(metrics: dict) -> dict:
    """Device metrics -> Python floats/ints, fetched in one transfer."""
    return {k: np.asarray(v).item() for k, v in jax.device_get(metrics).items()}


def _all_finite(tree: Any) -> bool:
    """Whether every floating-point leaf of `tree` is finite (one host transfer)."""
    leaves = [np.asarray(x) for x in jax.device_get(jax.tree.leaves(tree))]
    return all(np.isfinite(x).all() for x in leaves if np.issubdtype(x.dtype, np.inexact))


def _check_finite(pending: list[dict], done: int, last_good: str) -> None:
    """Raises NonFiniteLossError naming the first of the `pending` steps with a non-finite loss
    (`pending` are the metrics of the steps up to `done`)."""
    for i, metrics in enumerate(pending):
        loss = float(np.asarray(metrics["loss"]))
        if not np.isfinite(loss):
            bad = done - len(pending) + i + 1  # numbered like metrics.jsonl: updates done
            raise NonFiniteLossError(
                f"non-finite loss ({loss}) at step {bad} (the update on batch get_batch("
                f"{bad - 1})): stopped; {last_good}. Try a smaller --lr or --clip.")


def fit(
    state: TrainState | population.Population,
    train_step: Callable[[Any, Any], tuple[Any, dict]],
    get_batch: Callable[[int], Any],
    *,
    num_steps: int,
    eval_fn: Callable[[Any], dict] | None = None,
    eval_every: int = 0,
    log_every: int = 100,
    target: tuple | None = None,
    run: "results.Run | None" = None,
    checkpoint_every: int = 0,
    checkpoint_dir: "str | Path | None" = None,
    plot: bool = True,
) -> tuple[Any, list[dict]]:
    """Runs `train_step` until `num_steps` updates are done (or the target is reached).

    Steps are numbered by updates done, as in metrics.jsonl: "step" s is the record after the
    update on batch `get_batch(s - 1)`.

    A population (`rnn_jax.population.Population`) trains every member at each step and logs
    one record per member (with `"member": i`). A member stops on its own: when its loss or
    parameters become non-finite (it is frozen at its last finite state, and the others go
    on), or when it reaches `target`; the loop ends when every member has stopped. Its
    summary lists each member's outcome under `"members"`.

    Args:
      state: the initial state (also the template when resuming from a checkpoint).
      train_step: from `make_train_step`.
      get_batch: `step -> batch`, a pure function of the step index (for a population, the
        members' batches stacked along a leading axis).
      num_steps: total number of updates, counting those done before a resume.
      eval_fn: `params -> dict of scalars`, run every `eval_every` steps and at the end; for a
        population, `params -> dict of [P] arrays` over the stacked params (e.g. a vmap).
      log_every: log (absl) and record (metrics.jsonl) every this many steps and at the end.
      target: `(metric, value)`: stop once a logged metric reaches value (`>=`; `<=` for
        losses, bpc, perplexity, error); `(metric, value, "<=" or ">=")` to be explicit.
      run: a `results.Run`, locked for this process: records go to its metrics.jsonl,
        summary.json (with `"finished": true`) and curves.png are written at the end. An
        unfinished run resumes from its newest valid checkpoint (a corrupt one is named and
        the one before it used); without one it starts again from step 0. Either way the
        records after the resumed step are dropped (atomically), as those steps run again.
      checkpoint_every: save a checkpoint every this many steps and at the end (needs `run`,
        or `checkpoint_dir`).
      checkpoint_dir: where checkpoints go (default: the run's). With several processes
        every process saves and restores (its own shards) while only process 0 has a `run`:
        the others pass the same `run.checkpoint_dir` here.
      plot: draw curves.png at the end (needs `run`).
    Returns:
      `(final_state, history)`: history is the list of logged records (including those
      recorded before a resume).
    Raises:
      results.RunFinished: `run` is already finished (nothing is changed on disk).
      NonFiniteLossError: (a single model) the loss or the parameters became NaN/inf; the
        message names the step and the last checkpoint whose parameters are all finite
        (never saved after).
    """
    start_time = time.perf_counter()
    is_population = isinstance(state, population.Population)
    history, checkpointer, last_finite = [], None, None
    if run is not None:
        if run.finished:
            raise results.RunFinished(run)
        run_lock.acquire(run.path)
    if checkpoint_dir is None and run is not None:
        checkpoint_dir = run.checkpoint_dir
    if checkpoint_dir is not None and checkpoint_every > 0:
        distributed.barrier("run directory made")  # by process 0, before the others use it
        state = getattr(train_step, "place", lambda s: s)(state)  # the template's shardings
        checkpointer = Checkpointer(checkpoint_dir)
        restored = checkpointer.restore_latest(state)
        if restored is not None:
            state = restored
            logging.info("resumed from %s at step %d", checkpoint_dir, int(state.step))
            last_finite = int(state.step) if _all_finite(_params(state)) else None
    start_step = int(state.step)
    if run is not None:
        history = run.drop_metrics_after(start_step)  # steps after start_step run again
    last_rows = {r["member"]: r for r in history if "member" in r}
    pending, stopped, completed = [], "num_steps", start_step
    window_start, window_time = start_step, time.perf_counter()

    def last_good() -> str:
        if checkpointer is None:
            return "no checkpoints are saved (checkpoint_every=0)"
        if last_finite is None:
            return f"no checkpoint with finite parameters in {checkpointer.directory}"
        return (f"the last checkpoint with finite parameters is step {last_finite} in "
                f"{checkpointer.directory}")

    def save(state) -> None:
        nonlocal last_finite
        done = int(state.step)
        if not _all_finite(_params(state)):
            raise NonFiniteLossError(
                f"the parameters became non-finite by step {done} (not saved): stopped; "
                f"{last_good()}. Try a smaller --lr or --clip.")
        last_finite = checkpointer.save(state)

    def records(done: int, metrics: dict) -> list[dict]:
        """This step's records: one, or one per member still logged at `done`."""
        if not is_population:
            return [{"step": done, **_scalars(metrics)}]
        return population.rows(done, metrics, population.logged(state, done))

    try:
        step = start_step
        for step in range(start_step, num_steps):
            state, metrics = train_step(state, get_batch(step))
            pending.append(metrics)
            done = completed = step + 1
            last = done == num_steps
            do_log = last or (log_every > 0 and done % log_every == 0)
            do_eval = eval_fn is not None and (last or (eval_every > 0 and done % eval_every == 0))
            do_save = checkpointer is not None and (last or done % checkpoint_every == 0)
            if not (do_log or do_eval or do_save):
                continue
            pending = jax.device_get(pending)
            if not is_population:
                _check_finite(pending, done, last_good())
            rows = records(done, pending[-1])
            pending = []
            if do_eval:
                evaluated = eval_fn(_params(state))
                for row in rows:
                    row.update(_scalars(jax.tree.map(lambda v: v[row["member"]], evaluated))
                               if is_population else _scalars(evaluated))
            reached = [target is not None and _target_reached(r, target) for r in rows]
            if is_population and any(reached):
                stop = np.zeros(population.size(state), bool)
                stop[[r["member"] for r, hit in zip(rows, reached) if hit]] = True
                state = population.freeze(state, stop)
            if do_log or do_eval:
                now = time.perf_counter()
                for row in rows:
                    row["wall_s"] = round(now - start_time, 3)
                    history.append(row)
                    last_rows[row.get("member")] = row
                    if run is not None:
                        run.log(row)
                _log_progress(rows, done, num_steps, (done - window_start) / max(
                    now - window_time, 1e-9), state if is_population else None)
                window_start, window_time = done, now
            finished = (not bool(np.any(state.active))) if is_population else any(reached)
            if do_save or (finished and checkpointer is not None):
                save(state)
            if finished:
                stopped = "all members stopped" if is_population else "target"
                logging.info("%s at step %d", "every member stopped" if is_population
                             else f"target {target} reached", done)
                break
        if pending and not is_population:
            _check_finite(jax.device_get(pending), int(state.step), last_good())
        if checkpointer is not None and int(state.step) not in checkpointer.all_steps():
            save(state)
    except KeyboardInterrupt:
        where = f"{run.path}" if run is not None else "training"
        saved = checkpointer.latest_step() if checkpointer is not None else None
        raise Interrupted(f"{where} stopped after step {completed} of {num_steps}; "
                          f"{_resumes_from(checkpointer, saved)}") from None
    finally:  # also on an interrupt: the orbax manager is closed
        if checkpointer is not None:
            checkpointer.close()
    if run is not None:
        summary = {
            "final": history[-1] if history and not is_population else {},
            "steps": int(state.step),
            "stopped": stopped,
            "finished": True,
            "resumed_from_step": start_step,
            "wall_time_s": time.perf_counter() - start_time,
            "num_params": results.num_params(_params(state)),
        }
        if is_population:
            summary["num_params"] //= population.size(state)
            summary["members"] = population.outcomes(state, last_rows)
        run.write_summary(summary)
        if plot:
            results.plot_curves(run.path)
    return state, history


def _resumes_from(checkpointer: "Checkpointer | None", saved: int | None) -> str:
    if checkpointer is None:
        return "checkpoints are off (checkpoint_every=0): a restart trains it from step 0"
    if saved is None:
        return "no checkpoint saved yet: a restart trains it from step 0"
    return f"a restart resumes from its checkpoint at step {saved}"


def _params(state) -> Any:
    return state.members.params if isinstance(state, population.Population) else state.params


def _log_progress(rows: list[dict], done: int, num_steps: int, speed: float,
                  pop: "population.Population | None") -> None:
    """One absl line: a model's metrics, or a population's medians over its logged members
    and how many members are training, solved (reached the target) and diverged; the speed
    over the last interval and the time left at that speed (an upper bound for a population,
    whose members may all stop before `num_steps`), e.g.

        step 100/200 5 members: 3 training, 1 solved, 1 diverged; medians: loss 0.1 |
        5.0 steps/s, 20s left
    """
    names = [k for k, v in rows[0].items() if isinstance(v, float) and k != "wall_s"] if rows \
        else []
    values = {k: float(np.median([r[k] for r in rows])) for k in names}
    shown = " ".join(f"{k} {v:.4g}" for k, v in values.items())
    if pop is not None:
        shown = f"{population.describe(pop)}; medians: {shown}"
    left = _duration((num_steps - done) / speed) if speed > 0 else "?"
    logging.info("step %d/%d %s | %.1f steps/s, %s left", done, num_steps, shown, speed, left)


def _duration(seconds: float) -> str:
    """`seconds` for a person: '42s', '5m20s', '3h05m'."""
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
