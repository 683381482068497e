"""Captioning in miniature (one-to-many): an 8x8 digit image -> its English name, letter by

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
