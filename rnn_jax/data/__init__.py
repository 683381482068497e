"""Task data: synthetic generators (parity, summation, copying, adding) and text corpora.

Each generator is a pure function of an explicit `jax.random` key (or of the step index), so
the same seed gives the same batches. Import the submodules directly.
"""
