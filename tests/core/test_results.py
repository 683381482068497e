"""Run directories: config, metrics.jsonl, summary, plots."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest

from rnn_jax import results, training


def test_create_writes_config_and_refuses_a_different_one(tmp_path):
    config = {"lr": 0.1, "cell": "lstm", "sizes": (1, 2)}
    run = training.Run.create(tmp_path, "parity", "a", config)
    assert run.path == tmp_path / "parity" / "a"
    assert json.loads((run.path / "config.json").read_text()) == {
        "lr": 0.1, "cell": "lstm", "sizes": [1, 2]}
    assert training.Run.create(tmp_path, "parity", "a", config).path == run.path  # reopen
    with pytest.raises(ValueError, match=r"different config \(lr: 0.1 -> 0.2\)"):
        training.Run.create(tmp_path, "parity", "a", {**config, "lr": 0.2})
    run.log({"step": 1, "loss": 1.0})
    replaced = training.Run.create(tmp_path, "parity", "a", {"lr": 0.2}, overwrite=True)
    assert replaced.config() == {"lr": 0.2} and replaced.metrics() == []
    with pytest.raises(ValueError, match="expected the run name to be one path component"):
        training.Run.create(tmp_path, "parity", "", config)


def test_metrics_log_drop_after_and_json_conversion(tmp_path):
    run = training.Run.create(tmp_path, "x", "r", {})
    for step in (10, 20, 30):
        run.log({"step": step, "loss": jnp.float32(1.0 / step), "acc": np.float64(step / 30)})
    run.log({"step": 40, "loss": float("nan")})
    records = run.metrics()
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert records[0]["loss"] == pytest.approx(0.1) and records[-1]["loss"] is None
    assert [r["step"] for r in run.drop_metrics_after(20)] == [10, 20]
    assert [r["step"] for r in run.metrics()] == [10, 20]
    assert training.to_jsonable({"a": jnp.arange(3), "b": (math.inf,)}) == {"a": [0, 1, 2],
                                                                           "b": [None]}


def test_summary_has_versions_and_extra_keys(tmp_path):
    run = training.Run.create(tmp_path, "x", "r", {})
    run.write_summary({"final": {"loss": 0.5}, "num_params": training.num_params(
        {"W": jnp.zeros((3, 4)), "b": jnp.zeros(4)})})
    run.update_summary({"accuracy": 1.0})
    summary = run.summary()
    assert summary["num_params"] == 16 and summary["accuracy"] == 1.0
    assert {"jax", "optax", "python"} <= set(summary["versions"])


def test_plot_curves_draws_a_png_from_the_files(tmp_path):
    run = training.Run.create(tmp_path, "x", "r", {})
    assert training.plot_curves(run.path) is None  # nothing logged yet
    for step in range(1, 6):
        run.log({"step": step, "loss": 1.0 / step, "accuracy": step / 5, "wall_s": step})
    path = training.plot_curves(run.path)
    assert path == run.path / "curves.png"
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_markdown_table_keeps_small_values_and_marks_missing_ones():
    table = results.markdown_table([{"loss": 4.26e-05, "median": float("nan"), "acc": 0.99912,
                                     "zero": 0.0, "steps": None, "cell": "urnn"}])
    assert table.splitlines()[-1] == "| 4.26e-05 | - | 0.999 | 0.000 | - | urnn |"
