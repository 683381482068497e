"""`python -m experiments.vanishing_gradients`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.vanishing_gradients import experiment

driver.main(experiment.EXPERIMENT)
