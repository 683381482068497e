"""`python -m experiments.seq2seq`: the command line of experiment.py (flags: `--helpfull`)."""

from experiments.harness import driver
from experiments.seq2seq import experiment

driver.main(experiment)
