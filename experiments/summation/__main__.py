"""`python -m experiments.summation`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.summation import experiment

driver.main(experiment.EXPERIMENT)
