"""`python -m experiments.long_memory`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.long_memory import experiment

driver.main(experiment.EXPERIMENT)
