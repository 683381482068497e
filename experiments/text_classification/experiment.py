"""Text classification, many-to-one over words: which speaker of a play says a turn.

    python -m experiments.text_classification --data_path=tinyshakespeare.txt --speakers=8 \
        --seeds=3 --grid=cell=vanilla,gru,lstm --steps=1500   # about 13 minutes on 2 CPU
        # cores; test accuracy GRU 0.270, LSTM 0.256, vanilla 0.183 (3 seeds) against the
        # 1-2-gram logistic regression's 0.416 and the majority class's 0.163

The notes' sentiment example reads a sentence word by word and classifies it at the end; with
no labelled sentiment corpus at hand, the labels here come from the play itself
(`rnn_jax/data/speakers.py`): the turns of the --speakers speakers with the most turns, split
by turn into train and test with a fixed key (--split_seed), stratified by speaker. The model:
word embedding E [vocab, embed] -> recurrent cell -> readout of the state at each turn's last
word (`readout.last_valid`; padded steps masked by the lengths) -> softmax over speakers.
The report sets each cell's test accuracy (95 % t-intervals over seeds) beside a bag of 1- and
2-grams with logistic regression on the same split (scikit-learn) and the majority class.
Measured results and commands: experiments/text_classification.md.
"""

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import driver, reporting, template
from experiments.harness.records import Experiment, Report, Task
from experiments.text_classification import baselines
from experiments.text_classification.data import dataset
from rnn_jax import losses, population_plots, sequence_model, stats
from rnn_jax.cells import CELLS, Cell, get_cell
from rnn_jax.data import speakers as speaker_data

NAME = "text_classification"


@dataclasses.dataclass(frozen=True)
class Config(template.Base):
    data_path: str = template.field("", "A play's text with 'NAME:' turns separated by blank "
                                    "lines, e.g. tiny-shakespeare's input.txt (required; "
                                    "nothing is downloaded).")
    speakers: int = template.field(8, "K: classify among the K speakers with the most turns.")
    unit: str = template.field("turn", "One example per turn, or per line of a turn (split "
                               "by turn either way).", choices=speaker_data.UNITS)
    min_turns: int = template.field(20, "A speaker needs at least this many turns.")
    min_words: int = template.field(1, "Drop examples with fewer words.")
    max_words: int = template.field(50, "Keep the first this many words of an example.")
    vocab_size: int = template.field(2000, "Word vocabulary cap: the most frequent training "
                                     "words, the rest (and padding) as <unk>.")
    test_fraction: float = template.field(0.2, "Fraction of each speaker's turns held out.")
    split_seed: int = template.field(0, "Seed of the train/test split (the same for every "
                                     "member).")
    embed: int = template.field(32, "Word embedding size.")
    hidden: int = template.field(64, "Hidden units.")
    cell: str = template.field("gru", "Recurrent cell (rnn_jax.cells.CELLS).",
                               choices=sorted(CELLS))
    lr: float = template.field(3e-3, "Learning rate.")
    steps: int = template.field(1500, "Training steps (updates) per member.")
    eval_every: int = template.field(100, "Evaluate every this many steps (0: only at the "
                                     "end).")
    baseline: bool = template.field(True, "Report the bag-of-n-grams logistic regression "
                                    "(scikit-learn) on the same split.")

    def validate(self):
        for name, least in (("speakers", 2), ("min_turns", 2), ("min_words", 1),
                            ("vocab_size", 2), ("embed", 1)):
            template.check(getattr(self, name) >= least, name, f"an integer >= {least}",
                           getattr(self, name))
        template.check(self.max_words >= self.min_words, "max_words",
                       f"an integer >= --min_words={self.min_words}", self.max_words)
        template.check(0 < self.test_fraction < 1, "test_fraction", "a value in (0, 1)",
                       self.test_fraction)
        template.check(not self.baseline or baselines.sklearn_available(), "baseline",
                       f"scikit-learn installed ({baselines.INSTALL}) or --nobaseline",
                       self.baseline)
        try:
            dataset(self)
        except FileNotFoundError as error:
            raise template.FlagError(f"--data_path: {error}") from None
        except ValueError as error:
            raise template.FlagError(f"--speakers: {error}") from None


QUICK = dict(speakers=2, min_turns=2, max_words=12, vocab_size=50, embed=8, hidden=8,
             batch=8, steps=20, log_every=10, eval_every=10, baseline=False)


class ClassifierParams(NamedTuple):
    embed: jax.Array  # E: [vocab, embed]
    model: sequence_model.ModelParams  # cell, readout V: [hidden, speakers], c: [speakers]


