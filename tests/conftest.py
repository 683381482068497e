"""Shared test set-up: cheap XLA compilation, strict rank promotion, a compilation cache shared
by the session's workers, a PRNG key fixture, and a float64 context."""

import os
from pathlib import Path

# XLA's cheapest backend optimisation level, for this process and the children tests start (read
# when JAX starts its backend, so set before any computation). Why: the tests run tiny shapes,
# so their time is nearly all compiling, and LLVM's optimisation passes are most of that; the
# programs compute the same values (fusion and instruction choice differ, so float rounding
# may too, within every test's tolerance). Experiments and benchmarks run at the default.
os.environ["XLA_FLAGS"] = " ".join(
    [os.environ.get("XLA_FLAGS", ""), "--xla_backend_optimization_level=0"]).strip()

import jax  # noqa: E402  (after XLA_FLAGS)
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture(scope="session", autouse=True)
def compilation_cache(tmp_path_factory):
    """JAX's persistent compilation cache in this session's temporary directory, shared by the
    xdist workers and the child processes tests start (through the environment).

    Why: most of the suite's time is XLA compiling, and many tests compile the same programs
    (the same cell, shapes and loss from different test files and workers); with the cache
    each is compiled once. It holds compiled programs keyed by their HLO and JAX version, so
    results are unchanged; a new session starts with an empty cache.
    """
    base = tmp_path_factory.getbasetemp()
    shared = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory = shared / "xla_cache"
    directory.mkdir(exist_ok=True)
    os.environ["JAX_COMPILATION_CACHE_DIR"] = str(directory)
    os.environ["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0.05"
    jax.config.update("jax_compilation_cache_dir", str(directory))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.05)
    yield


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Runs the test body with 64-bit floats (for finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield


# The quick tier (`pytest -m "not slow"`) leaves out, by giving them the `slow` marker:
# - the numerical tests listed in slow_tests.txt (each takes seconds, mostly compiling), beside
#   the end-to-end ones marked in their files;
# - the cross product of a parametrized test beyond a covering set of its cases: cases run in
#   collection order, and a case stays quick when it runs a parameter value (a cell, an option)
#   that no quick case of that test has run yet. Every value of every parameter is still run by
#   every test function in the quick tier; the full suite runs every combination.
SLOW_TESTS = frozenset(
    line.strip() for line in (Path(__file__).parent / "slow_tests.txt").read_text().splitlines()
    if line.strip() and not line.startswith("#"))


def covering_cases(items):
    """The items of one test function that run each (parameter, value) pair at least once.

    Greedy set cover: the case running the most values not yet covered (the first such in
    collection order), until every value is, so the kept cases spread over the combinations
    (gru with one option, lstm with another) rather than repeating the first value.
    """
    values = [{(name, repr(value)) for name, value in item.callspec.params.items()}
              for item in items]
    covered, kept = set(), []
    while True:
        gains = [len(pairs - covered) for pairs in values]
        best = max(range(len(items)), key=gains.__getitem__)
        if gains[best] == 0:
            return kept
        covered |= values[best]
        kept.append(items[best])


def pytest_collection_modifyitems(config, items):
    cases = {}
    for item in items:
        if item.nodeid in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        elif hasattr(item, "callspec") and item.get_closest_marker("slow") is None:
            cases.setdefault(item.nodeid.split("[")[0], []).append(item)
    for group in cases.values():
        kept = set(map(id, covering_cases(group)))
        for item in group:
            if id(item) not in kept:
                item.add_marker(pytest.mark.slow)
