"""The one training loop, `fit`: steps, logging, evaluation, targets, checkpoints.

    state = init_state(params, optimizer, key)
    train_step = make_train_step(loss_fn, optimizer)       # rnn_jax.training.step
    state, history = fit(state, train_step, get_batch, num_steps=1000, run=run)

Steps are numbered by updates done, as in metrics.jsonl: "step" s is the record after the
update on batch `get_batch(s - 1)`.

The same loop trains a population (`rnn_jax.training.population`): every member at each step,
one record per member (with `"member": i`). A member stops on its own: when its loss or
parameters become non-finite (it is frozen at its last finite state, and the others go on), or
when it reaches `target`; the loop ends when every member has stopped, and the summary lists
each member's outcome under `"members"`. What differs is behind one `Trainee`
(`rnn_jax.training.trainee`), so the loop below reads the same for both.

Reproducibility: the key for step s is `fold_in(state.key, s)` and batches are a pure function
of the step index (`get_batch(s)`), so a run resumed from its checkpoint at step s replays
exactly the batches and keys an uninterrupted run would: the same final numbers, bit for bit.
"""

from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
from absl import logging

from rnn_jax.training.curves import plot_curves
from rnn_jax.training.progress import Recorder
from rnn_jax.training.run_dir import Run, RunFinished
from rnn_jax.training.run_lock import acquire
from rnn_jax.training.saving import Checkpoints, NoCheckpoints, open_checkpoints
from rnn_jax.training.step import TrainStep
from rnn_jax.training.trainee import Trainee, trainee_of