def init_classifier(key: jax.Array, cell: Cell, vocab_size: int, embed: int, hidden: int,
                    num_classes: int) -> ClassifierParams:
    """E ~ N(0, 1) (as `language_model.init`), the cell's init, a Glorot readout."""
    key_embed, key_model = jax.random.split(key)
    return ClassifierParams(jax.random.normal(key_embed, (vocab_size, embed)),
                            sequence_model.init(key_model, cell, embed, hidden, num_classes))


def classify(cell: Cell, params: ClassifierParams, ids: jax.Array,
             lengths: jax.Array) -> jax.Array:
    """Speaker scores `[batch, speakers]` of word ids `[batch, time]`: o = c + V h(length),
    the state after each example's last word (padded steps keep the carry)."""
    return sequence_model.apply(cell, params.model, params.embed[ids], lengths=lengths,
                                many_to_one=True)


def metrics(logits: jax.Array, labels: jax.Array) -> dict:
    return {"loss": losses.softmax_cross_entropy(logits, labels),
            "accuracy": jnp.mean(jnp.argmax(logits, -1) == labels)}


def task(config: Config) -> Task:
    """One member: embedding -> cell -> readout at the last word -> softmax over speakers."""
    cell, data = get_cell(config.cell), dataset(config)
    train = jax.tree.map(jnp.asarray, data.train[:3])
    test = jax.tree.map(jnp.asarray, data.test[:3])

    def loss_fn(params, batch, key, stream):
        ids, lengths, labels = batch
        m = metrics(classify(cell, params, ids, lengths), labels)
        return m["loss"], ({"accuracy": m["accuracy"]}, stream)

    def sample(key, step):
        index = jax.random.randint(jax.random.fold_in(key, step), (config.batch,), 0,
                                   train[0].shape[0])
        return tuple(a[index] for a in train)

    def evaluate(params, key):
        scores = {name: metrics(classify(cell, params, ids, lengths), labels)
                  for name, (ids, lengths, labels) in (("test", test), ("train", train))}
        return {f"{name}_{k}": v for name, m in scores.items() for k, v in m.items()}

    return Task(
        init=lambda key: init_classifier(key, cell, data.vocabulary.size,
                                                 config.embed, config.hidden, config.speakers),
        loss_fn=loss_fn, sample=sample, evaluate=evaluate)


def run_name(config: Config) -> str:
    """E.g. 'speakers8_unitturn_hidden64_grid-cell_seeds3' (`--run_name` wins)."""
    return driver.run_name(config, ("speakers", "unit", "cell", "hidden"))


def num_params(config: Config) -> int:
    shapes = jax.eval_shape(lambda k: init_classifier(
        k, get_cell(config.cell), dataset(config).vocabulary.size, config.embed,
        config.hidden, config.speakers), jax.random.key(0))
    return sum(int(np.prod(s.shape)) for s in jax.tree.leaves(shapes))


def test_set_interval(accuracy: float, num_test: int) -> str:
    """Wilson 95 % interval of an accuracy over the `num_test` test examples (the test set's
    own sampling error, which the intervals over seeds leave out)."""
    low, high = stats.wilson(round(accuracy * num_test), num_test)
    return f"[{low:.3g}, {high:.3g}]"


def member_fields(config: Config) -> list[str]:
    """The member fields the grid varies inside a population (e.g. weight_decay)."""
    return [f for f in template.grid_of(config) if f in config.MEMBER_FIELDS]


def population_rows(pop_config: Config, members: list[dict], pop_run) -> list[dict]:
    """A row per member values of a population (one without a member grid): final test
    accuracy and loss and train accuracy over those members."""
    data, fields = dataset(pop_config), member_fields(pop_config)
    groups = reporting.by_member_values(members, reporting.finals(pop_run), fields)
    rows = []
    for values, outcomes in groups.items():
        accuracy = reporting.metric_row(outcomes, "test_accuracy")
        rows.append({
            "speakers": pop_config.speakers, "unit": pop_config.unit,
            "model": pop_config.cell, "hidden": pop_config.hidden, **dict(zip(fields, values)),
            "params": num_params(pop_config), "steps": pop_config.steps,
            "test_examples": len(data.test.labels), **accuracy,
            "test_set_wilson95": test_set_interval(accuracy["test_accuracy_mean"],
                                                   len(data.test.labels)),
            **reporting.metric_row(outcomes, "test_loss"),
            **{k: v for k, v in reporting.metric_row(outcomes, "train_accuracy").items()
               if k.startswith("train_")},
            "population_wall_s": round(pop_run.summary()["wall_time_s"])})
    return rows


