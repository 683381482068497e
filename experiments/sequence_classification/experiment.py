"""Many-to-one sequence classification of images read pixel by pixel, row by row, or in a
fixed random pixel order (the IRNN and uRNN papers' sequential and permuted MNIST).

    python -m experiments.sequence_classification --order=pixel --seeds=3 \
        --grid=cell=vanilla,irnn,gru,lstm,urnn --grid=lr=3e-4,1e-3,3e-3 --steps=3000 \
        --checkpoint_every=1000     # about 40 minutes on 2 CPU cores; with --grid=lr=1e-2,3e-2
                                    # too: GRU 0.967, uRNN 0.949, LSTM 0.948 at their best rates
    python -m experiments.sequence_classification --order=row --seeds=3 \
        --grid=cell=vanilla,irnn,gru,lstm,urnn --steps=1000    # also --order=permuted
    python -m experiments.sequence_classification --dataset=mnist --data_path=mnist.npz \
        --order=pixel                                            # the 784-step task

The default data are scikit-learn's 8x8 digits (1,797 images; `pip install scikit-learn`), split
once into train and test by --split_seed; `--dataset=mnist` reads the usual `mnist.npz`
(x_train, y_train, x_test, y_test) from --data_path. The RNN reads the whole image, and its
output at the last step (`readout.last_valid`) gives the ten class scores (softmax
cross-entropy). The report gives test accuracy per (order, cell) with 95 % intervals over
seeds and the accuracy curves. Measured results and commands:
experiments/sequence_classification/README.md.
"""

import dataclasses
import functools
import os

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from rnn_jax import losses, population_plots, sequence_model, stats
from rnn_jax.cells import get_cell
from rnn_jax.data import digits

NAME = "sequence_classification"
DATASETS = ("digits", "mnist")
EVAL_CHUNK = 500  # test images per evaluation chunk: every step's outputs of a whole 784-step
                  # test set would not fit in memory at once


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    dataset: str = template.field("digits", "scikit-learn's 8x8 digits, or MNIST from "
                                  "--data_path.", choices=DATASETS)
    data_path: str = template.field("", "With --dataset=mnist: the mnist.npz file (arrays "
                                    "x_train, y_train, x_test, y_test).")
    order: str = template.field("pixel", "Read the image one pixel per step (raster order), "
                                "one row per step, or one pixel per step in a fixed random "
                                "order.", choices=digits.ORDERS)
    permutation_seed: int = template.field(0, "Seed of the one pixel order of "
                                           "--order=permuted (the same for every member).")
    split_seed: int = template.field(0, "Seed of the digits' train/test split (the same for "
                                     "every member).")
    test_fraction: float = template.field(0.2, "Digits: fraction of the images held out.")
    eval_size: int = template.field(0, "Test images per evaluation (0: the whole test set).")
    lr: float = template.field(1e-3, "Learning rate.")
    steps: int = template.field(1000, "Training steps (updates) per member.")
    eval_every: int = template.field(100, "Evaluate every this many steps (0: only at the "
                                     "end).")

    def validate(self):
        if self.dataset == "digits":
            template.check(digits.sklearn_available(), "dataset", "scikit-learn installed "
                           f"for the 8x8 digits ({digits.INSTALL}), or --dataset=mnist",
                           self.dataset)
            template.check(not self.data_path, "data_path", "empty with --dataset=digits "
                           "(the digits ship with scikit-learn)", self.data_path)
        else:
            template.check(os.path.isfile(self.data_path), "data_path", "an existing "
                           "mnist.npz file with --dataset=mnist", self.data_path)
        template.check(0 < self.test_fraction < 1, "test_fraction", "a value in (0, 1)",
                       self.test_fraction)
        template.check(self.eval_size >= 0, "eval_size", "an integer >= 0 (0: all)",
                       self.eval_size)


QUICK = dict(order="row", hidden=8, batch=16, steps=20, log_every=10, eval_every=10,
             eval_size=64)


@functools.lru_cache(maxsize=4)
def load(dataset: str, data_path: str, split_seed: int, test_fraction: float) -> digits.Dataset:
    """The images (cached: every population of an invocation reads the same)."""
    if dataset == "mnist":
        return digits.load_mnist(data_path)
    return digits.load_digits(jax.random.key(split_seed), test_fraction)


def sequences(config: Config) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """`(train_xs, train_ys, test_xs, test_ys)`: xs `[n, time, features]` in --order."""
    data = load(config.dataset, config.data_path, config.split_seed, config.test_fraction)
    pixels = data.train_images.shape[1] * data.train_images.shape[2]
    pixel_order = digits.permutation(jax.random.key(config.permutation_seed), pixels)
    test = slice(None, config.eval_size or None)
    return (digits.to_sequences(data.train_images, config.order, pixel_order),
            data.train_labels,
            digits.to_sequences(data.test_images[test], config.order, pixel_order),
            data.test_labels[test])


