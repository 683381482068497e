"""`python -m experiments.tagging`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.tagging import experiment

driver.main(experiment)
