"""Long-memory benchmarks of the uRNN paper (Arjovsky, Shah & Bengio 2016): copying and adding.

    python -m experiments.long_memory --task=copying --seq_len=100 --seeds=5 \
        --grid=cell=vanilla,irnn,lstm                      # the non-unitary cells, clipped
    python -m experiments.long_memory --task=adding --seq_len=200 --seeds=5 --cell=urnn --clip=0

`--seq_len` is the paper's T: copying, the delay (inputs are T + 20 long); adding, the length.
Each cell is one population of seeds (`--grid=cell=...`); the report (table.md, curves.png:
evaluation loss vs iteration per cell, median and interquartile band, baseline dashed) is
drawn from the run directories. Measured results and commands: experiments/long_memory/README.md.

Paper defaults: RMSProp (lr 1e-3, decay 0.9), batch 20; hidden sizes (`--paper_sizes`, on by
default, overrides `--hidden`) copying tanh-RNN 80, IRNN 80, LSTM 40, uRNN 128; adding
128 / 128 / 128 / 512. Gradients of the non-unitary cells are clipped elementwise at `--clip`
= 1 as in the authors' code (`--clip_kind=global`: by global norm); the uRNN is never clipped
(`--clip=0`, checked). Copying: cross-entropy at every step (baseline 10 log 8 / (T + 20));
adding: MSE of the final prediction (baseline 1/6). Evaluation losses are on a held-out batch
of `--eval_batch` sequences, fixed per member (drawn from the member's evaluation key).
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import cell_flags, driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import losses, population_plots, sequence_model, training
from rnn_jax.data import adding, copying

NAME = "long_memory"
TASKS = {"copying": copying, "adding": adding}
HIDDEN = {  # the paper's sizes (about 6.5K parameters each on copying)
    "copying": {"vanilla": 80, "irnn": 80, "lstm": 40, "urnn": 128},
    "adding": {"vanilla": 128, "irnn": 128, "lstm": 128, "urnn": 512},
}
BEAT_FRACTION = 0.95  # "beats the baseline": evaluation loss <= 0.95 x baseline
FINAL_EVALS = 5  # beating and solving are judged on the median of a member's last evaluations


@dataclasses.dataclass(frozen=True)
class Config(template.Base, cell_flags.CellOptions):
    task: str = template.field("copying", "Long-memory task.", choices=tuple(TASKS))
    seq_len: int = template.field(100, "T: copying, the delay (inputs are T + 20 long); "
                                  "adding, the sequence length.")
    paper_sizes: bool = template.field(True, "Hidden units from the paper for the task and "
                                       "cell (copying 80/80/40/128, adding 128/128/128/512 for "
                                       "vanilla/irnn/lstm/urnn); off: --hidden.")
    steps: int = template.field(2000, "Training steps (updates) per member.")
    lr: float = template.field(1e-3, "Learning rate.")
    optimizer: str = template.field("rmsprop", "Optax optimiser (rmsprop: decay 0.9).",
                                    choices=sorted(template.training.OPTIMIZERS))
    clip: float = template.field(1.0, "Clip gradients at this value (--clip_kind); 0: off "
                                 "(the uRNN's only value).")
    clip_kind: str = template.field("elementwise", "Clipping: each entry to [-clip, clip] (the "
                                    "authors' code) or by global norm.",
                                    choices=template.training.CLIP_KINDS)
    batch: int = template.field(20, "Sequences per batch.")
    log_every: int = template.field(50, "Log and record metrics every this many steps.")
    eval_every: int = template.field(50, "Evaluate every this many steps (0: only at the end).")
    eval_batch: int = template.field(500, "Held-out sequences the evaluation loss is measured "
                                     "on.")
    solved_accuracy: float = template.field(0.99, "Copying: held-out recall accuracy that "
                                            "counts as solved.")
    solved_mse: float = template.field(0.01, "Adding: held-out MSE that counts as solved.")
    match_params: int = template.field(0, "With --nopaper_sizes: each cell's hidden size is "
                                       "the largest whose model has at most this many "
                                       "parameters (0: --hidden for every cell).")

    def validate(self):
        cell_flags.check(self)
        template.check(self.seq_len >= 2, "seq_len", "an integer T >= 2", self.seq_len)
        template.check(self.eval_batch >= 1, "eval_batch", "an integer >= 1", self.eval_batch)
        template.check(not self.paper_sizes or self.cell in HIDDEN[self.task], "cell",
                       f"one of {sorted(HIDDEN[self.task])} with --paper_sizes", self.cell)
        template.check(self.cell != "urnn" or self.clip == 0, "clip", "0 for --cell=urnn (the "
                       "uRNN is never clipped, as in the paper)", self.clip)
        template.check(0 < self.solved_accuracy <= 1, "solved_accuracy", "a value in (0, 1]",
                       self.solved_accuracy)
        template.check(self.solved_mse > 0, "solved_mse", "a positive value", self.solved_mse)
        template.check(self.match_params >= 0 and not (self.match_params and self.paper_sizes),
                       "match_params", "0, or a parameter count with --nopaper_sizes",
                       self.match_params)


QUICK = dict(steps=20, batch=4, paper_sizes=False, hidden=8, seq_len=8, eval_batch=8,
             log_every=10, eval_every=10)


def hidden_of(config: Config) -> int:
    """The hidden size a member trains with: the paper's, the one matching `--match_params`,
    or `--hidden`."""
    if config.paper_sizes:
        return HIDDEN[config.task][config.cell]
    return matched_hidden(config) if config.match_params else config.hidden


def matched_hidden(config: Config) -> int:
    """The largest hidden size whose model has at most `--match_params` parameters (a
    bisection over sizes; parameter counts grow with the size)."""
    count = lambda h: num_params(dataclasses.replace(config, match_params=0, hidden=h))
    template.check(count(1) <= config.match_params, "match_params",
                   f"at least {count(1)} (--cell={config.cell} at one unit)", config.match_params)
    low, high = 1, 2
    while count(high) <= config.match_params:
        low, high = high, 2 * high
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if count(middle) <= config.match_params else (low, middle)
    return low


def metrics(config: Config, outputs: jax.Array, targets: jax.Array) -> dict:
    """Copying: cross-entropy over all T + 20 steps and accuracy on the 10 recalled steps;
    adding: MSE of the last step's prediction (the paper's, no 1/2)."""
    if config.task == "copying":  # outputs [batch, T + 20, 9], targets [batch, T + 20]
        recalled = jnp.argmax(outputs[:, -copying.SEQUENCE_LENGTH:], -1)
        return {"loss": losses.softmax_cross_entropy(outputs, targets),
                "recall_accuracy": jnp.mean(recalled == targets[:, -copying.SEQUENCE_LENGTH:])}
    return {"loss": jnp.mean((outputs - targets) ** 2)}  # outputs, targets [batch, 1]


def task(config: Config) -> Task:
    """One member: cell -> linear readout (at every step for copying, the last for adding)."""
    cell, data = cell_flags.cell_of(config), TASKS[config.task]
    sizes = (copying.NUM_TOKENS, copying.NUM_CLASSES) if config.task == "copying" else (2, 1)

    def loss_fn(params, batch, key, stream):
        outputs = sequence_model.apply(cell, params, batch[0],
                                       many_to_one=config.task == "adding")
        m = metrics(config, outputs, batch[1])
        return m.pop("loss"), (m, stream)

    def sample(key, step):
        return data.sample(jax.random.fold_in(key, step), config.batch, config.seq_len)

    def evaluate(params, key):
        loss, m = loss_fn(params, data.sample(key, config.eval_batch, config.seq_len), key, ())
        return {"eval_loss": loss, **{f"eval_{k}": v for k, v in m[0].items()}}

    return Task(
        init=lambda key: sequence_model.init(key, cell, sizes[0], hidden_of(config),
                                                     sizes[1]),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate, clip_kind=config.clip_kind,
        optimizer_options={"decay": 0.9} if config.optimizer == "rmsprop" else None)


def run_name(config: Config) -> str:
    """E.g. 'copying_T100_grid-cell_seeds5' (`--run_name` wins)."""
    name = driver.run_name(config, ("cell",))
    if config.run_name:
        return name
    quick = "quick_" if config.quick else ""
    return f"{quick}{config.task}_T{config.seq_len}_{name.removeprefix(quick)}"


def final_median(run: training.Run, metric: str) -> dict[int, float]:
    """Per member: the median of `metric` over its last FINAL_EVALS evaluations (NaN when any
    of them is missing or not finite: a member that diverged has not beaten anything)."""
    values = {}
    for row in run.metrics():
        if metric in row:
            values.setdefault(row.get("member", 0), []).append(row[metric])
    last = {m: np.asarray([np.nan if v is None else v for v in vs[-FINAL_EVALS:]], dtype=float)
            for m, vs in values.items()}
    return {m: float(np.median(v)) if np.all(np.isfinite(v)) else float("nan")
            for m, v in last.items()}


def first_step(run: training.Run, metric: str, passes) -> dict[int, int | None]:
    """Per member: the first logged step whose `metric` passes `passes(value)`, or None."""
    first = {}
    for row in run.metrics():
        member, value = row.get("member", 0), row.get(metric)
        first.setdefault(member, None)
        if first[member] is None and value is not None and passes(value):
            first[member] = row["step"]
    return first


def judged(run: training.Run, metric: str, passes) -> dict[int, int | None]:
    """Per member: None unless the median of its last FINAL_EVALS evaluations of `metric`
    passes (one dip does not count); else the first step at which `metric` passed."""
    first, final = first_step(run, metric, passes), final_median(run, metric)
    return {m: first.get(m) if np.isfinite(v) and passes(v) else None for m, v in final.items()}


def solved(config: Config, run: training.Run) -> dict[int, int | None]:
    if config.task == "copying":
        return judged(run, "eval_recall_accuracy", lambda a: a >= config.solved_accuracy)
    return judged(run, "eval_loss", lambda loss: loss <= config.solved_mse)


def num_params(config: Config) -> int:
    shapes = jax.eval_shape(task(config).init, jax.random.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def report(run, config: Config, done: list) -> Report:
    """Per (task, T, cell): members beating the baseline and solving the task (Wilson), judged
    on the median of each member's last FINAL_EVALS evaluations (a diverged member does
    neither); final evaluation loss (and copying recall accuracy) over members; the curves."""
    rows = []
    for pop_config, members, pop_run in done:
        outcomes = reporting.finals(pop_run)
        baseline = TASKS[pop_config.task].baseline(pop_config.seq_len)
        beaten = judged(pop_run, "eval_loss", lambda loss: loss <= BEAT_FRACTION * baseline)
        beat, solve = (reporting.reached_row([steps.get(o["member"]) for o in outcomes],
                                             outcomes)
                       for steps in (beaten, solved(pop_config, pop_run)))
        row = {"task": pop_config.task, "T": pop_config.seq_len, "cell": pop_config.cell,
               "hidden": hidden_of(pop_config), "params": num_params(pop_config),
               "clip": pop_config.clip, "steps": pop_config.steps, "baseline": baseline,
               "beat": beat["solved"], "beat_wilson95": beat["wilson95"],
               "median_first_below": beat["median_steps_to_success"],
               "solved": solve["solved"], "solved_wilson95": solve["wilson95"],
               **reporting.metric_row(outcomes, "eval_loss")}
        if pop_config.task == "copying":
            row.update(reporting.metric_row(outcomes, "eval_recall_accuracy"))
        rows.append(row)
    columns = ["task", "T", "cell", "hidden", "params", "clip", "steps", "baseline", "beat",
               "beat_wilson95", "median_first_below", "solved", "solved_wilson95",
               "eval_loss_mean", "eval_loss_ci95", "eval_loss_median"]
    if any("eval_recall_accuracy_mean" in r for r in rows):
        columns += ["eval_recall_accuracy_mean", "eval_recall_accuracy_ci95"]
    table = reporting.write_table(run, "table", [{k: _number(v) for k, v in r.items()}
                                                 for r in rows], columns)
    figure = plot_losses(run, done)
    return Report({"table": rows}, {"table": table}, (figure,))


def _number(value):
    return float(f"{value:.4g}") if isinstance(value, float) and np.isfinite(value) else value


def panel_name(config: Config) -> str:
    return f"{config.task} T={config.seq_len}"


def plot_losses(run: training.Run, done: list):
    """curves.png: median and IQR evaluation loss per cell, one panel per (task, T) with its
    memoryless baseline dashed; every cell of a panel on the same axes."""
    panels = {}
    for config, members, pop_run in done:
        curve = reporting.curves([(config, members, pop_run)], "eval_loss", ["cell"])
        panels.setdefault(panel_name(config), {}).update(curve)
    panels = {name: curves for name, curves in panels.items() if curves}
    if not panels:
        return None
    baselines = {panel_name(c): TASKS[c.task].baseline(c.seq_len) for c, _, _ in done}
    return population_plots.plot_population_panels(
        run.path / "curves.png", panels, "evaluation loss", "long memory; dashed: memoryless "
        "baseline", hlines=baselines)


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
