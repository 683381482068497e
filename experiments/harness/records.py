"""The typed records between an experiment and the driver (`experiments.harness.driver`).

Each experiment module ends with its declaration,

    EXPERIMENT = Experiment(NAME, Config, QUICK, task, report)

and its folder's `__main__.py` runs `driver.main(EXPERIMENT)`. The driver calls `task` once
per population, trains (or measures) every population, then calls `report` and does the
shared end of every report with what it returns (a `Report`): copies the figures to
`--figures_dir`, prints the tables and lines, and the run directory.
"""

from pathlib import Path
from typing import Callable, NamedTuple


class Task(NamedTuple):
    """What one member trains on; every function is one member's and is vmapped by the driver.

    init: `key -> params`: the member's parameters at step 0.
    loss_fn: the train loop's `loss_fn(params, batch, key, stream)`.
    sample: `(key, step) -> batch`: training batch number `step` of the member's data stream.
    evaluate: `(params, key) -> dict of scalars`, or None.
    target: `training.fit`'s target (a member stops when its record reaches it), or None.
    stream: `params -> the stream carried across batches` (truncated BPTT), or None for ().
    clip_kind: 'global' (clip by global norm) or 'elementwise' (training.CLIP_KINDS).
    optimizer_options: passed to the optax constructor (e.g. `decay=0.9` for rmsprop).
    on_update: `(step, params, run) -> None` after every update (params stacked `[P, ...]`;
      `run` is None on processes other than 0), e.g. char_lm's `--sample_at` samples; or None.
    """

    init: Callable
    loss_fn: Callable | None
    sample: Callable | None
    evaluate: Callable | None = None
    target: tuple | None = None
    stream: Callable | None = None
    clip_kind: str = "global"
    optimizer_options: dict | None = None
    on_update: Callable | None = None


class Measurement(NamedTuple):
    """What a population measures instead of training (e.g. gradient norms at init), when
    `task(config)` returns one: `measure(members, run)` writes its results into the
    population's run dir once; the report reads them from there (also with --report_only)."""

    measure: Callable


class Report(NamedTuple):
    """What `report` returns; the driver does the rest (`driver.finish_report`).

    summary: the invocation's summary.json values (and what `driver.call` returns).
    tables: name -> Markdown table, printed in order (with its name when there are several).
    figures: PNG paths (None: not drawn) copied to `--figures_dir` as `<prefix>_<name>`, where
        a figure inside a population's directory keeps that directory in its name
        (`<prefix>_<population>_<name>`).
    lines: printed after the tables (samples, a hand-built network's score, ...).
    figure_prefix: the copies' prefix; None: `<experiment>_<run directory name>`.
    """

    summary: dict
    tables: dict[str, str]
    figures: tuple[Path | None, ...] = ()
    lines: tuple[str, ...] = ()
    figure_prefix: str | None = None


class Experiment(NamedTuple):
    """One experiment, as the driver runs it.

    name: its directory under `--out_dir` (and the figures' prefix), e.g. 'parity'.
    config: its frozen Config dataclass (`template.Base` and its own fields: the flags).
    quick: what `--quick` switches to (tests, smoke runs).
    task: `config -> Task | Measurement`, called once per population.
    report: `(run, config, done) -> Report`, with `done = [(population config, members,
        population Run)]`, reading everything from the run directories (`--report_only`).
    command: `config -> dict | None`: a mode that trains nothing (e.g. char_lm's
        --sample_only), run first; None from it goes on as usual.
    run_name: `config -> str`, the run directory's name; None: `driver.run_name`.
    """

    name: str
    config: type
    quick: dict
    task: Callable
    report: Callable
    command: Callable | None = None
    run_name: Callable | None = None
