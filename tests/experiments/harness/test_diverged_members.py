"""No member left out: a population whose members go NaN at different steps, through the
statistics, the table, the success counts and the figure (experiments/harness/reporting.py,
rnn_jax/stats.py, rnn_jax/population_plots.py).

The population is written by hand (a Run with metrics.jsonl and summary.json as the loop
writes them), so which member diverges where is known exactly.
"""

import math

import matplotlib.image
import numpy as np

from experiments.harness import driver, reporting
from experiments.long_memory import experiment as long_memory
from experiments.parity import experiment as parity
from rnn_jax import population_plots, stats, training

NAN = float("nan")
# member -> eval_accuracy at steps 100, 200, 300; member 1 diverges at 200, member 3 at 300
ACCURACY = {0: [0.6, 0.8, 0.995], 1: [0.7, NAN], 2: [0.5, 0.6, 0.7], 3: [0.99, 0.995, NAN]}


def write_population(tmp_path, name="population", config=None):
    run = training.Run.create(tmp_path, "parity", name, config or {"cell": "lstm"})
    members = []
    for member, values in ACCURACY.items():
        for i, value in enumerate(values):
            run.log({"step": 100 * (i + 1), "member": member, "eval_accuracy": value,
                     "test_accuracy": value, "eval_loss": value})
        members.append({"member": member, "steps": 100 * len(values),
                        "stopped": "diverged" if math.isnan(values[-1]) else "num_steps",
                        "final": {"eval_accuracy": values[-1], "test_accuracy": values[-1],
                                  "eval_loss": values[-1]}})
    run.write_summary({"finished": True, "members": members})
    return run


def test_curve_counts_every_member_and_where_each_diverged():
    steps = [[100 * (i + 1) for i in range(len(v))] for v in ACCURACY.values()]
    curve = stats.curve_quantiles(steps, list(ACCURACY.values()))
    assert curve["n_members"] == 4 and curve["diverged_at"] == [None, 200, None, 300]
    assert curve["n"] == [4, 3, 2] and curve["n_nonfinite"] == [0, 1, 2]
    assert population_plots.curve_label("lstm", curve) == "lstm (n=4, 2 diverged)"


def test_describe_says_how_many_members_it_covers():
    d = stats.describe([1.0, NAN, 3.0, None])
    assert (d["n"], d["n_nonfinite"], d["n_members"]) == (2, 2, 4)


def test_table_counts_diverged_members_and_never_as_solved(tmp_path):
    run = write_population(tmp_path)
    outcomes = reporting.finals(run)
    reached = reporting.steps_to_reach(run, "eval_accuracy", 0.99)
    assert reached == {0: 300, 1: None, 2: None, 3: 100}  # member 3 passed, then diverged
    row = {"cell": "lstm", **reporting.reached_row([reached[o["member"]] for o in outcomes],
                                                   outcomes),
           **reporting.metric_row(outcomes, "eval_accuracy")}
    assert row["solved"] == "1/4"  # the diverged member 3 is a failure, not a success
    assert (row["members"], row["diverged"], row["eval_accuracy_n"]) == (4, 2, 2)
    table = reporting.write_table(run, "table", [row], ["cell", "solved", "eval_accuracy_mean",
                                                        "eval_accuracy_ci95"])
    header, _, line = table.splitlines()
    assert header.split(" | ")[1:3] == ["members", "diverged"]
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1:4] == ["4", "2", "1/4"]
    assert cells[4] == f"{np.mean([0.995, 0.7]):.3f} (2 of 4)" and cells[5].endswith("(2 of 4)")


def test_parity_report_and_figure_show_every_member(tmp_path):
    pop = write_population(tmp_path / "pops")
    config = parity.Config(figures_dir=str(tmp_path / "figures"))
    summary = driver.finish_report(parity.EXPERIMENT, pop, config,
                                   parity.report(pop, config, [(config, [], pop)]))
    row = summary["table"][0]
    assert (row["members"], row["diverged"], row["solved"]) == (4, 2, "1/4")
    image = matplotlib.image.imread(tmp_path / "figures" / "parity_population_curves.png")
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert np.std(image[..., :3]) > 0.05  # not blank


def test_long_memory_judges_the_last_evaluations_not_one_dip(tmp_path):
    run = training.Run.create(tmp_path, "long_memory", "p", {"cell": "lstm"})
    baseline = 1 / 6
    dips = [0.17, 0.10, 0.17, 0.17, 0.17, 0.17, 0.17]  # one evaluation below: a dip
    stays = [0.17, 0.17, 0.10, 0.09, 0.08, 0.08, 0.07]
    gone = [0.10, 0.09, 0.08, 0.08, 0.07, 0.07, NAN]  # below, then diverged
    for member, values in enumerate([dips, stays, gone]):
        for i, value in enumerate(values):
            run.log({"step": 50 * (i + 1), "member": member, "eval_loss": value})
    beaten = long_memory.judged(run, "eval_loss", lambda v: v <= 0.95 * baseline)
    assert beaten == {0: None, 1: 150, 2: None}


def test_outcomes_split_by_a_member_grid_keep_every_member_once():
    members = [{"seed": s, "lr": lr} for lr in (1e-3, 1e-2) for s in (0, 1)]
    outcomes = [{"member": i, "final": {}} for i in (3, 0, 2, 1)]
    groups = reporting.by_member_values(members, outcomes, ["lr"])
    assert list(groups) == [(1e-2,), (1e-3,)]  # in the order the outcomes come
    assert sorted(o["member"] for o in groups[(1e-3,)]) == [0, 1]
    assert sorted(o["member"] for o in groups[(1e-2,)]) == [2, 3]
    assert reporting.by_member_values(members, outcomes, []) == {(): outcomes}
