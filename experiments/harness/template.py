"""One experiment template: a frozen dataclass of defaults becomes absl flags and a config.

Each experiment declares

    @dataclasses.dataclass(frozen=True)
    class Config(template.Base):
        cell: str = template.field("lstm", "Recurrent cell.", choices=CELLS)  # a new default
        test_seq_len: int = template.field(400, "Test sequence length.")       # its own flag
    QUICK = dict(steps=30, hidden=8)   # what --quick switches to (tests, smoke runs)

and `command_line.from_flags` gives the validated config: every field is a flag with its
real default in `--helpfull`; a value given on the command line wins over `--quick`,
which wins over the default. Invalid values raise `FlagError` (one line: the flag, what was
expected, what was received) before anything is compiled or written.

Seeds and grids (Hydra/absl style): `--seeds=20` (seeds seed..seed+19) or `--seeds=0,3,7`;
`--grid=lr=1e-3,1e-2 --grid=hidden=16,32` trains the product of the listed values. Values
that keep shapes (`Config.MEMBER_FIELDS`: lr, clip, weight_decay, and an experiment's init
values) become members of one population (one vmapped program, `rnn_jax.training.population`); the
others (cell, hidden, sequence length, ...) become separate populations, run one after
another (`experiments.harness.driver`).

Paths: a string field named `*_dir`, `*_path`, `*_file` or `*checkpoint` (`--out_dir`,
`--figures_dir`, an experiment's `--data_path` or `--checkpoint`) has a leading `~` expanded to
the home directory, as a shell would, also in `--flag=~/x` where the shell leaves it. Where a
run lives is not part of what it is: `--out_dir` is recorded in config.json but not compared
(`reuse_options`), so a run directory moved to another `--out_dir` resumes there, or is
recognised as finished.
"""

import dataclasses
import itertools
import math
import os
import typing
from pathlib import Path
from typing import Any, Sequence

import jax
from absl import app

from rnn_jax import distributed, training
from rnn_jax.cells import CELLS

LIST_TYPES = (tuple[str, ...], tuple[int, ...], tuple[float, ...])


class FlagError(ValueError, app.UsageError):
    """An invalid flag value: a ValueError that `app.run` reports as a usage error."""

    def __init__(self, message: str):
        super().__init__(message)
        self.exitcode = 1


def field(default: Any, help: str, *, choices: Sequence[str] | None = None) -> Any:
    """A config field: its default, its `--help` line and (for strings) its allowed values."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass(frozen=True)
class Base:
    """The fields every experiment has. Subclasses redefine a field to change its default."""

    MEMBER_FIELDS: typing.ClassVar[tuple[str, ...]] = ("lr", "clip", "weight_decay")
    NOT_IN_CONFIG: typing.ClassVar[tuple[str, ...]] = ("overwrite", "report_only", "run_name",
                                                        "figures_dir", "devices", "shard")
    # In config.json but not compared when a run directory is reused: where the run is.
    LOCATION: typing.ClassVar[tuple[str, ...]] = ("out_dir",)

    seed: int = field(0, "First seed: every random number of a member (init, data, keys) "
                      "comes from its seed.")
    seeds: str = field("1", "Members per configuration: a count N (seeds seed..seed+N-1) or "
                       "a comma-separated list of seeds such as 0,3,7.")
    grid: tuple[str, ...] = field((), "name=v1,v2,...: train every listed value of a config "
                                  "field (repeat the flag for a product), e.g. --grid=lr="
                                  "1e-3,1e-2 --grid=hidden=16,32.")
    steps: int = field(1000, "Training steps (updates) per member.")
    lr: float = field(1e-2, "Learning rate (peak rate under a schedule).")
    optimizer: str = field("adam", "Optax optimiser.", choices=sorted(training.OPTIMIZERS))
    lr_schedule: str = field("constant", "Learning-rate schedule.",
                             choices=list(training.SCHEDULES))
    warmup_steps: int = field(0, "Warm-up steps for --lr_schedule=warmup_cosine.")
    clip: float = field(1.0, "Clip gradients to this global norm before the update; 0: off.")
    weight_decay: float = field(0.0, "L2 weight decay added to the gradient.")
    batch: int = field(32, "Sequences per batch.")
    cell: str = field("lstm", "Recurrent cell (rnn_jax.cells.CELLS).", choices=sorted(CELLS))
    hidden: int = field(32, "Hidden units per layer.")
    seq_len: int = field(20, "Training sequence length (time steps).")
    log_every: int = field(100, "Log and record metrics every this many steps.")
    eval_every: int = field(0, "Evaluate every this many steps (0: only at the end).")
    checkpoint_every: int = field(0, "Checkpoint every this many steps (0: never); a run "
                                  "started again with the same flags resumes from its last.")
    out_dir: str = field("results", "Runs go to <out_dir>/<experiment>/<run_name>/.")
    run_name: str = field("", "Run directory name; default: built from the main flags.")
    overwrite: bool = field(False, "Delete the existing run directory of this --run_name first "
                            "(only that one); without it a finished run is not trained again.")
    quick: bool = field(False, "Tiny configuration that runs end to end in seconds (tests).")
    report_only: bool = field(False, "Only redraw the tables and figures from the run "
                              "directories (no training).")
    figures_dir: str = field("", "Also copy the report's figures into this directory (the "
                             "result pages use experiments/<experiment>/figures).")
    devices: str = field("1", "Devices to train on: a count (the first N of jax.devices(), "
                         "every process's) or 'all'. On the command line, N > 1 on a CPU splits "
                         "it into N XLA devices. Results equal one device's to float rounding "
                         "(rnn_jax.distributed).")
    shard: str = field("batch", "With --devices > 1: split each batch over the devices (data "
                       "parallel, parameters replicated) or a population's members (each "
                       "device trains whole members).", choices=("batch", "members"))

    def validate(self) -> None:
        """An experiment's own checks (raise FlagError via `check`); called after the shared."""


