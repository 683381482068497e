"""`python -m experiments.long_memory`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.long_memory import experiment

driver.main(experiment)
