"""Beam search against greedy decoding, on the members an `experiments.seq2seq` run trained
(its `--beam_widths`, evaluated after training or with `--report_only`).

Each member decodes the same 256 evaluation pairs per test length as its greedy evaluation
(same keys), with beam search of every width in `--beam_widths` (`rnn_jax.seq2seq.decode.
beam_search`; width 1 is greedy search), and records per width: exact match, token accuracy,
the mean log-likelihood log p(decoded output | source) of what it decoded (and its gain over
the narrowest beam's, member by member), and the mean log-likelihood of the reference output
under the same model (teacher-forced). A beam that
finds outputs more probable than the references while getting them wrong shows a model
error; one that finds outputs less probable than the references, a search error.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from experiments.harness import reporting
from experiments.harness.population_state import member_keys
from experiments.seq2seq import experiment as seq2seq
from rnn_jax import population_plots, stats, training
from rnn_jax.seq2seq import decode, decoder, model

METRICS = (("exact", "exact match"), ("token", "token accuracy"),
           ("log_likelihood_gain", "gain in log p(decoded)"))
AXIS = {"log_likelihood_gain": "log p(decoded) minus the narrowest beam's"}


def decoding_config(config: seq2seq.Config) -> seq2seq.Config:
    """`config` with only the fields decoding depends on kept (the others at their defaults),
    so populations that differ in training alone share one compiled beam search."""
    kept = ("task", "attention", "cell", "bidirectional", "hidden", "embed", "seq_len",
            "min_len", "test_lengths", "beam_alpha", "seed")
    return seq2seq.Config(**{name: getattr(config, name) for name in kept})


@functools.lru_cache(maxsize=None)
def beam_program(config: seq2seq.Config, length: int | None, width: int):
    """Jitted `(params [members, ...], keys [members]) -> {metric: [members]}` (module
    docstring) at one source length and beam width."""
    net = seq2seq.build(config)

    def member(params, key):
        batch = seq2seq.evaluation_batch(config, key, length)
        carry, memory = model.start(net, params, batch.source, batch.source_lengths)
        decoded = decode.beam_search(net.decoder, params.decoder, carry, memory,
                                     batch.target.shape[1], width, alpha=config.beam_alpha)
        accuracy = decode.accuracy(decoded, batch.target, batch.target_lengths)
        return {"exact": accuracy["exact_match"], "token": accuracy["token_accuracy"],
                "log_likelihood": jnp.mean(decoded.scores),
                "reference_log_likelihood": jnp.mean(reference_log_likelihood(net, params,
                                                                              batch))}

    return jax.jit(jax.vmap(member))


def reference_log_likelihood(net: model.Seq2Seq, params, batch) -> jax.Array:
    """`[batch]` log p(reference target | source): the teacher-forced log-probabilities of
    the valid target tokens (EOS included), summed."""
    logits, _ = model.forward(net, params, batch.source, batch.source_lengths,
                              decoder.shift_right(batch.target), batch.target_lengths)
    log_p = jnp.take_along_axis(jax.nn.log_softmax(logits), batch.target[..., None], -1)[..., 0]
    mask = jnp.arange(batch.target.shape[1])[None, :] < batch.target_lengths[:, None]
    return jnp.sum(jnp.where(mask, log_p, 0.0), axis=1)


def outcomes(pop_config: seq2seq.Config, members: list[dict], pop_run: training.Run
             ) -> dict | None:
    """`{(length, width): {metric: [members] numpy}}` from the population's last checkpoint
    (None: no checkpoint). The keys are those of the greedy evaluation (`seq2seq.task`)."""
    params = seq2seq.population_params(pop_config, members, pop_run)
    if params is None:
        return None
    keys = jnp.stack([member_keys(m["seed"])["eval"] for m in members])
    config = decoding_config(pop_config)
    out = {}
    for i, length in enumerate(seq2seq.lengths_of(pop_config)):
        length_keys = jax.vmap(lambda key: jax.random.fold_in(key, i))(keys)
        for width in pop_config.beam_widths:
            measured = beam_program(config, length, width)(params, length_keys)
            out[(length, width)] = {k: np.asarray(v) for k, v in measured.items()}
    return out


def report(run: training.Run, config: seq2seq.Config, done: list) -> dict:
    """beam.md/.csv (per population, length and width: mean and 95 % t-interval over the
    members) and beam.png; `{"table": rows, "markdown": beam.md's text, "figure": path or None}`."""
    rows = []
    for pop_config, members, pop_run in done:
        measured = outcomes(pop_config, members, pop_run)
        if measured is None:
            print(f"{pop_run.path.name}: no checkpoint, so no beam search table")
            continue
        label = seq2seq.population_label(pop_config, config)
        narrowest = min(pop_config.beam_widths)
        for (length, width), values in measured.items():
            row = {"population": label, "source_length": seq2seq.suffix(length),
                   "beam_width": width, "members": len(members)}
            values = {**values, "log_likelihood_gain": values["log_likelihood"]
                      - measured[(length, narrowest)]["log_likelihood"]}
            for metric in ("exact", "token", "log_likelihood", "log_likelihood_gain",
                           "reference_log_likelihood"):
                d = stats.describe(values[metric])
                row[f"{metric}_mean"] = d["mean"]
                row[f"{metric}_ci95"] = f"[{d['ci95_low']:.3f}, {d['ci95_high']:.3f}]"
                row[f"_{metric}"] = d
            rows.append(row)
    columns = ["population", "source_length", "beam_width", "members", "exact_mean",
               "exact_ci95", "token_mean", "token_ci95", "log_likelihood_mean",
               "log_likelihood_ci95", "log_likelihood_gain_mean", "log_likelihood_gain_ci95",
               "reference_log_likelihood_mean"]
    markdown = reporting.write_table(run, "beam", rows, columns) if rows else ""
    return {"table": [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows],
            "markdown": markdown, "figure": plot(run, rows) if rows else None}


def plot(run: training.Run, rows: list[dict]):
    """beam.png: a row of panels per population (exact match, token accuracy, and the gain in
    mean log-likelihood of the decoded output over the narrowest beam's, against beam width),
    a line per source length, the mean over members with its 95 % t-interval."""
    labels = list(dict.fromkeys(r["population"] for r in rows))
    plt = population_plots.pyplot()
    fig, axes = plt.subplots(len(labels), 3, figsize=(14, 3.6 * len(labels)), squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for axes_row, label in zip(axes, labels):
        mine = [r for r in rows if r["population"] == label]
        lengths = list(dict.fromkeys(r["source_length"] for r in mine))
        for ax, (metric, title) in zip(axes_row, METRICS):
            for color, length in zip(colors * 4, lengths):
                points = [r for r in mine if r["source_length"] == length]
                _errorbar(ax, points, metric, color, f"source {length}")
            widths = sorted({r["beam_width"] for r in mine})
            ax.set_xscale("log", base=2)
            ax.set_xticks(widths, [str(w) for w in widths])
            ax.set(xlabel="beam width", title=f"{label}: {title}",
                   ylabel=f"{AXIS.get(metric, title)}\n(mean, 95 % t-interval)")
            if metric != "log_likelihood_gain":
                ax.set_ylim(-0.05, 1.05)
        axes_row[0].legend(fontsize=7)
    return population_plots.save(fig, run.path / "beam.png")


def _errorbar(ax, points: list[dict], metric: str, color: str, label: str) -> None:
    d = [r[f"_{metric}"] for r in points]
    mean = np.array([x["mean"] for x in d])
    low = np.nan_to_num(mean - np.array([x["ci95_low"] for x in d]))
    high = np.nan_to_num(np.array([x["ci95_high"] for x in d]) - mean)
    ax.errorbar([r["beam_width"] for r in points], mean, yerr=[low, high], marker="o",
                capsize=3, color=color, label=label)

