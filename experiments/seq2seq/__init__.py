"""Sequence to sequence: an encoder-decoder with and without attention, tested beyond the

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
