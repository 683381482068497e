"""`python -m experiments.text_classification`: runs experiment.py's EXPERIMENT."""

from experiments.harness import driver
from experiments.text_classification import experiment

driver.main(experiment.EXPERIMENT)
