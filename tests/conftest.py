"""Shared test set-up: strict rank promotion, a PRNG key fixture, and a float64 context."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def key():
    return jax.random.key(0)


@pytest.fixture
def x64():
    """Runs the test body with 64-bit floats (for finite-difference gradient checks)."""
    with jax.enable_x64(True):
        yield