def metrics(logits: jax.Array, labels: jax.Array) -> dict:
    return {"loss": losses.softmax_cross_entropy(logits, labels),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def task(config: Config) -> Task:
    """One member: cell over the image's steps -> linear readout at the last step -> 10 scores."""
    cell = get_cell(config.cell)
    train_xs, train_ys, test_xs, test_ys = map(jnp.asarray, sequences(config))

    def logits(params, xs):
        return sequence_model.apply(cell, params, xs, many_to_one=True)

    def loss_fn(params, batch, key, stream):
        m = metrics(logits(params, batch[0]), batch[1])
        return m["loss"], ({"accuracy": m["accuracy"]}, stream)

    def sample(key, step):
        index = jax.random.randint(jax.random.fold_in(key, step), (config.batch,), 0,
                                   train_xs.shape[0])
        return train_xs[index], train_ys[index]

    def evaluate(params, key):
        """Over the test set in chunks of EVAL_CHUNK images (`jax.lax.map`)."""
        scores = jax.lax.map(lambda x: logits(params, x[None])[0], test_xs,
                             batch_size=min(EVAL_CHUNK, test_xs.shape[0]))
        return {f"test_{k}": v for k, v in metrics(scores, test_ys).items()}

    return Task(
        init=lambda key: sequence_model.init(key, cell, train_xs.shape[-1],
                                                     config.hidden, digits.NUM_CLASSES),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def run_name(config: Config) -> str:
    """E.g. 'digits_pixel_hidden32_grid-cell_seeds3' (`--run_name` wins)."""
    name = driver.run_name(config, ("cell", "hidden"))
    if config.run_name:
        return name
    quick = "quick_" if config.quick else ""
    return f"{quick}{config.dataset}_{config.order}_{name.removeprefix(quick)}"


def num_params(config: Config, input_size: int) -> int:
    shapes = jax.eval_shape(lambda k: sequence_model.init(
        k, get_cell(config.cell), input_size, config.hidden, digits.NUM_CLASSES),
        jax.random.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def member_groups(members: list[dict]) -> dict[float, list[int]]:
    """The members' indices by learning rate (one group when --grid has no lr)."""
    groups = {}
    for index, member in enumerate(members):
        groups.setdefault(member["lr"], []).append(index)
    return groups


def grad_norm_row(records: list[dict], group: list[int]) -> dict:
    """The global gradient norm before clipping, at every logged step of the `group`'s
    members: the median over members of each member's median, and the largest value."""
    norms = [[r["grad_norm"] for r in records if r["member"] == i and "grad_norm" in r]
             for i in group]
    return {"grad_norm_median": float(np.median([np.median(n) for n in norms])),
            "grad_norm_max": float(np.max([np.max(n) for n in norms]))}


def population_rows(pop_config: Config, members: list[dict], pop_run) -> list[dict]:
    """One row per learning rate of a population: final test accuracy and loss over its
    members (95 % t-intervals), gradient norms, the population's wall time."""
    outcomes, records = reporting.finals(pop_run), pop_run.metrics()
    xs = sequences(pop_config)[0]
    rows = []
    for lr, group in member_groups(members).items():
        chosen = [outcomes[i] for i in group]
        rows.append({"dataset": pop_config.dataset, "order": pop_config.order,
                     "time_steps": xs.shape[1], "cell": pop_config.cell,
                     "hidden": pop_config.hidden,
                     "params": num_params(pop_config, xs.shape[-1]), "lr": lr,
                     "steps": pop_config.steps,
                     **reporting.metric_row(chosen, "test_accuracy"),
                     **reporting.metric_row(chosen, "test_loss"),
                     **grad_norm_row(records, group),
                     "population_wall_s": round(pop_run.summary()["wall_time_s"])})
    return rows


def best_rows(rows: list[dict]) -> list[dict]:
    """Per cell, the row of the learning rate with the highest mean test accuracy (a
    non-finite mean never wins), ordered from best to worst."""
    score = lambda row: row["test_accuracy_mean"] if np.isfinite(  # noqa: E731
        row["test_accuracy_mean"]) else -np.inf
    best = {}
    for row in rows:
        if row["cell"] not in best or score(row) > score(best[row["cell"]]):
            best[row["cell"]] = row
    return sorted(best.values(), key=score, reverse=True)


def lr_panels(done: list) -> dict[str, dict[str, dict]]:
    """Test accuracy curves (median, IQR over seeds): one panel per cell, one curve per lr."""
    panels = {}
    for pop_config, members, pop_run in done:
        records = [r for r in pop_run.metrics() if "test_accuracy" in r]
        for lr, group in member_groups(members).items():
            series = [[r for r in records if r["member"] == i] for i in group]
            panels.setdefault(pop_config.cell, {})[f"lr {lr:g}"] = stats.curve_quantiles(
                [[r["step"] for r in s] for s in series],
                [[r["test_accuracy"] for r in s] for s in series])
    return panels


def report(run, config: Config, done: list) -> Report:
    """Per (order, cell, lr): parameters, steps, final test accuracy and loss over members
    (95 % t-intervals), gradient norms; with --grid=lr=..., each cell at its best rate
    (`table_best`) and the curves one panel per cell; else the curves of every population."""
    rows = [row for pop in done for row in population_rows(*pop)]
    columns = ["dataset", "order", "time_steps", "cell", "hidden", "params", "lr", "steps",
               "members", "test_accuracy_mean", "test_accuracy_ci95", "test_accuracy_median",
               "test_loss_mean", "test_loss_ci95", "grad_norm_median", "grad_norm_max",
               "population_wall_s"]
    tables = {"table": reporting.write_table(run, "table", rows, columns)}
    title = f"{config.dataset}: test accuracy, {config.steps} steps"
    if "lr" in template.grid_of(config):
        tables["table_best"] = reporting.write_table(run, "table_best", best_rows(rows), columns)
        figure = population_plots.plot_population_panels(
            run.path / "curves.png", lr_panels(done), "test_accuracy",
            f"{title}, {config.order} order; median and IQR over seeds per learning rate")
    else:
        fields = [f for f in ("order", "cell", "hidden") if f in template.grid_of(config)] \
            or ["cell"]
        figure = reporting.plot_curves(run, "curves.png", done, "test_accuracy", fields,
                                       title + ("" if "order" in fields
                                                else f", {config.order} order"))
    return Report({"table": rows, "best": best_rows(rows) if len(tables) > 1 else None},
                  tables, (figure,))


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
