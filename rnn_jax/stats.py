"""Summaries over the members of a population (seeds of one configuration).

    describe([0.91, 0.88, nan, 0.95])       # n, mean, std, median, min, max, 95 % t-interval
    wilson(8, 10)                           # 95 % Wilson interval of a success rate
    success_summary(successes, steps)       # rate, Wilson interval, steps-to-success
    curve_quantiles(steps_by_member, values_by_member)   # median and IQR learning curve

Pure functions on host numpy; every result is plain Python (floats, ints, lists, dicts), so it
goes straight into `json.dumps`. A statistic that is undefined (the spread of one value) is
`nan`, written `NaN` by `json.dumps` and `null` by `results.to_jsonable`.

A diverged member is a result, not missing data. Non-finite values (NaN, inf, or None as read
back from JSON) cannot enter a mean, so every summary says how many members it covers: `n`
(finite) + `n_nonfinite` = `n_members`. The tables print the count beside any statistic it
changes (experiments/harness/reporting.py), success counts treat a diverged member as a failure, and
the figures mark where each member diverged (`curve_quantiles`'s `diverged_at`).
"""

import math
from typing import Sequence

import numpy as np
import scipy.stats

NAN = float("nan")


def _finite(values: Sequence[float], what: str) -> tuple[np.ndarray, int]:
    """`values` -> (its finite entries as float64 [n], how many were not finite)."""
    array = np.asarray(values, dtype=float)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"expected {what} to be a non-empty 1-D sequence of numbers, received "
                         f"shape {array.shape}")
    keep = np.isfinite(array)
    return array[keep], int(array.size - keep.sum())


def _describe_finite(x: np.ndarray, n_nonfinite: int) -> dict:
    n = int(x.size)
    if n == 0:
        stats = dict.fromkeys(["mean", "std", "median", "min", "max"], NAN)
    else:
        stats = {"mean": float(np.mean(x)), "std": float(np.std(x, ddof=1)) if n > 1 else NAN,
                 "median": float(np.median(x)), "min": float(np.min(x)), "max": float(np.max(x))}
    low = high = NAN
    if n > 1:  # Student-t interval for the mean: mean +- t_{0.975, n-1} s / sqrt(n)
        half = float(scipy.stats.t.ppf(0.975, n - 1)) * stats["std"] / math.sqrt(n)
        low, high = stats["mean"] - half, stats["mean"] + half
    return {"n": n, "n_nonfinite": n_nonfinite, "n_members": n + n_nonfinite, **stats,
            "ci95_low": low, "ci95_high": high}


def describe(values: Sequence[float]) -> dict:
    """Mean, spread and a 95 % interval for the mean of one configuration's seeds.

    Args:
      values: [members] numbers; NaN, inf and None mark members that diverged.

    Returns:
      {"n", "n_nonfinite", "n_members", "mean", "std", "median", "min", "max", "ci95_low",
      "ci95_high"} over the n finite values (n + n_nonfinite = n_members = len(values)). `std`
      is the sample standard deviation (ddof=1); the interval is Student's t,
      mean +- t_{0.975,n-1} std / sqrt(n).
      Both are nan for n < 2; every statistic is nan for n = 0.

    Raises:
      ValueError: `values` is empty or not 1-D.
    """
    return _describe_finite(*_finite(values, "values"))


def _count(value, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"expected {what} to be an integer, received {value!r}")
    return int(value)


