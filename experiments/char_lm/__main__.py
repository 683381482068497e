"""`python -m experiments.char_lm`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.char_lm import experiment
from experiments.harness import driver

driver.main(experiment)
