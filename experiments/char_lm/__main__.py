"""`python -m experiments.char_lm`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.char_lm import experiment
from experiments.harness import driver

driver.main(experiment.EXPERIMENT)
