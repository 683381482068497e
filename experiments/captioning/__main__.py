"""`python -m experiments.captioning`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.captioning import experiment
from experiments.harness import driver

driver.main(experiment.EXPERIMENT)
