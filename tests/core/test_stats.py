"""Population statistics against references written independently of rnn_jax.stats.

Wilson: the roots of its defining quadratic and the exact binomial coverage; t-interval:
scipy.stats.t.interval and the stdlib's `statistics`; curves: numpy quantiles over columns
written out by hand.
"""

import json
import math
import statistics

import numpy as np
import pytest
import scipy.stats

from rnn_jax import stats

Z95 = 1.959963984540054  # the 0.975 quantile of the standard normal


def wilson_by_quadratic(k, n, z=Z95):
    """Wilson's interval is {p : (k/n - p)^2 <= z^2 p (1 - p) / n}; its ends solve
    (1 + z^2/n) p^2 - (2 k/n + z^2/n) p + (k/n)^2 = 0."""
    phat = k / n
    roots = np.roots([1 + z * z / n, -(2 * phat + z * z / n), phat * phat])
    return tuple(sorted(roots.real))


@pytest.mark.parametrize("k, n", [(8, 10), (1, 7), (13, 40), (50, 51)])
def test_wilson_equals_the_roots_of_its_quadratic(k, n):
    np.testing.assert_allclose(stats.wilson(k, n), wilson_by_quadratic(k, n), rtol=1e-10)


def test_wilson_ends_are_where_the_score_statistic_equals_z():
    low, high = stats.wilson(8, 10)
    for p in (low, high):
        assert abs(0.8 - p) / math.sqrt(p * (1 - p) / 10) == pytest.approx(Z95, rel=1e-10)
    assert low < 0.8 < high


def test_wilson_other_confidence_uses_its_quantile():
    z90 = 1.6448536269514722  # the 0.95 quantile of the standard normal
    np.testing.assert_allclose(stats.wilson(3, 12, confidence=0.9),
                               wilson_by_quadratic(3, 12, z90), rtol=1e-10)
    assert stats.wilson(3, 12, 0.9)[1] < stats.wilson(3, 12)[1]


def test_wilson_edges_are_exact():
    assert stats.wilson(0, 0) == (0.0, 1.0)
    low, high = stats.wilson(0, 10)
    assert low == 0.0 and high == pytest.approx(wilson_by_quadratic(0, 10)[1])
    low, high = stats.wilson(10, 10)
    assert high == 1.0 and low == pytest.approx(wilson_by_quadratic(10, 10)[0])


def covers(k, n, p):
    low, high = stats.wilson(int(k), n)
    return low <= p <= high


def test_wilson_coverage_by_simulation_and_exactly():
    p, n = 0.3, 20
    draws = np.random.default_rng(0).binomial(n, p, size=2000)
    simulated = np.mean([covers(k, n, p) for k in draws])
    exact = sum(scipy.stats.binom.pmf(k, n, p) for k in range(n + 1) if covers(k, n, p))
    # Wilson's coverage oscillates around the nominal 95 % with n and p (Brown, Cai & DasGupta
    # 2001): near, not at, 0.95.
    assert 0.93 <= exact <= 0.98
    assert 0.93 <= simulated <= 0.98
    assert abs(simulated - exact) < 4 * math.sqrt(exact * (1 - exact) / draws.size)


@pytest.mark.parametrize("args, match", [
    ((1, -1), "expected n >= 0.*received n=-1"),
    ((11, 10), r"expected 0 <= successes <= n=10, received successes=11"),
    ((-1, 10), "received successes=-1"),
    ((2.5, 10), "expected successes to be an integer, received 2.5"),
    ((True, 10), "expected successes to be an integer"),
    ((1, 10, 1.5), r"expected confidence in \(0, 1\), received 1.5"),
])
def test_wilson_rejects_bad_counts(args, match):
    with pytest.raises(ValueError, match=match):
        stats.wilson(*args)


