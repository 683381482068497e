"""Training: the train step, the one loop, populations, checkpoints and run directories.

    from rnn_jax import training

    optimizer = training.make_optimizer("adam", 1e-2, clip_norm=1.0)
    state = training.init_state(params, optimizer, key)
    run = training.Run.create("results", "parity", "r", config)
    state, history = training.fit(state, training.make_train_step(loss_fn, optimizer),
                                  get_batch, num_steps=1000, run=run, checkpoint_every=100)

One concern a file: `step` (TrainState, make_train_step), `loop` (fit), `trainee` (what fit
needs to know of one model), `population` (P models as one vmapped program), `sharding` (a step
on a device mesh), `optimizers`, `checkpoint` (orbax, verified), `stored` (a state's leaves as a
checkpoint holds them), `saving` (when fit saves and where it resumes), `run_dir` (Run),
`run_lock` (one process per run directory), `records` (the run's JSON files), `progress` (fit's
records and log line), `curves` (curves.png).
"""

from rnn_jax.training import optimizers, population
from rnn_jax.training.checkpoint import (
    Checkpointer,
    CheckpointWriteError,
    CorruptCheckpointError,
)
from rnn_jax.training.curves import plot_curves
from rnn_jax.training.loop import Interrupted, fit, target_reached
from rnn_jax.training.optimizers import (
    CLIP_KINDS,
    MEMBER_HYPERPARAMETERS,
    OPTIMIZERS,
    SCHEDULES,
    init_member_state,
    make_member_optimizer,
    make_optimizer,
    make_schedule,
)
from rnn_jax.training.population import Population
from rnn_jax.training.records import (
    CONFIG,
    CURVES,
    METRICS,
    SUMMARY,
    RunDirectoryError,
    num_params,
    read_json,
    read_metrics,
    to_jsonable,
    versions,
)
from rnn_jax.training.run_dir import MAX_NAME_BYTES, Run, RunFinished, check_name, same_config
from rnn_jax.training.run_lock import LOCK, RunLockedError
from rnn_jax.training.step import (
    TrainState,
    TrainStep,
    init_state,
    make_train_step,
    make_update,
    reset_stream,
)
from rnn_jax.training.trainee import NonFiniteLossError

__all__ = [
    "CLIP_KINDS",
    "CONFIG",
    "CURVES",
    "LOCK",
    "MAX_NAME_BYTES",
    "MEMBER_HYPERPARAMETERS",
    "METRICS",
    "OPTIMIZERS",
    "SCHEDULES",
    "SUMMARY",
    "CheckpointWriteError",
    "Checkpointer",
    "CorruptCheckpointError",
    "Interrupted",
    "NonFiniteLossError",
    "Population",
    "Run",
    "RunDirectoryError",
    "RunFinished",
    "RunLockedError",
    "TrainState",
    "TrainStep",
    "check_name",
    "fit",
    "init_member_state",
    "init_state",
    "make_member_optimizer",
    "make_optimizer",
    "make_schedule",
    "make_train_step",
    "make_update",
    "num_params",
    "optimizers",
    "plot_curves",
    "population",
    "read_json",
    "read_metrics",
    "reset_stream",
    "same_config",
    "target_reached",
    "to_jsonable",
    "versions",
]
