"""`python -m experiments.summation`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.summation import experiment

driver.main(experiment)
