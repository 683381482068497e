"""Moved to `rnn_jax.training.run_dir`."""
# TEMPORARY shim: removed once experiments/ and tests/ import rnn_jax.training
from rnn_jax.training.run_dir import *  # noqa: F403
