"""Summation and comparison networks: hand-set weights (exact) against learned ones.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
