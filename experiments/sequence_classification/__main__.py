"""`python -m experiments.sequence_classification`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.sequence_classification import experiment

driver.main(experiment)
