"""Moved to `rnn_jax.training.population`."""
# TEMPORARY shim: removed once experiments/ and tests/ import rnn_jax.training
from rnn_jax.training.population import *  # noqa: F403
