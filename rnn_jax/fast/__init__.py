"""Fast recurrent unrolls: hand-written BPTT (`jax.custom_vjp`), chunked checkpointing, and
token inputs as a gather from a `[vocab, gates]` table.

`rnn_jax.unroll` uses this package by default (`backward="fast"`) for the LSTM, GRU and
vanilla cells, and falls back to autodiff of `jax.lax.scan` for every other cell.
"""

from rnn_jax.fast.dispatch import BACKWARDS, chunk_size, run_kernel
from rnn_jax.fast.kernels import GRU, LSTM, Kernel, kernel_for, vanilla_kernel
from rnn_jax.fast.tokens import unroll_tokens

__all__ = [
    "BACKWARDS",
    "GRU",
    "LSTM",
    "Kernel",
    "chunk_size",
    "kernel_for",
    "run_kernel",
    "unroll_tokens",
    "vanilla_kernel",
]
