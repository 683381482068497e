"""Random weight guessing on parity (experiments/parity/guessing.py): the reported draw really
solves, no earlier draw did, the interval is Clopper-Pearson's, bad flags are named."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats

from experiments.harness import template
from experiments.harness.population_state import member_keys
from experiments.parity import guessing as pg


def test_draws_are_uniform_in_range_and_self_connections_can_be_removed():
    config = pg.Config(hidden=3, weight_range=5.0, self_connections=False)
    params = pg.draw(jax.random.key(0), config)
    assert all(float(jnp.max(jnp.abs(x))) <= 5.0 for x in params)
    assert np.all(np.diag(np.asarray(params.W)) == 0) and np.any(np.asarray(params.W) != 0)


def test_accuracy_reads_the_output_unit_as_a_plain_loop_does():
    xs, odd = pg.sequences(jax.random.key(1), 64, 7)
    assert np.array_equal(np.asarray(odd), np.sum(np.asarray(xs[..., 0]) > 0, axis=1) % 2)
    params = pg.draw(jax.random.key(2), pg.Config(hidden=3, weight_range=2.0))
    U, W, b = (np.asarray(x, dtype=np.float64) for x in params)
    h = np.zeros((64, 3))
    for t in range(7):  # s(t) = tanh(b + W s(t-1) + U x(t)), stored [in, out]
        h = np.tanh(b + h @ W + np.asarray(xs[:, t], dtype=np.float64) @ U)
    expected = np.mean((h[:, 0] > 0) == (np.asarray(odd) > 0.5))
    assert float(pg.accuracy(params, xs, odd)) == pytest.approx(expected)


@pytest.mark.slow  # an end-to-end experiment run
def test_search_reports_the_first_draw_that_classifies_the_training_set():
    config = pg.Config(seq_len=2, train_sequences=8, draws_per_batch=256, max_draws=4096,
                       test_seq_len=9)
    out = pg.search(config, seed=0)
    assert out["solved"] and 1 <= out["draws"] <= config.max_draws
    keys = member_keys(0)
    xs, odd = pg.sequences(keys["data"], config.train_sequences, config.seq_len)
    start = (out["draws"] - 1) // config.draws_per_batch * config.draws_per_batch
    batch = jax.random.split(jax.random.fold_in(keys["init"], start), config.draws_per_batch)
    accuracies = [float(pg.accuracy(pg.draw(k, config), xs, odd)) for k in
                  batch[: out["draws"] - start]]
    assert accuracies[-1] == 1.0 and max(accuracies[:-1], default=0.0) < 1.0


def test_expected_draws_is_one_over_p_with_the_clopper_pearson_interval():
    repeats = [{"solved": True, "draws": 300}, {"solved": True, "draws": 500},
               {"solved": False, "draws": 1200}]
    out = pg.expected_draws(repeats)
    assert out["draws_per_solution"] == 1000.0
    ci = scipy.stats.binomtest(2, 2000).proportion_ci(0.95, method="exact")
    assert out["draws_per_solution_ci95"] == f"[{1 / ci.high:.4g}, {1 / ci.low:.4g}]"
    none = pg.expected_draws([{"solved": False, "draws": 1000}])
    assert none["draws_per_solution"] == float("inf")
    assert none["draws_per_solution_ci95"].endswith("inf]")


def test_test_length_shares_the_training_length_parity():
    assert pg.test_length(pg.Config(seq_len=25, test_seq_len=500)) == 501
    assert pg.test_length(pg.Config(seq_len=50, test_seq_len=500)) == 500


@pytest.mark.parametrize("changes, flag", [
    ({"cell": "lstm"}, "cell"), ({"max_draws": 10}, "max_draws"),
    ({"weight_range": 0.0}, "weight_range"), ({"train_sequences": 0}, "train_sequences")])
def test_bad_flags_are_named(changes, flag):
    with pytest.raises(template.FlagError, match=f"--{flag}"):
        template.validate(pg.Config(**changes))
