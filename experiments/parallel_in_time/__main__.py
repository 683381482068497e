"""`python -m experiments.parallel_in_time`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.parallel_in_time import experiment

driver.main(experiment.EXPERIMENT)
