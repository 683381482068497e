"""experiments.long_memory on the template: flags from its Config, the paper's sizes, the
losses against NumPy and the memoryless baselines, elementwise clipping and RMSProp's decay in
the member optimiser, cells as populations of seeds, the report against the run files, bad
input before anything is compiled or written."""

import csv
import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl import flags

from experiments.harness import command_line, driver, template
from experiments.harness.population_state import init_population
from experiments.long_memory import experiment as long_memory
from rnn_jax import training
from rnn_jax.data import adding, copying
from tests.cells import reference_cells

FIELDS = {f.name: f for f in dataclasses.fields(long_memory.Config)}


def quick(tmp_path, *argv):
    return driver.call(long_memory.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def test_flags_come_from_the_config_with_its_defaults_and_quick_values():
    flag_values = flags.FlagValues()
    command_line.define_flags(long_memory.Config, flag_values)
    for name, field in FIELDS.items():
        expected = list(field.default) if isinstance(field.default, tuple) else field.default
        assert flag_values[name].default == expected, name
    config = driver.parse(long_memory.EXPERIMENT, [])
    assert (config.optimizer, config.lr, config.batch, config.clip_kind) == \
        ("rmsprop", 1e-3, 20, "elementwise")
    config = driver.parse(long_memory.EXPERIMENT, ["--quick", "--seq_len=6"])
    assert config.seq_len == 6 and all(getattr(config, k) == v for k, v in
                                       long_memory.QUICK.items() if k != "seq_len")


@pytest.mark.parametrize("task, cell, params", [
    # cell + readout written out: U [in, h], W [h, h], b [h] (x4 gates for the LSTM), V, c
    ("copying", "vanilla", 10 * 80 + 80 * 80 + 80 + 80 * 9 + 9),
    ("copying", "lstm", 4 * (10 * 40 + 40 * 40 + 40) + 40 * 9 + 9),
    ("adding", "irnn", 2 * 128 + 128 * 128 + 128 + 128 + 1),
])
def test_paper_sizes_set_the_hidden_units_of_each_task_and_cell(task, cell, params):
    config = driver.parse(long_memory.EXPERIMENT, [f"--task={task}", f"--cell={cell}"])
    assert long_memory.hidden_of(config) == long_memory.HIDDEN[task][cell]
    assert long_memory.num_params(config) == params
    config = driver.parse(long_memory.EXPERIMENT, [f"--task={task}", f"--cell={cell}",
                                             "--nopaper_sizes", "--hidden=7"])
    assert long_memory.hidden_of(config) == 7


def numpy_loss(task, params, xs, targets):
    """The tanh RNN + readout by a Python loop, then the task's loss by hand."""
    cell = (np.asarray(params.cell.U), np.asarray(params.cell.W), np.asarray(params.cell.b))
    losses, recalled = [], []
    for x, target in zip(np.asarray(xs), np.asarray(targets)):
        outputs = reference_cells.vanilla(cell, x) @ np.asarray(params.readout.V) \
            + np.asarray(params.readout.c)  # [time, out]
        if task == "adding":
            losses.append((outputs[-1, 0] - target[0]) ** 2)
            continue
        log_p = outputs - outputs.max(-1, keepdims=True)
        log_p -= np.log(np.exp(log_p).sum(-1, keepdims=True))
        losses.append(-np.mean(log_p[np.arange(len(target)), target]))
        recalled.append(np.mean(outputs[-10:].argmax(-1) == target[-10:]))
    return np.mean(losses), (np.mean(recalled) if recalled else None)


@pytest.mark.parametrize("task", ["copying", "adding"])
def test_the_members_loss_equals_a_numpy_loop(task, key):
    config = driver.parse(long_memory.EXPERIMENT, ["--quick", f"--task={task}", "--cell=vanilla"])
    member = long_memory.task(config)
    params = member.init(key)
    batch = member.sample(jax.random.key(1), 3)
    loss, (m, _) = member.loss_fn(params, batch, key, ())
    expected, recall = numpy_loss(task, params, *batch)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    if task == "copying":
        np.testing.assert_allclose(m["recall_accuracy"], recall)


def test_the_memoryless_strategies_score_the_baselines(key):
    T, batch = 30, 4000
    config = driver.parse(long_memory.EXPERIMENT, ["--quick", f"--seq_len={T}"])
    xs, labels = copying.sample(key, 8, T)
    blank = jnp.zeros(copying.NUM_CLASSES).at[0].set(1e4)  # certain blank, then uniform symbols
    uniform = jnp.full(copying.NUM_CLASSES, 0.0).at[0].set(-1e4)
    logits = jnp.concatenate([jnp.tile(blank, (8, T + 10, 1)), jnp.tile(uniform, (8, 10, 1))], 1)
    loss = long_memory.metrics(config, logits, labels)["loss"]
    np.testing.assert_allclose(loss, copying.baseline(T), rtol=1e-5)
    assert copying.baseline(T) == pytest.approx(10 * np.log(8) / (T + 20))
    config = dataclasses.replace(config, task="adding")
    _, ys = adding.sample(key, batch, T)
    mse = float(long_memory.metrics(config, jnp.ones_like(ys), ys)["loss"])
    assert abs(mse - 1 / 6) < 4 * np.sqrt(np.var(np.asarray(ys - 1) ** 2) / batch)


@pytest.mark.slow  # an end-to-end experiment run
def test_elementwise_clipping_and_rmsprop_decay_reach_the_member_optimizer(key):
    config = driver.parse(long_memory.EXPERIMENT, ["--quick", "--cell=vanilla", "--clip=0.01",
                                                    "--lr=0.1"])
    member = long_memory.task(config)
    assert member.clip_kind == "elementwise" and member.optimizer_options == {"decay": 0.9}
    state, optimizer, _ = init_population(member, config, [
        {"seed": 0, "lr": 0.1, "clip": 0.01, "weight_decay": 0.0}])
    first = jax.tree.map(lambda leaf: leaf[0], state.members)
    batch = member.sample(jax.random.key(3), 0)
    grads = jax.grad(lambda p: member.loss_fn(p, batch, key, ())[0])(first.params)
    updates, _ = optimizer.update(grads, first.opt_state, first.params)
    for g, u in zip(jax.tree.leaves(grads), jax.tree.leaves(updates)):
        g = np.clip(np.asarray(g, np.float64), -0.01, 0.01)  # each entry to [-clip, clip]
        nu = (1 - 0.9) * g ** 2  # RMSProp's first second-moment estimate, decay 0.9
        # optax's rmsprop: eps inside the square root (eps_in_sqrt=True, eps 1e-8)
        np.testing.assert_allclose(u, -0.1 * g / np.sqrt(nu + 1e-8), rtol=1e-4, atol=1e-7)
    assert max(float(jnp.abs(g).max()) for g in jax.tree.leaves(grads)) > 0.01  # it clipped


@pytest.mark.slow  # an end-to-end experiment run
def test_cells_train_as_populations_of_seeds_and_the_table_counts_the_run_files(tmp_path):
    summary = quick(tmp_path, "--seeds=2", "--grid=cell=vanilla,irnn,lstm")
    (run_dir,) = (tmp_path / "long_memory").iterdir()
    assert run_dir.name == "quick_copying_T8_grid-cell_seeds2"
    saved = json.loads((run_dir / "config.json").read_text())
    assert set(saved) == set(FIELDS) - set(template.Base.NOT_IN_CONFIG)
    rows = list(csv.DictReader((run_dir / "table.csv").open()))
    assert [r["cell"] for r in rows] == ["vanilla", "irnn", "lstm"]
    for row, cell in zip(rows, ["vanilla", "irnn", "lstm"]):
        pop = json.loads((run_dir / f"cell{cell}" / "config.json").read_text())
        assert [m["seed"] for m in pop["members"]] == [0, 1] and pop["cell"] == cell
        records = [json.loads(line) for line in
                   (run_dir / f"cell{cell}" / "metrics.jsonl").read_text().splitlines()]
        finals = [[r for r in records if r["member"] == m and "eval_loss" in r][-1]
                  for m in (0, 1)]
        assert [f["step"] for f in finals] == [20, 20]
        assert float(row["eval_loss_mean"]) == pytest.approx(
            np.mean([f["eval_loss"] for f in finals]), rel=1e-3)
        baseline = copying.baseline(8)
        beaten = sum(any(r.get("eval_loss", np.inf) <= 0.95 * baseline for r in records
                         if r["member"] == m) for m in (0, 1))
        assert row["beat"] == f"{beaten}/2"
    assert summary["populations"] == 3 and (run_dir / "curves.png").exists()


@pytest.mark.slow  # an end-to-end experiment run
def test_the_urnn_trains_unclipped_on_adding_and_report_only_rereads(tmp_path):
    argv = ["--task=adding", "--cell=urnn", "--clip=0", "--seq_len=6", "--seeds=2"]
    quick(tmp_path, *argv)
    (run_dir,) = (tmp_path / "long_memory").iterdir()
    before = (run_dir / "table.md").read_text()
    assert "| adding | 6 | urnn | 8 |" in before
    (run_dir / "table.md").unlink()
    quick(tmp_path, *argv, "--report_only")
    assert (run_dir / "table.md").read_text() == before


@pytest.mark.parametrize("argv, match", [
    (["--seq_len=1"], "--seq_len: expected an integer T >= 2, received 1"),
    (["--eval_batch=0"], "--eval_batch: expected an integer >= 1, received 0"),
    (["--cell=gru", "--paper_sizes"],
     r"--cell: expected one of \['irnn', 'lstm', 'urnn', 'vanilla'\] with "
     "--paper_sizes, received 'gru'"),
    (["--cell=urnn"], r"--clip: expected 0 for --cell=urnn \(the uRNN is never clipped"),
    (["--grid=cell=lstm,urnn"], "--clip: expected 0 for --cell=urnn"),
    (["--task=multiply"], r"expected one of .*, received "),
    (["--clip_kind=layerwise"], r"expected one of .*, received "),
    (["--solved_accuracy=0"], r"--solved_accuracy: expected a value in \(0, 1\]"),
    (["--solved_mse=-1"], "--solved_mse: expected a positive value, received -1.0"),
    (["--seeds=0"], "--seeds: expected a positive count"),
])
def test_bad_input_is_one_line_before_anything_is_compiled_or_written(argv, match, tmp_path,
                                                                       monkeypatch):
    def compile_attempted(*args, **kwargs):
        raise AssertionError("make_train_step was called before the flags were validated")

    monkeypatch.setattr(training, "make_train_step", compile_attempted)
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "long_memory").exists()
