"""One table and one figure over several finished `long_memory` runs (nothing is trained).

    python -m experiments.long_memory.compare --out_dir=results --name=adding_T100 \
        --runs=adding_T100_lstm_10k,adding_T100_tanh_irnn_10k,adding_T100_urnn

Cells trained by separate commands (the uRNN is never clipped, so it runs alone) are compared
on the same axes: one panel per (task, T), every population of the listed runs in it, with
the report of `experiments.long_memory` (beating and solving judged on each member's last
evaluations). Writes `<out_dir>/long_memory/compare_<name>/table.md` and `curves.png`.
"""

import dataclasses
import json
import sys
from pathlib import Path
from typing import NamedTuple

from absl import app, flags

from experiments.long_memory import experiment as long_memory
from rnn_jax import training

FLAGS = flags.FLAGS
flags.DEFINE_string("out_dir", "results", "Where the runs are: <out_dir>/long_memory/<run>.")
flags.DEFINE_list("runs", [], "Run names (--run_name of each long_memory command) to compare.")
flags.DEFINE_string("name", "", "Name of this comparison: writes <out_dir>/long_memory/"
                    "compare_<name>/.")
flags.DEFINE_string("figures_dir", "", "Also copy the figure here as long_memory_compare_"
                    "<name>_curves.png.")


class Output(NamedTuple):
    """Where the report writes (`long_memory.report` needs only `.path`)."""

    path: Path


def populations(run_dir: Path) -> list[tuple]:
    """(config, members, Run) of every finished population in one run directory."""
    if not (run_dir / training.CONFIG).is_file():
        raise ValueError(f"--runs: expected a long_memory run directory with config.json, "
                         f"received {run_dir}")
    fields = {f.name for f in dataclasses.fields(long_memory.Config)}
    found = []
    for path in sorted(p for p in run_dir.iterdir() if (p / training.CONFIG).is_file()):
        saved = json.loads((path / training.CONFIG).read_text())
        config = long_memory.Config(**{k: v for k, v in saved.items() if k in fields})
        if not training.Run(path).finished:
            raise ValueError(f"--runs: expected finished populations, received the unfinished "
                             f"{path} (finish it by running its command again)")
        found.append((config, saved.get("members", []), training.Run(path)))
    if not found:
        raise ValueError(f"--runs: expected populations inside {run_dir}, received none")
    return found


def compare(out_dir: str, runs: list[str], name: str, figures_dir: str = "") -> dict:
    if not runs or not name:
        raise ValueError(f"expected --runs (at least one run name) and --name, received "
                         f"runs={runs!r}, name={name!r}")
    training.check_name(name, "--name")
    root = Path(out_dir).expanduser() / long_memory.NAME
    done = [p for run in runs for p in populations(root / training.check_name(run, "--runs"))]
    done.sort(key=lambda p: (p[0].task, p[0].seq_len, p[0].cell))
    output = Output(root / f"compare_{name}")
    output.path.mkdir(parents=True, exist_ok=True)
    config = dataclasses.replace(done[0][0], figures_dir=figures_dir)
    return long_memory.report(output, config, done)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    try:
        compare(FLAGS.out_dir, FLAGS.runs, FLAGS.name, FLAGS.figures_dir)
    except ValueError as error:
        sys.exit(f"error: {error}")


if __name__ == "__main__":
    app.run(main)