def check(condition: bool, flag: str, expected: str, received: Any) -> None:
    """Raises FlagError('--flag: expected ..., received ...') unless `condition`."""
    if not condition:
        raise FlagError(f"--{flag}: expected {expected}, received {received!r}")


def convert(f: dataclasses.Field, value: Any) -> Any:
    """A flag's value (text, or absl's parsed value) as the field's type."""
    if f.type in LIST_TYPES:
        item = typing.get_args(f.type)[0]
        return tuple(_parse(item, v, f.name) for v in value)
    if f.name == "grid":
        return tuple(value)
    return _parse(f.type, value, f.name) if isinstance(value, str) and f.type is not str else value


def _parse(kind: type, text: Any, flag: str) -> Any:
    if not isinstance(text, str):
        return kind(text)
    try:
        return {bool: lambda s: {"true": True, "false": False}[s.lower()]}.get(kind, kind)(
            text.strip())
    except (ValueError, KeyError):
        raise FlagError(f"--{flag}: expected {kind.__name__} values, received {text!r}") \
            from None


def is_path(f: dataclasses.Field) -> bool:
    """Whether a field is a file or directory path (`~` expanded): a string named *_dir,
    *_path, *_file or *checkpoint (e.g. char_lm's --checkpoint)."""
    return f.type is str and f.name.endswith(("_dir", "_path", "_file", "checkpoint"))


def seeds_of(config: Base) -> list[int]:
    """The member seeds `--seeds` names: a count N (seeds --seed .. --seed+N-1) or a list with
    a comma (`0,3,7`; one seed alone: `--seed=3`)."""
    text = config.seeds.strip()
    if "," not in text:  # one number is a count: --seeds=0 is an error, not seed 0
        count = int(text) if text.isdigit() else 0
        check(count > 0, "seeds", "a positive count or a list of distinct seeds >= 0",
              config.seeds)
        return list(range(config.seed, config.seed + count))
    try:
        seeds = [int(s) for s in text.split(",")]
    except ValueError:
        seeds = []
    check(seeds and len(set(seeds)) == len(seeds) and min(seeds) >= 0, "seeds",
          "a positive count or a list of distinct seeds >= 0", config.seeds)
    return seeds


def grid_of(config: Base) -> dict[str, list]:
    """`--grid` as {field: [values]} (typed like the field), checked before any compile."""
    types = {f.name: f for f in dataclasses.fields(config)}
    grid = {}
    for entry in config.grid:
        name, sep, listed = entry.partition("=")
        name = name.strip()
        check(sep and listed.strip(), "grid", "name=v1,v2,... with at least one value", entry)
        excluded = {"grid", "seeds", "seed", *Base.NOT_IN_CONFIG}  # not a member's value
        check(name in types and name not in excluded, "grid",
              f"a config field ({', '.join(sorted(set(types) - excluded))})", name)
        check(name not in grid, "grid", "each field at most once", name)
        values = [convert(types[name], v) if types[name].type not in LIST_TYPES else v
                  for v in listed.split(",")]
        check(len(set(values)) == len(values), "grid", "distinct values", entry)
        grid[name] = values
    return grid


