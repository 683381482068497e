"""experiments.sequence_classification: --quick end to end on the digits, MNIST from a tiny
file through the experiment's data path, the missing-scikit-learn message, and bad flags
before any compile."""

import builtins
import json

import jax.numpy as jnp
import matplotlib.image
import numpy as np
import pytest

from experiments.harness import driver, template
from experiments.sequence_classification import experiment as sc
from rnn_jax import sequence_model, training
from rnn_jax.cells import get_cell
from rnn_jax.data import digits


def quick(tmp_path, *argv):
    return driver.call(sc.EXPERIMENT, ["--quick", f"--out_dir={tmp_path}", *argv])


def test_quick_run_on_the_digits_reports_test_accuracy(tmp_path):
    pytest.importorskip("sklearn")
    summary = quick(tmp_path, f"--figures_dir={tmp_path / 'fig'}")
    (row,) = summary["table"]
    assert (row["order"], row["time_steps"], row["members"]) == ("row", 8, 1)
    # LSTM, 8 inputs, 8 units: U [8, 32], W [8, 32], b [32]; readout V [8, 10], c [10]
    assert row["params"] == 8 * 32 + 8 * 32 + 32 + 8 * 10 + 10
    run_dir = tmp_path / "sequence_classification" / "quick_digits_row_lstm_hidden8_seed0"
    records = [json.loads(line) for line in
               (run_dir / "population" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20]
    assert row["test_accuracy_mean"] == pytest.approx(records[-1]["test_accuracy"])
    assert (tmp_path / "fig" / f"sequence_classification_{run_dir.name}_curves.png").exists()


@pytest.mark.slow  # an end-to-end experiment run
def test_learning_rate_grid_reports_each_rate_and_each_cell_at_its_best(tmp_path):
    """--grid=lr: one row per (cell, lr) whose statistics are over that rate's members only
    (checked against the members' records), the gradient norms from the logged records, and
    the best rate per cell; the figure has one panel per cell."""
    pytest.importorskip("sklearn")
    summary = quick(tmp_path, "--seeds=2", "--grid=cell=vanilla,gru", "--grid=lr=1e-3,3e-2",
                    f"--figures_dir={tmp_path / 'fig'}")
    rows = summary["table"]
    assert [(r["cell"], r["lr"], r["members"]) for r in rows] == [
        ("vanilla", 1e-3, 2), ("vanilla", 3e-2, 2), ("gru", 1e-3, 2), ("gru", 3e-2, 2)]
    config = driver.parse(sc.EXPERIMENT, ["--quick", "--seeds=2", "--grid=cell=vanilla,gru",
                                    "--grid=lr=1e-3,3e-2"])
    for pop_config, members in template.expand(config):
        run_dir = next((tmp_path / "sequence_classification").iterdir())
        records = [json.loads(line) for line in (run_dir / f"cell{pop_config.cell}" /
                                                 "metrics.jsonl").read_text().splitlines()]
        for lr in (1e-3, 3e-2):
            group = [i for i, m in enumerate(members) if m["lr"] == lr]
            finals = [[r for r in records if r["member"] == i and "test_accuracy" in r][-1]
                      for i in group]
            norms = [[r["grad_norm"] for r in records if r["member"] == i] for i in group]
            (row,) = [r for r in rows if (r["cell"], r["lr"]) == (pop_config.cell, lr)]
            assert row["test_accuracy_mean"] == pytest.approx(
                np.mean([f["test_accuracy"] for f in finals]))
            assert row["grad_norm_max"] == pytest.approx(max(map(max, norms)))
            assert row["grad_norm_median"] == pytest.approx(
                np.median([np.median(n) for n in norms]))
    best = summary["best"]
    assert sorted(r["cell"] for r in best) == ["gru", "vanilla"]
    for row in best:
        assert row["test_accuracy_mean"] == max(r["test_accuracy_mean"] for r in rows
                                                if r["cell"] == row["cell"])
    assert best[0]["test_accuracy_mean"] >= best[1]["test_accuracy_mean"]
    (figure,) = (tmp_path / "fig").glob("*_curves.png")
    image = matplotlib.image.imread(figure)
    assert image.shape[1] > 1.5 * image.shape[0]  # two panels side by side


def test_best_rows_never_choose_a_non_finite_mean():
    rows = [{"cell": "irnn", "lr": 3e-3, "test_accuracy_mean": float("nan")},
            {"cell": "irnn", "lr": 1e-3, "test_accuracy_mean": 0.2},
            {"cell": "gru", "lr": 1e-3, "test_accuracy_mean": 0.5}]
    assert [(r["cell"], r["lr"]) for r in sc.best_rows(rows)] == [("gru", 1e-3), ("irnn", 1e-3)]


def test_chunked_evaluation_equals_the_whole_test_set_at_once(monkeypatch, key, tmp_path):
    """40 test images in chunks of 16 (the last one short): the same accuracy and loss as one
    batch through the model."""
    pytest.importorskip("sklearn")
    monkeypatch.setattr(sc, "EVAL_CHUNK", 16)
    config = template.validate(sc.Config(order="row", hidden=6, eval_size=40,
                                         out_dir=str(tmp_path)))
    task = sc.task(config)
    params = task.init(key)
    _, _, test_xs, test_ys = sc.sequences(config)
    logits = sequence_model.apply(get_cell("lstm"), params, jnp.asarray(test_xs),
                                  many_to_one=True)
    expected = sc.metrics(logits, jnp.asarray(test_ys))
    got = task.evaluate(params, key)
    assert float(got["test_accuracy"]) == pytest.approx(float(expected["accuracy"]), abs=1e-6)
    assert float(got["test_loss"]) == pytest.approx(float(expected["loss"]), rel=1e-5)


def test_mnist_sequences_come_from_the_file_in_the_chosen_order(tmp_path, key):
    rng = np.random.default_rng(0)
    arrays = dict(x_train=rng.integers(0, 256, (5, 28, 28), dtype=np.uint8),
                  y_train=np.arange(5), x_test=rng.integers(0, 256, (3, 28, 28), dtype=np.uint8),
                  y_test=np.arange(3))
    np.savez(tmp_path / "mnist.npz", **arrays)
    config = template.validate(sc.Config(dataset="mnist", data_path=str(tmp_path / "mnist.npz"),
                                         order="permuted", eval_size=2, out_dir=str(tmp_path)))
    train_xs, train_ys, test_xs, test_ys = sc.sequences(config)
    order = digits.permutation(key, 784)  # --permutation_seed=0
    assert train_xs.shape == (5, 784, 1) and test_xs.shape == (2, 784, 1)
    np.testing.assert_allclose(train_xs[3, :, 0], arrays["x_train"][3].reshape(-1)[order] / 255,
                               rtol=1e-6)
    np.testing.assert_array_equal(test_ys, [0, 1])


def test_without_scikit_learn_the_flag_error_says_how_to_install_it(tmp_path, monkeypatch):
    real_import = builtins.__import__

    def no_sklearn(name, *args, **kwargs):
        if name.startswith("sklearn"):
            raise ImportError("No module named 'sklearn'")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_sklearn)
    expected = r"--dataset: expected scikit-learn installed for the 8x8 digits \(pip install"
    with pytest.raises(template.FlagError, match=expected):
        quick(tmp_path)
    with pytest.raises(ImportError, match="pip install scikit-learn"):
        digits.load_digits(np.zeros(2, np.uint32))


@pytest.mark.parametrize("argv, match", [
    (["--dataset=mnist"], "--data_path: expected an existing mnist.npz file with --dataset=mnist"),
    (["--data_path=x.npz"], "--data_path: expected empty with --dataset=digits"),
    (["--order=spiral"], r"--order: expected one of pixel, row, permuted, received 'spiral'"),
    (["--test_fraction=1"], r"--test_fraction: expected a value in \(0, 1\), received 1.0"),
    (["--eval_size=-1"], r"--eval_size: expected an integer >= 0 \(0: all\), received -1"),
])
def test_invalid_flags_fail_before_any_compile(argv, match, monkeypatch, tmp_path):
    monkeypatch.setattr(training, "make_train_step", lambda *a, **k: pytest.fail("compiled"))
    with pytest.raises(template.FlagError, match=match):
        quick(tmp_path, *argv)
    assert not (tmp_path / "sequence_classification").exists()