def group_curves(done: list, metric: str, fields: list[str]) -> dict[str, dict]:
    """Median/IQR curves of `metric`, one per population and member values (`fields` of the
    population config, then the grid's member fields)."""
    curves = {}
    for pop_config, members, pop_run in done:
        records = [r for r in pop_run.metrics() if metric in r]
        names = member_fields(pop_config)
        groups = {}
        for index, member in enumerate(members):
            groups.setdefault(tuple(member[n] for n in names), []).append(index)
        for values, group in groups.items():
            series = [[r for r in records if r["member"] == i] for i in group]
            label = " ".join([reporting.label(pop_config, fields)] + [
                f"{n}={v:g}" for n, v in zip(names, values)])
            curves[label] = stats.curve_quantiles([[r["step"] for r in s] for s in series],
                                                  [[r[metric] for r in s] for s in series])
    return curves


def baseline_rows(config: Config) -> list[dict]:
    """The majority class and (with --baseline) the n-gram logistic regression on the split."""
    data = dataset(config)
    found = {"majority class": baselines.majority(data)}
    if config.baseline:
        found["1-2-gram logistic regression"] = baselines.ngram_logistic_regression(data)
    return [{"speakers": config.speakers, "unit": config.unit, "model": name,
             "params": result["params"], "test_examples": len(data.test.labels),
             "test_accuracy_mean": result["test_accuracy"],
             "test_set_wilson95": test_set_interval(result["test_accuracy"],
                                                    len(data.test.labels)),
             "train_accuracy_mean": result["train_accuracy"]}
            for name, result in found.items()]


COLUMNS = ["speakers", "unit", "model", "hidden", "params", "steps", "members",
           "test_examples", "test_accuracy_mean", "test_accuracy_ci95", "test_set_wilson95",
           "test_accuracy_median", "test_loss_mean", "test_loss_ci95", "train_accuracy_mean",
           "population_wall_s"]


def report(run, config: Config, done: list) -> Report:
    """Per population (cell, ...): final test accuracy over members (95 % t-interval over
    seeds; Wilson interval over test examples) beside the baselines of each data setting;
    the class prior; the test and train accuracy curves with the baselines drawn dashed."""
    rows = [row for pop in done for row in population_rows(*pop)]
    settings = {(c.speakers, c.unit): c for c, _, _ in done}
    references = [row for c in settings.values() for row in baseline_rows(c)]
    table = reporting.write_table(run, "table", rows + references,
                                  COLUMNS[:4] + member_fields(config) + COLUMNS[4:])
    priors = prior_rows(settings.values())
    prior_table = reporting.write_table(run, "prior", priors, list(priors[0]))
    fields = [f for f in template.grid_of(config) if f not in config.MEMBER_FIELDS] or ["cell"]
    figure = plot_accuracy(run.path / "curves.png", done, fields,
                           references if len(settings) == 1 else [],
                           f"who says it: {config.speakers} speakers, one {config.unit} per "
                           "example; median and IQR over seeds")
    return Report({"table": rows, "baselines": references, "prior": priors},
                  {"table": table, "prior": prior_table}, figures=(figure,))


def plot_accuracy(path, done: list, fields: list[str], references: list[dict],
                  title: str):
    """Two panels, test and train accuracy against step (median and IQR over members, one
    curve per population); the `references`' test accuracies dashed on the test panel."""
    plt = population_plots.pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.2), sharey=True)
    for ax, split in zip(axes, ("test", "train")):
        population_plots.draw_curves(ax, group_curves(done, f"{split}_accuracy", fields))
        ax.set(xlabel="update", title=f"{split} accuracy", ylim=(0, 1.02))
    for reference, style in zip(references, ("--", ":")):
        axes[0].axhline(reference["test_accuracy_mean"], color="k", linestyle=style,
                        linewidth=1, label=f"{reference['model']} "
                        f"({reference['test_accuracy_mean']:.3f})")
    axes[0].set_ylabel("accuracy (median, IQR)")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.legend(*axes[0].get_legend_handles_labels(), fontsize=8, loc="upper center",
               bbox_to_anchor=(0.5, 0.0), ncol=3)  # one legend for both panels, below them
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)
    return path


def prior_rows(configs) -> list[dict]:
    """Per data setting and speaker: turns, train and test examples, test class prior."""
    rows = []
    for config in configs:
        data = dataset(config)
        prior = speaker_data.class_prior(data.test.labels, config.speakers)
        for label, name in enumerate(data.speakers):
            rows.append({"speakers": config.speakers, "unit": config.unit, "speaker": name,
                         "turns": data.turn_counts[label],
                         "train_examples": int(np.sum(data.train.labels == label)),
                         "test_examples": int(np.sum(data.test.labels == label)),
                         "test_prior": float(prior[label])})
    return rows


EXPERIMENT = Experiment(NAME, Config, QUICK, task, report, run_name=run_name)
