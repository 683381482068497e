"""`python -m experiments.parallel_in_time`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.parallel_in_time import experiment

driver.main(experiment)
