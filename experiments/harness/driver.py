"""The driver every experiment shares: flags -> populations -> `training.fit` -> report.

An experiment declares itself with a typed record (`experiments.harness.records`):

    EXPERIMENT = Experiment(NAME, Config, QUICK, task, report)

and runs with `driver.main(EXPERIMENT)` (its folder's `__main__.py`: the command line) or
`driver.call(EXPERIMENT, argv)` (tests, notebooks). The driver expands the config into
populations (`template.expand`), calls `task` once per population, checks memory and devices
for all of them before anything is written, trains each (or measures it), then calls
`report` and finishes it (`finish_report`: figures to --figures_dir, tables, run dir).
Layout, the same for every experiment:

    <out_dir>/<experiment>/<run_name>/config.json         the whole invocation
    <out_dir>/<experiment>/<run_name>/<population>/       one `training.fit` run dir per population:
        config.json (with its members), metrics.jsonl (a row per member), summary.json, ...

A finished invocation run again prints one line and changes nothing; one that was stopped
resumes: finished populations are kept, the interrupted one resumes from its checkpoint.
Ctrl-C, a full disk and the other faults of a run end the command line with one line, no
traceback: what happened, where the run stopped, and the command that resumes it.
"""
import os
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import numpy as np
from absl import app, flags, logging

from experiments.harness import command_line, process, reporting, template
from experiments.harness.population_state import init_population
from experiments.harness.records import Experiment, Measurement, Report, Task
from rnn_jax import distributed, training
from rnn_jax.training import population

FLAGS = flags.FLAGS
# Bytes per float kept per (sequence, step, hidden unit) in a training step: the forward
# states and gates saved for BPTT and their deltas, with room for XLA's temporaries.
_BYTES_PER_ACTIVATION = 4 * 32


def population_name(config: template.Base, base: template.Base) -> str:
    """The population's directory: its values of the grid's shape-changing fields, e.g.
    'celllstm_seq_len50' ('population' without such fields)."""
    static = [n for n in template.grid_of(base) if n not in type(base).MEMBER_FIELDS]
    return "_".join(f"{n}{getattr(config, n)}" for n in static) or "population"


def run_name(config: template.Base, parts: Sequence[str] = ("cell", "hidden", "seq_len")) -> str:
    """`--run_name`, or one built from the main fields, e.g. 'lstm_hidden16_seq_len20_seeds20'
    (a field the grid varies is named once, after 'grid-')."""
    if config.run_name:
        return config.run_name
    grid = list(template.grid_of(config))
    fixed = [("" if p == "cell" else p) + str(getattr(config, p)) for p in parts if p not in grid]
    seeds = template.seeds_of(config)
    members = f"seed{seeds[0]}" if len(seeds) == 1 else f"seeds{len(seeds)}"
    name = "_".join(fixed + ([f"grid-{'-'.join(grid)}"] if grid else []) + [members])
    return ("quick_" if config.quick else "") + name


def check_memory(task: Task, config: template.Base, size: int) -> None:
    """Raises FlagError, before compiling, when the population's estimated training memory
    exceeds this machine's."""
    shapes = jax.eval_shape(task.init, jax.random.key(0))
    params = sum(int(np.prod(s.shape)) * s.dtype.itemsize for s in jax.tree.leaves(shapes))
    steps = config.batch * config.seq_len * config.hidden * _BYTES_PER_ACTIVATION
    estimate = size * (4 * params + steps)  # params, gradients, two optimiser moments
    available = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    template.check(estimate < 0.8 * available, "seeds", f"a population that fits in memory "
                   f"({available / 2**30:.1f} GiB here)", f"{size} members, estimated "
                   f"{estimate / 2**30:.1f} GiB; use fewer --seeds or grid values")


