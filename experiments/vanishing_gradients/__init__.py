"""Vanishing and exploding gradients, measured: the notes' bound, clipping, and how far back.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
