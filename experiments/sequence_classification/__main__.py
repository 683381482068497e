"""`python -m experiments.sequence_classification`: runs experiment.py's EXPERIMENT."""

from experiments.harness import driver
from experiments.sequence_classification import experiment

driver.main(experiment.EXPERIMENT)
