"""Bidirectional tagging: a per-step label that depends on the inputs after the step.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
