"""RNNs in parallel over time: Newton iterations as a GRU learns, and wall time against T.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
