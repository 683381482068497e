"""`python -m experiments.parity`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.parity import experiment

driver.main(experiment)
