"""Character-level (or word-level) language modelling with truncated BPTT, sampling, baselines.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
