"""The harness's driver on a declared Experiment: `task` once per population, the shared end of
every report (figures copied with their population's name, tables, the run dir), and
`load_member` reading one member back from a population's checkpoint."""

import importlib

import jax
import numpy as np
import pytest

from experiments.harness import driver, reporting, template
from experiments.harness.population_state import init_population, load_member
from experiments.harness.records import Experiment, Report
from experiments.parity import experiment as parity
from rnn_jax import training


def test_every_experiment_declares_itself_with_the_typed_record():
    for name in ("parity", "summation", "tagging", "long_memory", "char_lm", "seq2seq",
                 "captioning", "sequence_classification", "vanishing_gradients",
                 "parallel_in_time"):
        declared = importlib.import_module(f"experiments.{name}.experiment").EXPERIMENT
        assert isinstance(declared, Experiment) and declared.name == name


@pytest.mark.slow  # an end-to-end experiment run
def test_the_driver_calls_task_once_per_population(tmp_path):
    calls = []

    def counted(config):
        calls.append(config.seq_len)
        return parity.task(config)

    experiment = parity.EXPERIMENT._replace(task=counted)
    summary = driver.call(experiment, ["--quick", "--steps=2", "--log_every=1",
                                       "--eval_every=0", "--grid=seq_len=3,5",
                                       f"--out_dir={tmp_path}"])
    assert summary["populations"] == 2 and sorted(calls) == [3, 5]


def test_finish_report_copies_figures_prints_tables_and_the_run_dir(tmp_path, capsys):
    run = training.Run.create(tmp_path, "toy", "run", {})
    (run.path / "pop").mkdir()
    figures = [run.path / "curves.png", run.path / "pop" / "samples.png", None]
    for figure in figures[:2]:
        figure.write_bytes(b"png")
    config = parity.Config(figures_dir=str(tmp_path / "figures"))
    experiment = Experiment("toy", parity.Config, {}, parity.task, parity.report)
    report = Report({"answer": 42}, {"a": "| a |", "b": "| b |"}, tuple(figures), ("a line",))
    assert driver.finish_report(experiment, run, config, report) == {"answer": 42}
    copied = sorted(p.name for p in (tmp_path / "figures").iterdir())
    assert copied == ["toy_run_curves.png", "toy_run_pop_samples.png"]
    assert capsys.readouterr().out.splitlines() == [
        "a:", "| a |", "b:", "| b |", "a line", f"run dir {run.path}"]
    reporting.copy_figures(figures, str(tmp_path / "named"), "toy_x")  # outside a run dir
    assert sorted(p.name for p in (tmp_path / "named").iterdir()) == [
        "toy_x_curves.png", "toy_x_samples.png"]


@pytest.mark.slow  # an end-to-end experiment run
def test_load_member_reads_a_member_back_from_the_checkpoint(tmp_path):
    out = str(tmp_path)
    args = ["--quick", "--seeds=2", "--steps=4", "--log_every=2", "--eval_every=0",
            "--checkpoint_every=4", f"--out_dir={out}"]
    config = driver.parse(parity.EXPERIMENT, args)
    driver.call(parity.EXPERIMENT, args)
    ((pop_config, members),) = template.expand(config)
    pop_dir = next(p for p in (tmp_path / "parity").iterdir()) / "population"
    task = parity.task(pop_config)
    loaded = [load_member(task, pop_config, members, pop_dir, m) for m in (0, 1)]
    start, _, _ = init_population(task, pop_config, members)
    for member, params in enumerate(loaded):
        at_init = jax.tree.map(lambda leaf: leaf[member], start.members.params)
        moved = jax.tree.map(lambda a, b: np.abs(np.asarray(a) - np.asarray(b)).max(),
                             params, at_init)
        assert max(jax.tree.leaves(moved)) > 0  # trained, not step 0
    assert not all(np.allclose(a, b) for a, b in zip(  # each member its own
        jax.tree.leaves(loaded[0]), jax.tree.leaves(loaded[1])))
    assert load_member(task, pop_config, members, tmp_path, 0) is None  # no checkpoint
