"""The quick tier's choice of parametrized cases (`conftest.covering_cases`)."""

import itertools
from types import SimpleNamespace

from tests.conftest import covering_cases

CELLS = ["vanilla", "gru", "lstm", "lru", "urnn"]
OPTIONS = [{"reverse": True}, {"lengths": None}, {"remat": 2}]


def case(**params):
    return SimpleNamespace(callspec=SimpleNamespace(params=params))


def test_every_value_of_every_parameter_is_kept_once_in_few_cases():
    items = [case(name=n, options=o) for n, o in itertools.product(CELLS, OPTIONS)]
    kept = covering_cases(items)
    assert len(kept) == len(CELLS)  # the larger axis, not 5 x 3
    assert {c.callspec.params["name"] for c in kept} == set(CELLS)
    assert [c.callspec.params["options"] for c in kept[:3]] == OPTIONS  # spread, not repeated


def test_a_single_parameter_keeps_every_case_in_collection_order():
    items = [case(name=n) for n in CELLS]
    assert covering_cases(items) == items


def test_repeated_values_are_run_once():
    items = [case(name="gru", seed=0), case(name="gru", seed=0), case(name="lstm", seed=0)]
    assert covering_cases(items) == [items[0], items[2]]
