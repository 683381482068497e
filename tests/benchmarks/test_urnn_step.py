"""benchmarks/urnn_step.py: the unitary RNN's benchmark cases (factored and dense W, the LSTM at
the same T) build, agree and train; its table has one row per case (no timing asserts)."""

import numpy as np
import pytest

from benchmarks import urnn_step

pytestmark = pytest.mark.slow


def test_benchmark_cases_start_from_one_loss_and_train(key):
    """`benchmarks.urnn_step`: both forms of W give the same first loss, steps lower it, and
    the table has one row per case with the LSTM at the same T as reference."""
    tiny = [urnn_step.Case(name, cell, options, 8, 5, batch=2) for name, cell, options in
            [("lstm", "lstm", {}), ("factored", "urnn", {"dense_W": False}),
             ("dense", "urnn", {"dense_W": True})]]
    steps = {urnn_step.label(case): (case, urnn_step.make_step(case)) for case in tiny}
    losses = {name: [step() for _ in range(3)] for name, (_, step) in steps.items()}
    factored, dense = losses["factored H8 T5 B2"], losses["dense H8 T5 B2"]
    np.testing.assert_allclose(dense, factored, rtol=1e-4)
    assert factored[-1] < factored[0]
    rows = urnn_step.measure(steps, rounds=1, steps=1)
    assert [row["label"] for row in rows] == list(steps)
    assert rows[0]["vs_lstm"] is None and all(row["vs_lstm"] for row in rows[1:])
    assert "| lstm H8 T5 B2 |" in urnn_step.format_rows(rows)
