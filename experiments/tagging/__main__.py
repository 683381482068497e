"""`python -m experiments.tagging`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.tagging import experiment

driver.main(experiment.EXPERIMENT)