# Metrics where smaller is better: a 2-tuple target on them means "stop when <= value".
_MINIMISED = ("loss", "bpc", "perplexity", "error", "nll", "mse")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (SIGINT) during `fit`: `str(error)` says where the run stopped and where a
    restart resumes. A KeyboardInterrupt, so code that handles those still does.

    Decision: an interrupt is not a crash. `fit` stops at once (the step in flight is lost;
    a checkpoint being written is finished first, never left half-written), closes its
    checkpoints and raises this; the experiments' entry point prints its one line and the
    command that resumes (the same command), and exits with status 130 (SIGINT's code).
    """


class Plan(NamedTuple):
    """What `fit` does besides stepping, and when."""

    num_steps: int
    log_every: int
    eval_every: int
    eval_fn: Callable[[Any], dict] | None
    target: tuple | None
    on_update: Callable[[int, Any], None] | None = None

    def due(self, done: int) -> tuple[bool, bool]:
        """`(log, evaluate)` after `done` updates: every so many steps, and at the end."""
        last = done == self.num_steps
        log = last or (self.log_every > 0 and done % self.log_every == 0)
        evaluate = self.eval_fn is not None and (
            last or (self.eval_every > 0 and done % self.eval_every == 0))
        return log, evaluate


def target_reached(record: dict, target: tuple) -> bool:
    """Whether `record` reaches `target`: `(metric, value)` (`<=` for metrics named like a
    loss, `>=` otherwise) or `(metric, value, "<=" or ">=")`."""
    name, value = target[0], target[1]
    if name not in record or record[name] is None:
        return False
    minimise = target[2] == "<=" if len(target) > 2 else any(m in name for m in _MINIMISED)
    return record[name] <= value if minimise else record[name] >= value


def fit(state: Any, train_step: Callable[[Any, Any], tuple[Any, dict]],
        get_batch: Callable[[int], Any], *, num_steps: int,
        eval_fn: Callable[[Any], dict] | None = None, eval_every: int = 0,
        log_every: int = 100, target: tuple | None = None, run: Run | None = None,
        checkpoint_every: int = 0, checkpoint_dir: str | Path | None = None,
        plot: bool = True,
        on_update: Callable[[int, Any], None] | None = None) -> tuple[Any, list[dict]]:
    """Runs `train_step` until `num_steps` updates are done (or the target is reached).

    Args:
      state: the initial `TrainState` or `Population` (the template a checkpoint restores to).
      train_step: from `make_train_step`.
      get_batch: `step -> batch`, a pure function of the step index (for a population, the
        members' batches stacked along a leading axis).
      num_steps: total number of updates, counting those done before a resume.
      eval_fn: `params -> dict of scalars`, run every `eval_every` steps and at the end; for a
        population, `params -> dict of [P] arrays` over the stacked params (e.g. a vmap).
      log_every: log (absl) and record (metrics.jsonl) every this many steps and at the end.
      target: `(metric, value)`: stop once a logged metric reaches value (`>=`; `<=` for
        losses, bpc, perplexity, error); `(metric, value, "<=" or ">=")` to be explicit.
      run: a `Run`, locked for this process: records go to its metrics.jsonl, summary.json
        (with `"finished": true`) and curves.png are written at the end. An unfinished run
        resumes from its newest valid checkpoint; without one it starts again from step 0.
        Either way the records after the resumed step are dropped, as those steps run again.
      checkpoint_every: save a checkpoint every this many steps and at the end.
      checkpoint_dir: where checkpoints go (default: the run's). With several processes only
        process 0 has a `run`; the others pass its `run.checkpoint_dir` here.
      plot: draw curves.png at the end (needs `run`).
      on_update: `(step, state) -> None`, called after every update with the step numbered as
        in metrics.jsonl (a hook at chosen steps, e.g. char_lm's `--sample_at` samples; it
        waits for the device only if it reads the state).
    Returns:
      `(final_state, history)`: the logged records, with those recorded before a resume.
    Raises:
      RunFinished: `run` is already finished (nothing is changed on disk).
      NonFiniteLossError: (a single model) the loss or the parameters became NaN/inf; the
        message names the step and the last checkpoint whose parameters are all finite.
      Interrupted: Ctrl-C; the message says where a restart resumes.
    """
    recorder, trainee = Recorder(run, num_steps), trainee_of(state)
    if run is not None:
        if run.finished:
            raise RunFinished(run)
        acquire(run.path)
        checkpoint_dir = run.checkpoint_dir if checkpoint_dir is None else checkpoint_dir
    place = train_step.place if isinstance(train_step, TrainStep) else lambda s: s
    saves, state = open_checkpoints(checkpoint_dir, checkpoint_every, state, place,
                                    trainee.params)
    start = int(state.step)
    recorder.resume(start)
    plan = Plan(num_steps, log_every, eval_every, eval_fn, target, on_update)
    try:
        state, stopped = _train(state, start, train_step, get_batch, plan, trainee, saves,
                                recorder)
    except KeyboardInterrupt:
        where = f"{run.path}" if run is not None else "training"
        raise Interrupted(f"{where} stopped after step {recorder.completed} of {num_steps}; "
                          f"{saves.resumes_from()}") from None
    finally:  # also on an interrupt: the orbax manager is closed
        saves.close()
    if run is not None:
        _write_summary(run, state, stopped, start, trainee, recorder, plot)
    return state, recorder.history


def _train(state: Any, start: int, train_step: Callable, get_batch: Callable, plan: Plan,
           trainee: Trainee, saves: Checkpoints | NoCheckpoints,
           recorder: Recorder) -> tuple[Any, str]:
    """The loop: steps from `start`; returns `(state, how it stopped)`. Device values are
    fetched only at the steps that log, evaluate or save."""
    pending, stopped = [], "num_steps"
    for step in range(start, plan.num_steps):
        state, metrics = train_step(state, get_batch(step))
        pending.append(metrics)
        done = recorder.completed = step + 1
        if plan.on_update is not None:
            plan.on_update(done, state)
        (log, evaluate), save = plan.due(done), saves.due(done, plan.num_steps)
        if not (log or evaluate or save):
            continue
        state, finished = _report(state, done, jax.device_get(pending), log, evaluate, plan,
                                  trainee, saves, recorder)
        pending = []
        if save or finished:
            saves.save(state)
        if finished:
            stopped = trainee.finished_as
            logging.info("%s at step %d", trainee.finished_line(plan.target), done)
            break
    if pending:
        trainee.check_finite(jax.device_get(pending), int(state.step), saves.last_good())
    saves.save_final(state)
    return state, stopped


def _report(state: Any, done: int, pending: list[dict], log: bool, evaluate: bool, plan: Plan,
            trainee: Trainee, saves: Checkpoints | NoCheckpoints,
            recorder: Recorder) -> tuple[Any, bool]:
    """Checks the `pending` metrics (host copies of the steps up to `done`), makes this step's
    records, evaluates, applies the target and records; returns `(state, finished)`."""
    trainee.check_finite(pending, done, saves.last_good())
    rows = trainee.rows(state, done, pending[-1])
    if evaluate:
        trainee.add_eval(rows, plan.eval_fn(trainee.params(state)))
    reached = [plan.target is not None and target_reached(r, plan.target) for r in rows]
    state, finished = trainee.after_targets(state, rows, reached)
    if log or evaluate:
        recorder.add(rows, done, trainee.describe(state))
    return state, finished


def _write_summary(run: Run, state: Any, stopped: str, start: int, trainee: Trainee,
                   recorder: Recorder, plot: bool) -> None:
    """summary.json (`"finished": true`) and, with `plot`, curves.png."""
    run.write_summary({
        "steps": int(state.step),
        "stopped": stopped,
        "finished": True,
        "resumed_from_step": start,
        "wall_time_s": recorder.wall_s(),
        **trainee.summary(state, recorder.history),
    })
    if plot:
        plot_curves(run.path)