def test_describe_matches_scipy_t_interval_and_statistics():
    values = [0.91, 0.85, 0.97, 0.88, 0.93, 0.79]
    out = stats.describe(values)
    n, mean, sd = len(values), statistics.mean(values), statistics.stdev(values)
    low, high = scipy.stats.t.interval(0.95, n - 1, loc=mean, scale=sd / math.sqrt(n))
    assert out["n"] == n and out["n_nonfinite"] == 0
    assert out["mean"] == pytest.approx(mean) and out["std"] == pytest.approx(sd)
    assert out["median"] == pytest.approx(statistics.median(values))
    assert (out["min"], out["max"]) == (min(values), max(values))
    assert (out["ci95_low"], out["ci95_high"]) == (pytest.approx(low), pytest.approx(high))


def test_describe_counts_non_finite_members_and_uses_the_rest():
    finite = [3.0, 1.0, 2.0, 5.0]
    out = stats.describe([3.0, float("nan"), 1.0, float("inf"), None, 2.0, -float("inf"), 5.0])
    assert out["n"] == 4 and out["n_nonfinite"] == 4
    reference = stats.describe(finite)
    assert out["n_members"] == 8
    assert {k: v for k, v in out.items() if k not in ("n_nonfinite", "n_members")} == {
        k: v for k, v in reference.items() if k not in ("n_nonfinite", "n_members")}
    assert out["mean"] == pytest.approx(statistics.mean(finite))


def test_describe_one_value_has_no_spread_and_none_has_no_statistics():
    one = stats.describe([0.7])
    assert (one["n"], one["mean"], one["median"], one["min"], one["max"]) == (1, 0.7, 0.7, 0.7, 0.7)
    assert all(math.isnan(one[k]) for k in ("std", "ci95_low", "ci95_high"))
    none = stats.describe([float("nan"), None])
    assert none["n"] == 0 and none["n_nonfinite"] == 2
    assert all(math.isnan(none[k]) for k in ("mean", "std", "median", "min", "max", "ci95_low"))


def test_describe_is_plain_json():
    out = stats.describe(np.array([1, 2, 4], dtype=np.int32))
    assert all(type(v) in (int, float) for v in out.values())
    assert json.loads(json.dumps(out)) == out


@pytest.mark.parametrize("values, match", [
    ([], r"expected values to be a non-empty 1-D sequence of numbers, received shape \(0,\)"),
    ([[1.0, 2.0]], r"received shape \(1, 2\)"),
])
def test_describe_rejects_empty_or_nested_input(values, match):
    with pytest.raises(ValueError, match=match):
        stats.describe(values)


def test_success_summary_rate_interval_and_steps():
    out = stats.success_summary([True, False, True, True, False],
                                [300, None, 100, np.int64(200), None])
    assert (out["n"], out["successes"], out["rate"]) == (5, 3, 0.6)
    np.testing.assert_allclose((out["wilson_low"], out["wilson_high"]),
                               wilson_by_quadratic(3, 5), rtol=1e-10)
    assert out["steps"]["n"] == 3 and out["steps"]["median"] == 200.0
    assert out["steps"]["mean"] == pytest.approx(statistics.mean([300, 100, 200]))
    assert out["steps_to_success"] == [300, None, 100, 200, None]
    assert json.loads(json.dumps(out)) == out


def test_success_summary_without_successes():
    out = stats.success_summary([False, False], [None, None])
    assert out["rate"] == 0.0 and out["wilson_low"] == 0.0
    assert out["steps"]["n"] == 0 and math.isnan(out["steps"]["median"])


@pytest.mark.parametrize("successes, steps, match", [
    ([], [], "expected one steps_to_success entry per member.*received 0 successes and 0"),
    ([True, False], [10], "received 2 successes and 1 steps"),
    ([True], [None], "expected an integer step for each successful member.*member 0"),
    ([True, False], [5, 7], "received success=False, step=7 at member 1"),
    ([1, 0], [5, None], r"expected successes\[0\] to be a bool, received 1"),
    ([True], [5.5], r"expected steps_to_success\[0\] to be an integer, received 5.5"),
])
def test_success_summary_rejects_misaligned_input(successes, steps, match):
    with pytest.raises(ValueError, match=match):
        stats.success_summary(successes, steps)


