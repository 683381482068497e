"""`python -m experiments.captioning`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.captioning import experiment
from experiments.harness import driver

driver.main(experiment)
