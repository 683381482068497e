"""Recurrences evaluated in parallel over time.

- `linear_scan`: diagonal linear recurrences `h(t) = a(t) h(t-1) + b(t)` by one
  `jax.lax.associative_scan`, with masks (padding), reverse and a log-space form.
- `linear_cells`: the parallel unroll of the linear-recurrence cells (minGRU, minLSTM, LRU).
- `deer`: nonlinear cells by Newton iterations over the whole trajectory (DEER, quasi-DEER;
  quasi-DEER uses a cell's `jacobian_diagonal` where it carries one: vanilla, GRU, LSTM).
"""

from rnn_jax.parallel.deer import NewtonInfo, deer_unroll
from rnn_jax.parallel.linear_cells import parallel_unroll

# `linear_scan` stays the submodule (rnn_jax.parallel.linear_scan.linear_scan)
__all__ = ["NewtonInfo", "deer_unroll", "parallel_unroll"]