def train_population(task: Task, config: template.Base, members: list[dict],
                     run: training.Run | None, checkpoint_dir: Path | None = None
                     ) -> tuple[population.Population, list[dict]]:
    """Trains the members as one vmapped program; returns `training.fit`'s result.

    With `--devices` > 1 (or several processes) the step runs on a `("data",)` mesh
    (`rnn_jax.distributed`): each batch split over the devices, or with `--shard=members` the
    members; batches are generated where they are used (`out_shardings`), so each device (and
    process) computes only its own part. `run` is None on processes other than 0, which pass
    the run's `checkpoint_dir` instead (each process saves its own shards)."""
    state, optimizer, stacked = init_population(task, config, members)
    mesh = make_mesh(config, len(members))
    members_axis = config.shard == "members"
    if mesh is None:
        get_batch = jax.jit(jax.vmap(task.sample, in_axes=(0, None)))
        evaluate_out = {}
    else:
        stacked = distributed.place(stacked, distributed.replicated(mesh))
        get_batch = jax.jit(jax.vmap(task.sample, in_axes=(0, None)), out_shardings=(
            distributed.split(mesh, 0 if members_axis else 1)))
        evaluate_out = {"out_shardings": distributed.replicated(mesh)}
    evaluate = None
    if task.evaluate is not None:
        vmapped = jax.jit(jax.vmap(task.evaluate), **evaluate_out)
        evaluate = lambda params: vmapped(params, stacked["eval"])  # noqa: E731
    return training.fit(
        state, training.make_train_step(task.loss_fn, optimizer, mesh=mesh,
                                     shard_members=members_axis),
        lambda step: get_batch(stacked["data"], step), num_steps=config.steps,
        eval_fn=evaluate, eval_every=config.eval_every, log_every=config.log_every,
        target=task.target, run=run, checkpoint_every=config.checkpoint_every,
        checkpoint_dir=checkpoint_dir, on_update=None if task.on_update is None else (
            lambda step, state: task.on_update(step, state.members.params, run)))


def make_mesh(config: template.Base, size: int) -> "jax.sharding.Mesh | None":
    """The `--devices` mesh, or None for one device in one process (the plain step)."""
    number = check_devices(config, size)
    return None if number == 1 and jax.process_count() == 1 else distributed.make_mesh(number)


def check_devices(config: template.Base, size: int) -> int:
    """`--devices` for a population of `size` members (FlagError before anything is
    written); returns the device count."""
    number = template.num_devices(config)
    template.check(config.shard != "members" or size % number == 0, "seeds",
                   f"a population whose size divides over the {number} devices (--devices="
                   f"{config.devices}) with --shard=members", f"{size} members")
    return number


def run_experiment(experiment: Experiment, config: template.Base) -> dict:
    """Trains every population of `config` (skipping finished ones), writes the report and
    returns the invocation's summary.

    `experiment.command` (a mode that trains nothing, e.g. char_lm's --sample_only) runs
    first and returns its result, or None to go on as usual."""
    if experiment.command is not None and (result := experiment.command(config)) is not None:
        return result
    plan = template.expand(config)
    name = (experiment.run_name or run_name)(config)
    path = Path(config.out_dir) / experiment.name / name
    if config.report_only:
        template.check((path / training.CONFIG).exists(), "report_only",
                       "an existing run directory", str(path))
        run = training.Run(path)
        return finish_report(experiment, run, config, experiment.report(
            run, config, _finished(path, config, plan)))
    tasks = [experiment.task(pop_config) for pop_config, _ in plan]  # once per population
    for task, (pop_config, members) in zip(tasks, plan):
        if not isinstance(task, Measurement):
            check_memory(task, pop_config, len(members))
            check_devices(pop_config, len(members))
    if not distributed.is_writer():
        return _follow(tasks, config, plan, path)
    invocation = training.Run.create(config.out_dir, experiment.name, name,
                                    template.config_json(config), overwrite=config.overwrite,
                                    **template.reuse_options(config))
    done = []
    for task, (pop_config, members) in zip(tasks, plan):
        pop_name = population_name(pop_config, config)
        try:
            run = training.Run.create(invocation.path.parent, invocation.path.name, pop_name,
                                     {**template.config_json(pop_config), "members": members},
                                     **template.reuse_options(pop_config))
            if isinstance(task, Measurement):
                task.measure(members, run)
                run.write_summary({"finished": True, "measurement": True})
            else:
                train_population(task, pop_config, members, run)
                _say_stopped(run, members)
        except training.RunFinished:
            logging.info("population %s is finished; kept", pop_name)
        done.append((pop_config, members, training.Run(invocation.path / pop_name)))
    summary = finish_report(experiment, invocation, config,
                            experiment.report(invocation, config, done))
    invocation.write_summary({**summary, "populations": len(done), "finished": True})
    return invocation.summary()


def finish_report(experiment: Experiment, run: training.Run, config: template.Base,
                  report: Report) -> dict:
    """The end every report shares: copies its figures to `--figures_dir`, prints its tables
    (each under its name when there are several), its lines and the run directory; returns
    its summary."""
    prefix = report.figure_prefix or f"{experiment.name}_{run.path.name}"
    reporting.copy_figures(report.figures, config.figures_dir, prefix, run.path)
    for table_name, table in report.tables.items():
        print(f"{table_name}:\n{table}" if len(report.tables) > 1 else table)
    for line in report.lines:
        print(line)
    print(f"run dir {run.path}")
    return report.summary


