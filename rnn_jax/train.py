"""Moved to `rnn_jax.training`."""
# TEMPORARY shim: removed once experiments/ and tests/ import rnn_jax.training
from rnn_jax.training import *  # noqa: F403
