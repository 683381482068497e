"""Moved to `rnn_jax.training.optimizers`."""
# TEMPORARY shim: removed once experiments/ and tests/ import rnn_jax.training
from rnn_jax.training.optimizers import *  # noqa: F403
