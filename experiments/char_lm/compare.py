"""One table and one figure over several finished `char_lm` runs (nothing is trained).

    python -m experiments.char_lm.compare --out_dir=results --name=bptt_k \
        --runs=RUN_K8,RUN_K16,... --label=seq_len,batch

For choices that change shapes and so train as separate commands, e.g. the truncated-BPTT
chunk k (`--seq_len`) with `--batch` = 4096 / k: every population of the listed runs, labelled
by the `--label` fields, in `char_lm`'s table (final validation and training-text loss, mean
and 95 % interval over members) and in one figure of two panels, the training loss (each
update's chunk) and the validation loss against updates (median and IQR over members).
Writes `<out_dir>/char_lm/compare_<name>/table.md` and `curves.png`.
"""

import sys
from pathlib import Path

from absl import app, flags

from experiments.char_lm import experiment as char_lm
from experiments.char_lm import table_rows
from experiments.char_lm.sampling import saved_config
from experiments.harness import reporting
from rnn_jax import population_plots, training

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "results", "Where the runs are: <out_dir>/char_lm/<run>.")
flags.DEFINE_list("runs", [], "Run directory names (under <out_dir>/char_lm) to compare.")
flags.DEFINE_string("name", "", "This comparison's name: writes <out_dir>/char_lm/compare_<name>/.")
flags.DEFINE_list("label", ["seq_len", "batch"], "Config fields that label each population.")
flags.DEFINE_string("figures_dir", "", "Also copy the figure here as char_lm_compare_<name>"
                    "_curves.png.")
COLUMNS = ["label", "model", "members", "diverged", "params", "steps", "val_nats_mean",
           "val_nats_ci95", "train_nats_mean", "train_nats_ci95", "loss_mean", "loss_ci95",
           "wall_s"]


def finished_populations(run_dir: Path) -> list[tuple]:
    """(config, members, Run) of every finished population in one char_lm run directory."""
    found = [(*saved_config(char_lm.Config, p), training.Run(p)) for p in sorted(run_dir.iterdir())
             if (p / training.CONFIG).is_file() and (p / "metrics.jsonl").is_file()]
    if not found or not all(run.finished for _, _, run in found):
        raise ValueError(f"--runs: expected a char_lm run directory with finished populations, "
                         f"received {run_dir}")
    return found


def compare(out_dir: str, runs: list[str], name: str, label: list[str],
            figures_dir: str = "") -> list[dict]:
    """The table's rows (one per population, in the order of `runs`); writes table.md and
    curves.png into `<out_dir>/char_lm/compare_<name>/`."""
    if not runs or not name:
        raise ValueError(f"expected --runs (at least one run name) and --name, received "
                         f"runs={runs!r}, name={name!r}")
    root = Path(out_dir).expanduser() / char_lm.NAME
    done = [p for run in runs for p in finished_populations(
        root / training.check_name(run, "--runs"))]
    output = training.Run(root / f"compare_{training.check_name(name, '--name')}")
    output.path.mkdir(parents=True, exist_ok=True)
    rows = [{"label": reporting.label(config, label), **table_rows.population_row(config, run),
             **reporting.metric_row(reporting.finals(run), "loss")}
            for config, _, run in done]
    shown = [{k: f"{v:.4f}" if isinstance(v, float) else v for k, v in r.items()} for r in rows]
    print(reporting.write_table(output, "table", shown, COLUMNS))
    panels = {title: reporting.curves(done, metric, label) for metric, title in (
        ("loss", "training loss (each update's chunk)"), ("val_nats", "validation"))}
    figure = population_plots.plot_population_panels(
        output.path / "curves.png", panels, f"nats/{done[0][0].level}",
        f"char_lm: {name}, median and IQR over each population's members")
    reporting.copy_figures([figure], figures_dir, f"char_lm_compare_{name}")
    return rows


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        compare(FLAGS.out_dir, FLAGS.runs, FLAGS.name, FLAGS.label, FLAGS.figures_dir)
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
