"""The flags every experiment shares, defined once, and the frozen config they become.

Each experiment imports this module, declares only its own task flags, and calls

    config = flags.train_config(DEFAULTS, QUICK)   # validated before any compile

Precedence for every value: a flag given on the command line, else the `--quick` value (when
`--quick`), else the experiment's default, else the default here. Flags whose best default
depends on the experiment (`--steps --lr --batch --hidden --seq_len ...`) therefore default to
None in `--helpfull`; each experiment's docstring lists its own defaults.

Invalid values raise `FlagError`, a ValueError that `run` prints as one line (the flag, what
was expected, what was received) before exiting with status 1.
"""

import contextlib
import dataclasses
import math
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from absl import app, flags, logging
from absl.testing import flagsaver

from experiments import runtime
from rnn_jax import optimizers, results, run_lock, train
from rnn_jax.cells import CELLS

FLAGS = flags.FLAGS

# Training.
flags.DEFINE_integer("seed", None, "Seed of every random number in the run (init, data, keys).")
flags.DEFINE_integer("steps", None, "Number of training steps (updates).")
flags.DEFINE_float("lr", None, "Learning rate (peak rate under a schedule).")
flags.DEFINE_enum("optimizer", None, sorted(optimizers.OPTIMIZERS), "Optax optimiser.")
flags.DEFINE_enum("lr_schedule", None, list(optimizers.SCHEDULES), "Learning-rate schedule.")
flags.DEFINE_integer("warmup_steps", None, "Warm-up steps for --lr_schedule=warmup_cosine.")
flags.DEFINE_float("clip", None, "Clip gradients to this global norm before the update; 0: off.")
flags.DEFINE_integer("batch", None, "Sequences per batch.")
# Model.
flags.DEFINE_enum("cell", None, sorted(CELLS), "Recurrent cell (rnn_jax.cells.CELLS).")
flags.DEFINE_integer("hidden", None, "Hidden units per layer.")
flags.DEFINE_integer("seq_len", None, "Training sequence length (time steps).")
flags.DEFINE_integer("test_seq_len", None, "Test sequence length (length generalisation).")
# Output and bookkeeping.
flags.DEFINE_string("out_dir", None, "Runs go to <out_dir>/<experiment>/<run_name>/.")
flags.DEFINE_string("run_name", None, "Run directory name; default: built from the main flags.")
flags.DEFINE_bool("overwrite", None, "Delete the existing run directory of this --run_name "
                  "first (only that one); without it a finished run is not trained again.")
flags.DEFINE_bool("quick", None, "Tiny configuration that runs end to end in seconds (tests).")
flags.DEFINE_integer("log_every", None, "Log and record metrics every this many steps.")
flags.DEFINE_integer("eval_every", None, "Evaluate every this many steps (0: only at the end).")
flags.DEFINE_integer("checkpoint_every", None, "Checkpoint every this many steps (0: never); "
                     "a run started again with the same flags resumes from its last one.")
# Runtime (speed only; results are the same either way).
flags.DEFINE_bool("keep_host_memory", True, "Keep freed host memory mapped between training "
                  "steps and run each step on the calling thread (glibc mallopt and synchronous "
                  "CPU dispatch, experiments.runtime): no page faults on XLA:CPU's per-step "
                  "buffers, faster steps; resident memory stays at its peak.")
flags.DEFINE_string("compilation_cache_dir", "~/.cache/rnn_jax/xla", "Keep compiled XLA "
                    "programs here, so later runs with the same shapes start without compiling "
                    "(JAX's persistent cache); empty: off.")