# Three members logging every 10 steps: B stopped at its target after step 10.
STEPS = [[0, 10, 20, 30], [0, 10], [0, 10, 20, 30]]
VALUES = [[0.5, 0.6, 0.8, 0.9], [0.4, 1.0], [0.3, 0.5, 0.6, 0.7]]


def quantile_columns(columns):
    return {name: [float(np.quantile(c, q)) for c in columns]
            for name, q in (("q25", 0.25), ("median", 0.5), ("q75", 0.75))}


@pytest.mark.parametrize("carry_forward, columns", [
    (True, [[0.5, 0.4, 0.3], [0.6, 1.0, 0.5], [0.8, 1.0, 0.6], [0.9, 1.0, 0.7]]),
    (False, [[0.5, 0.4, 0.3], [0.6, 1.0, 0.5], [0.8, 0.6], [0.9, 0.7]]),
])
def test_curve_quantiles_against_numpy_columns(carry_forward, columns):
    out = stats.curve_quantiles(STEPS, VALUES, carry_forward=carry_forward)
    assert out["steps"] == [0, 10, 20, 30]
    assert out["n"] == [len(c) for c in columns] and out["n_nonfinite"] == [0] * 4
    for name, expected in quantile_columns(columns).items():
        np.testing.assert_allclose(out[name], expected, rtol=1e-12, err_msg=name)
    assert out["median"][2] == statistics.median(columns[2])


def test_curve_quantiles_a_missing_record_is_not_carried():
    out = stats.curve_quantiles([[0, 20], [0, 10, 20]], [[1.0, 3.0], [2.0, 4.0, 6.0]])
    assert out["steps"] == [0, 10, 20] and out["n"] == [2, 1, 2]
    assert out["median"] == [1.5, 4.0, 4.5]


def test_curve_quantiles_count_a_diverged_member():
    nan = float("nan")
    out = stats.curve_quantiles([[0, 10], [0, 10, 20]], [[1.0, nan], [2.0, 3.0, 5.0]])
    assert out["n"] == [2, 1, 1] and out["n_nonfinite"] == [0, 1, 1]
    assert out["median"] == [1.5, 3.0, 5.0]
    only_nan = stats.curve_quantiles([[0]], [[nan]])
    assert only_nan["n"] == [0] and math.isnan(only_nan["median"][0])


@pytest.mark.parametrize("steps, values, match", [
    ([], [], "expected the same non-zero number of members.*received 0 and 0"),
    ([[0]], [[1.0], [2.0]], "received 1 and 2"),
    ([[0, 10]], [[1.0]], r"member 0 to have one value per step.*2 steps and .* shape \(1,\)"),
    ([[0], []], [[1.0], []], "member 1 to have one value per step"),
    ([[0, 10, 10]], [[1.0, 2.0, 3.0]], r"member 0's steps to increase, received \[0, 10, 10\]"),
    ([[0, 0.5]], [[1.0, 2.0]], "to be an integer, received 0.5"),
])
def test_curve_quantiles_rejects_bad_records(steps, values, match):
    with pytest.raises(ValueError, match=match):
        stats.curve_quantiles(steps, values)


def test_table_rows_describe_each_group_in_order():
    rows = stats.table_rows({"gru": [1.0, 2.0, 3.0], "lstm": [4.0, None]}, key="cell")
    assert [row["cell"] for row in rows] == ["gru", "lstm"]
    assert rows[0]["mean"] == 2.0 and rows[1]["n"] == 1 and rows[1]["n_nonfinite"] == 1
    with pytest.raises(ValueError, match="expected at least one group of values, received none"):
        stats.table_rows({})