def wilson(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a success rate (Wilson 1927, JASA 22:209).

    With p = successes / n and z the (1 + confidence) / 2 normal quantile:
        centre = (p + z^2 / 2n) / (1 + z^2 / n)
        half   = z / (1 + z^2 / n) * sqrt(p (1 - p) / n + z^2 / 4n^2)
    Unlike p +- z sqrt(p (1 - p) / n) it stays inside [0, 1] and keeps its coverage near 0 and
    n (Brown, Cai & DasGupta 2001, Statist. Sci. 16:101). n = 0 carries no information and
    gives (0.0, 1.0).

    Raises:
      ValueError: n < 0, successes outside [0, n], non-integer counts, confidence not in (0, 1).
    """
    successes, n = _count(successes, "successes"), _count(n, "n")
    if n < 0:
        raise ValueError(f"expected n >= 0 trials, received n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"expected 0 <= successes <= n={n}, received successes={successes}")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"expected confidence in (0, 1), received {confidence!r}")
    if n == 0:
        return 0.0, 1.0
    z = float(scipy.stats.norm.ppf(0.5 + confidence / 2))
    p, shrink = successes / n, 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / shrink
    half = z / shrink * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    low = 0.0 if successes == 0 else max(0.0, centre - half)  # exact ends: rounding at 0/n
    high = 1.0 if successes == n else min(1.0, centre + half)  # and n/n would leave 1e-16
    return low, high


def success_summary(successes: Sequence[bool], steps_to_success: Sequence[int | None],
                    confidence: float = 0.95) -> dict:
    """Success rate with its Wilson interval, and how long the successful members took.

    Args:
      successes: [members] whether each member reached its target.
      steps_to_success: [members] the step each successful member reached it; None for each
        member that did not (a mismatch is an error: it means the lists are misaligned).

    Returns:
      {"n", "successes", "rate", "wilson_low", "wilson_high", "steps": describe() of the
      successful members' steps (n = 0 and nan statistics when none succeeded),
      "steps_to_success": the list as given}.
    """
    successes, steps = list(successes), list(steps_to_success)
    if not successes or len(successes) != len(steps):
        raise ValueError("expected one steps_to_success entry per member (at least one), "
                         f"received {len(successes)} successes and {len(steps)} steps")
    for i, (ok, step) in enumerate(zip(successes, steps)):
        if not isinstance(ok, (bool, np.bool_)):
            raise ValueError(f"expected successes[{i}] to be a bool, received {ok!r}")
        if ok != (step is not None):
            raise ValueError(f"expected an integer step for each successful member and None for "
                             f"the others, received success={ok}, step={step!r} at member {i}")
    steps = [None if s is None else _count(s, f"steps_to_success[{i}]")
             for i, s in enumerate(steps)]
    k, n = sum(map(bool, successes)), len(successes)
    low, high = wilson(k, n, confidence)
    taken = np.array([s for s in steps if s is not None], dtype=float)
    return {"n": n, "successes": k, "rate": k / n, "wilson_low": low, "wilson_high": high,
            "steps": _describe_finite(taken, 0), "steps_to_success": steps}


def _member_records(steps_by_member, values_by_member) -> list[dict[int, float]]:
    if len(steps_by_member) == 0 or len(steps_by_member) != len(values_by_member):
        raise ValueError("expected the same non-zero number of members in steps_by_member and "
                         f"values_by_member, received {len(steps_by_member)} and "
                         f"{len(values_by_member)}")
    members = []
    for i, (steps, values) in enumerate(zip(steps_by_member, values_by_member)):
        steps = [_count(s, f"steps_by_member[{i}] entries") for s in steps]
        values = np.asarray(values, dtype=float)
        if not steps or values.shape != (len(steps),):
            raise ValueError(f"expected member {i} to have one value per step (at least one), "
                             f"received {len(steps)} steps and values of shape {values.shape}")
        if any(b <= a for a, b in zip(steps, steps[1:])):
            raise ValueError(f"expected member {i}'s steps to increase, received {steps}")
        members.append(dict(zip(steps, values.tolist())))
    return members


def curve_quantiles(steps_by_member: Sequence[Sequence[int]],
                    values_by_member: Sequence[Sequence[float]],
                    carry_forward: bool = True) -> dict:
    """Median and interquartile learning curve of members whose records may end early.

    A member that reached its target or diverged is frozen and logs nothing after it stopped.
    With `carry_forward`, such a member counts at every later step at its last value (right for
    metrics like accuracy: a member that solved the task still has; for a loss, a diverged
    member would look better than it is, so end its records with a NaN); without it, the
    quantiles at a step use only the members with a record there (survivors only).
    A member never counts at a step before its last record that it did not log (it is missing
    there, not frozen). Non-finite values are left out of the quantiles and counted in
    `n_nonfinite`. Quantiles are numpy's default (linear interpolation).

    Args:
      steps_by_member: [members][records] increasing steps of each member's records.
      values_by_member: [members][records] the metric at those steps.

    Returns:
      {"steps": [T] every step any member logged, "median", "q25", "q75": [T] (nan where no
      finite value counts), "n": [T] finite values counted, "n_nonfinite": [T],
      "n_members": how many members there are, "diverged_at": [members] the first step at which
      each member's value was not finite (None: always finite)}.
    """
    members = _member_records(steps_by_member, values_by_member)
    grid = sorted(set().union(*members))
    columns = {"median": [], "q25": [], "q75": [], "n": [], "n_nonfinite": []}
    for step in grid:
        at_step = [m[step] if step in m else m[max(m)] for m in members
                   if step in m or (carry_forward and step > max(m))]
        x, n_nonfinite = _finite(at_step, "values") if at_step else (np.empty(0), 0)
        q25, median, q75 = np.quantile(x, [0.25, 0.5, 0.75]).tolist() if x.size else [NAN] * 3
        for name, value in zip(columns, [median, q25, q75, int(x.size), n_nonfinite]):
            columns[name].append(value)
    diverged_at = [next((s for s in sorted(m) if not math.isfinite(m[s])), None)
                   for m in members]
    return {"steps": grid, **columns, "n_members": len(members), "diverged_at": diverged_at}


def table_rows(groups: dict[str, Sequence[float]], key: str = "group") -> list[dict]:
    """One `describe()` row per group, `{key: name, **describe(values)}`, in the groups' order
    (for `results.markdown_table`)."""
    if not groups:
        raise ValueError("expected at least one group of values, received none")
    return [{key: name, **describe(values)} for name, values in groups.items()]