class FlagError(ValueError, app.UsageError):
    """An invalid flag value: a ValueError that `app.run` reports as a usage error."""

    def __init__(self, message: str):
        super().__init__(message)
        self.exitcode = 1


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The shared flags as one frozen value (the defaults used when an experiment sets none)."""

    seed: int = 0
    steps: int = 1000
    lr: float = 1e-2
    optimizer: str = "adam"
    lr_schedule: str = "constant"
    warmup_steps: int = 0
    clip: float = 1.0
    batch: int = 32
    cell: str = "lstm"
    hidden: int = 32
    seq_len: int = 20
    out_dir: str = "results"
    run_name: str = ""
    overwrite: bool = False
    quick: bool = False
    log_every: int = 100
    eval_every: int = 0
    checkpoint_every: int = 0


def resolve(name: str, defaults: dict, quick: dict, fallback: Any = None) -> Any:
    """The value of flag `name`: given on the command line > quick > defaults > the flag's own
    default > `fallback`."""
    if FLAGS[name].present:
        return FLAGS[name].value
    if FLAGS.quick and name in quick:
        return quick[name]
    if name in defaults:
        return defaults[name]
    return FLAGS[name].value if FLAGS[name].value is not None else fallback


def train_config(defaults: dict | None = None, quick: dict | None = None) -> TrainConfig:
    """Reads the shared flags into a validated `TrainConfig`.

    Args:
      defaults: the experiment's defaults, `{flag name: value}`.
      quick: the values `--quick` switches to.
    """
    defaults, quick = defaults or {}, quick or {}
    values = {
        field.name: resolve(field.name, defaults, quick, field.default)
        for field in dataclasses.fields(TrainConfig)
    }
    values["quick"] = bool(FLAGS.quick)
    return validate(TrainConfig(**values))


def check(condition: bool, flag: str, expected: str, received: Any) -> None:
    """Raises FlagError('--flag: expected ..., received ...') unless `condition`."""
    if not condition:
        raise FlagError(f"--{flag}: expected {expected}, received {received!r}")


@contextlib.contextmanager
def flag_errors(flag: str):
    """Re-raises a ValueError of the block as FlagError('--flag: ...'): for values that can only
    be checked by using them (a file to read, a text to encode), whose library error already
    says what was expected and what was received."""
    try:
        yield
    except FlagError:
        raise
    except ValueError as error:
        raise FlagError(f"--{flag}: {error}") from error


def check_distinct(values: Sequence, flag: str) -> None:
    """Raises FlagError unless `values` (a list flag) is non-empty and has no repeats."""
    check(len(values) > 0 and len(set(values)) == len(values), flag,
          "a non-empty list without repeats", ",".join(str(v) for v in values))


def validate(config: TrainConfig) -> TrainConfig:
    """Checks every shared value; raises FlagError naming the flag, expected and received."""
    for name in ("steps", "batch", "hidden", "seq_len", "log_every"):
        check(getattr(config, name) > 0, name, "a positive integer", getattr(config, name))
    for name in ("eval_every", "checkpoint_every", "warmup_steps"):
        check(getattr(config, name) >= 0, name, "an integer >= 0", getattr(config, name))
    check(0 < config.lr < math.inf, "lr", "a positive, finite learning rate", config.lr)
    check(0 <= config.clip < math.inf, "clip", "a finite global norm >= 0 (0: no clipping)",
          config.clip)
    check(config.optimizer in optimizers.OPTIMIZERS, "optimizer", f"one of {sorted(optimizers.OPTIMIZERS)}",
          config.optimizer)
    check(config.lr_schedule in optimizers.SCHEDULES, "lr_schedule", f"one of {optimizers.SCHEDULES}",
          config.lr_schedule)
    check(config.cell in CELLS, "cell", f"one of {sorted(CELLS)}", config.cell)
    check(not config.run_name or _is_path_component(config.run_name), "run_name",
          "one path component (not '.' or '..', without '/')", config.run_name)
    check_out_dir(config.out_dir)
    if config.lr_schedule == "warmup_cosine":
        check(config.warmup_steps < config.steps, "warmup_steps", f"fewer than --steps="
              f"{config.steps}", config.warmup_steps)
    return config


def _is_path_component(name: str) -> bool:
    try:
        results.check_name(name)
    except ValueError:
        return False
    return True


def check_out_dir(out_dir: str) -> None:
    """Raises FlagError unless `out_dir` is a directory this process can write in, or can be
    created (its nearest existing ancestor is a directory it can write in)."""
    path = Path(out_dir)
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    expected = "a directory that can be created and written"
    check(existing.is_dir(), "out_dir", expected, f"{out_dir} ({existing} is not a directory)")
    check(os.access(existing, os.W_OK | os.X_OK), "out_dir", expected,
          f"{out_dir} (no permission to write in {existing})")


def make_optimizer(config: TrainConfig, **options):
    """The optax optimiser the config asks for (schedule and clipping included)."""
    schedule = optimizers.make_schedule(
        config.lr_schedule, config.lr, num_steps=config.steps, warmup_steps=config.warmup_steps
    )
    return optimizers.make_optimizer(config.optimizer, schedule, clip_norm=config.clip, **options)


def default_run_name(config: TrainConfig, **parts: Any) -> str:
    """`--run_name`, or a name built from the main flags, e.g. 'lstm_h32_T20_seed0'."""
    if config.run_name:
        return config.run_name
    middle = "_".join(f"{key}{value}" for key, value in parts.items())
    name = f"{config.cell}_h{config.hidden}_T{config.seq_len}_{middle + '_' if middle else ''}"
    return ("quick_" if config.quick else "") + name + f"seed{config.seed}"


def make_run(config: TrainConfig, experiment: str, full_config: Any, **name_parts) -> results.Run:
    """Creates (or reopens, to resume) the run directory and writes config.json.

    `--overwrite` removes only `<out_dir>/<experiment>/<run name>` (and says so in the log). A
    finished run with the same config raises `results.RunFinished` before anything is written;
    `run` and `call_main` report it as one line (exit status 0).
    """
    return results.Run.create(
        config.out_dir, experiment, default_run_name(config, **name_parts), full_config,
        overwrite=config.overwrite,
    )


def fit_options(config: TrainConfig) -> dict:
    """The keyword arguments of `train.fit` that come from the shared flags."""
    return {
        "num_steps": config.steps,
        "log_every": config.log_every,
        "eval_every": config.eval_every,
        "checkpoint_every": config.checkpoint_every,
    }


def run(main: Callable[[Sequence[str]], Any]) -> None:
    """The command-line entry point of an experiment: `app.run(main)`, exit status 0 on success,
    with `--keep_host_memory` and `--compilation_cache_dir` applied before the first JAX
    computation."""

    def main_with_runtime(argv: Sequence[str]) -> None:
        if FLAGS.keep_host_memory:
            runtime.keep_host_memory()
        if FLAGS.compilation_cache_dir:
            try:
                runtime.enable_compilation_cache(FLAGS.compilation_cache_dir)
            except OSError as error:  # e.g. a read-only home: run without the cache
                logging.warning("compilation cache off (--compilation_cache_dir): %s", error)
        try:
            main(argv)
        except FlagError as error:  # one line naming the flag, no usage text, no traceback
            print(error, file=sys.stderr)
            sys.exit(error.exitcode)
        except results.RunFinished as finished:  # nothing to do: say so, exit status 0
            print(finished)
        except (results.RunDirectoryError, run_lock.RunLockedError,
                train.NonFiniteLossError) as error:  # one line, no traceback
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)

    app.run(main_with_runtime)


def call_main(main: Callable[[Sequence[str]], Any], argv: Sequence[str]) -> Any:
    """Parses `argv` (no program name) and calls `main` in-process, then restores every flag:
    for tests and notebooks. The experiment module must be imported before the call.

    A finished run is reported as on the command line: its line is printed and the
    `results.RunFinished` is returned instead of `main`'s value."""
    with flagsaver.flagsaver():
        FLAGS.unparse_flags()
        remaining = FLAGS(["experiment", *argv])
        try:
            return main(remaining)
        except results.RunFinished as finished:
            print(finished)
            return finished


def check_no_positional(argv: Sequence[str]) -> None:
    check(len(argv) <= 1, "argv", "only --flags", list(argv[1:]))
