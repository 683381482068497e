"""Moved to `rnn_jax.training.checkpoint`."""
# TEMPORARY shim: removed once experiments/ and tests/ import rnn_jax.training
from rnn_jax.training.checkpoint import *  # noqa: F403