def _follow(tasks: list, config: template.Base, plan: list, path: Path) -> dict:
    """A process other than 0: trains its part of every population that process 0 trains
    (the same ones: those not finished in `path`, read from the shared directory) and writes
    nothing; process 0 logs, writes the run directories and the report."""
    if not config.overwrite and training.Run(path).finished:
        return {"finished": True, "process": jax.process_index(), "trained": 0}
    trained = 0
    for task, (pop_config, members) in zip(tasks, plan):
        pop_run = training.Run(path / population_name(pop_config, config))
        if isinstance(task, Measurement) or (not config.overwrite and pop_run.finished):
            continue
        train_population(task, pop_config, members, None, pop_run.checkpoint_dir)
        trained += 1
    return {"finished": True, "process": jax.process_index(), "trained": trained}


def _finished(path: Path, config: template.Base, plan: list) -> list:
    """`[(population config, members, run)]` of a finished invocation, for --report_only; a
    FlagError saying which populations are unfinished (a stopped run) and how to finish."""
    opened = [(c, m, training.Run(path / population_name(c, config))) for c, m in plan]
    unfinished = [run.path.name for _, _, run in opened if not run.finished]
    if unfinished:
        raise template.FlagError(
            f"--report_only: expected a finished run, received {path} with {len(unfinished)} "
            f"of {len(opened)} populations unfinished ({', '.join(unfinished[:5])}"
            f"{', ...' if len(unfinished) > 5 else ''}): the run was stopped. To finish it "
            f"(it resumes where it stopped), run the same command without --report_only")
    return opened


def _say_stopped(run: training.Run, members: list[dict]) -> None:
    for outcome in run.summary()["members"]:
        if outcome["stopped"] != "num_steps":
            member = members[outcome["member"]]
            print(f"{run.path.name}: member {outcome['member']} ({member}) "
                  f"{'diverged' if outcome['stopped'] == 'diverged' else 'reached its target'}"
                  f" at step {outcome['steps']}")


def _handle(experiment: Experiment, config_source: Callable[[], template.Base]) -> Any:
    try:
        return run_experiment(experiment, config_source())
    except training.RunFinished as finished:  # nothing to do: say so, exit status 0
        print(finished)
        return finished


def main(experiment: Experiment) -> None:
    """The command line: defines the experiment's flags, applies the runtime settings, runs."""
    command_line.define_flags(experiment.config, FLAGS)
    process.define_flags()

    def main_with_runtime(argv: Sequence[str]) -> None:
        try:
            process.start()
        except (ValueError, ConnectionError) as error:  # one line, before any JAX work
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        try:
            template.check(len(argv) <= 1, "argv", "only --flags", list(argv[1:]))
            _handle(experiment, lambda: command_line.from_flags(experiment.config, experiment.quick,
                                                            FLAGS))
        except template.FlagError as error:  # one line naming the flag, no traceback
            print(error, file=sys.stderr)
            sys.exit(error.exitcode)
        except (training.RunDirectoryError, training.RunLockedError, ValueError) as error:
            print(f"error: {error}", file=sys.stderr)
            sys.exit(1)
        except OSError as error:  # e.g. a full disk: one line, not a traceback per thread
            print(f"error: {process.os_error(error)}", file=sys.stderr)
            sys.exit(1)
        except KeyboardInterrupt as interrupt:  # Ctrl-C: where it stopped, how to resume
            logging.set_verbosity(logging.FATAL)  # threads stopping at exit say nothing more
            print(process.interrupted(interrupt), file=sys.stderr)
            sys.exit(130)

    def parse_or_exit(argv: Sequence[str]) -> list[str]:
        try:
            return command_line.parse_flags(FLAGS, argv)
        except template.FlagError as error:  # e.g. --steps=ten: one line, as above
            print(error, file=sys.stderr)
            sys.exit(error.exitcode)

    app.run(main_with_runtime, flags_parser=parse_or_exit)


def parse(experiment: Experiment, argv: Sequence[str]) -> template.Base:
    """`argv` (flags only, no program name) as the experiment's validated config."""
    flag_values = flags.FlagValues()
    command_line.define_flags(experiment.config, flag_values)
    remaining = command_line.parse_flags(flag_values, ["experiment", *argv])
    template.check(len(remaining) <= 1, "argv", "only --flags", list(remaining[1:]))
    return command_line.from_flags(experiment.config, experiment.quick, flag_values)


def call(experiment: Experiment, argv: Sequence[str]) -> Any:
    """Runs the experiment in-process with `argv`: for tests and notebooks. Returns the
    invocation's summary, or the `training.RunFinished` of a finished run (its line printed)."""
    return _handle(experiment, lambda: parse(experiment, argv))
