"""`python -m experiments.vanishing_gradients`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.vanishing_gradients import experiment

driver.main(experiment)
