"""Running parity: learned RNNs against the notes' hand-built threshold network.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