def expand(config: Base) -> list[tuple[Base, list[dict]]]:
    """The populations to train: `[(config of the population, members)]`.

    Members are `{"seed": s, field: value, ...}` for the grid's member fields; each population's
    config carries one combination of the other (shape-changing) grid fields.
    Work is linear in the number of members: the seed list is built once, and each
    combination of member values is validated once (not once per seed, which made the
    validation of N seeds quadratic: every `validate` rebuilds the seed list).
    """
    grid, seeds = grid_of(config), seeds_of(config)
    member_names = [n for n in grid if n in type(config).MEMBER_FIELDS]
    static_names = [n for n in grid if n not in member_names]
    populations = []
    for static in itertools.product(*(grid[n] for n in static_names)):
        pop_config = validate(dataclasses.replace(config, **dict(zip(static_names, static))))
        members = []
        for values in itertools.product(*(grid[n] for n in member_names)):
            given = dict(zip(member_names, values))
            validate(dataclasses.replace(pop_config, **given))
            shared = {**{n: getattr(pop_config, n) for n in type(config).MEMBER_FIELDS}, **given}
            members += [{"seed": s, **shared} for s in seeds]
        populations.append((pop_config, members))
    return populations


def validate(config: Base) -> Base:
    """Checks every shared value, then the experiment's own (`config.validate()`)."""
    for name in ("steps", "batch", "hidden", "seq_len", "log_every"):
        check(getattr(config, name) > 0, name, "a positive integer", getattr(config, name))
    for name in ("eval_every", "checkpoint_every", "warmup_steps"):
        check(getattr(config, name) >= 0, name, "an integer >= 0", getattr(config, name))
    check(0 < config.lr < math.inf, "lr", "a positive, finite learning rate", config.lr)
    check(0 <= config.clip < math.inf, "clip", "a finite global norm >= 0 (0: no clipping)",
          config.clip)
    check(0 <= config.weight_decay < math.inf, "weight_decay", "a finite value >= 0",
          config.weight_decay)
    for f in dataclasses.fields(config):
        choices = f.metadata["choices"]
        value = getattr(config, f.name)
        check(choices is None or value in choices, f.name, f"one of {list(choices or [])}",
              value)
    size = len(config.run_name.encode("utf-8", "surrogatepass"))
    check(size <= training.MAX_NAME_BYTES, "run_name", f"at most {training.MAX_NAME_BYTES} bytes "
          "(the file system's limit for one name)", f"{size} bytes: {config.run_name[:40]}...")
    check(not config.run_name or _is_path_component(config.run_name), "run_name",
          "one path component (not '.' or '..', without '/')", config.run_name)
    check_out_dir(config.out_dir)
    seeds_of(config), grid_of(config)
    check_devices(config)
    if config.lr_schedule == "warmup_cosine":
        check(config.warmup_steps < config.steps, "warmup_steps",
              f"fewer than --steps={config.steps}", config.warmup_steps)
    config.validate()
    return config


def num_devices(config: Base) -> int:
    """`--devices` as a count of the devices present (FlagError naming both otherwise)."""
    try:
        return distributed.count(config.devices, len(jax.devices()))
    except ValueError as error:
        raise FlagError(str(error)) from None


def check_devices(config: Base) -> None:
    """`--devices` names devices that are present, and (data parallel) each batch splits
    evenly over them."""
    number = num_devices(config)
    check(config.shard != "batch" or config.batch % number == 0, "batch",
          f"a multiple of the {number} devices (--devices={config.devices}) to split each "
          "batch evenly", config.batch)


def _is_path_component(name: str) -> bool:
    try:
        training.check_name(name)
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


def config_json(config: Base) -> dict:
    """Every value that affects the result (bookkeeping flags left out), and `--out_dir`."""
    return {k: v for k, v in dataclasses.asdict(config).items() if k not in Base.NOT_IN_CONFIG}


def reuse_options(config: Base) -> dict:
    """`training.Run.create`'s options for comparing `config` with an existing run's:
    `--out_dir` is not compared (a moved run directory is the same run), and a field that an
    older config.json lacks counts as equal at its default (a flag added since then, whose
    default keeps the old behaviour, leaves existing runs resumable)."""
    defaults = {f.name: f.default for f in dataclasses.fields(config)
                if f.name not in Base.NOT_IN_CONFIG}
    return {"defaults": defaults, "ignore": Base.LOCATION}
