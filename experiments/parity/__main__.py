"""`python -m experiments.parity`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.parity import experiment

driver.main(experiment.EXPERIMENT)
