"""`python -m experiments.seq2seq`: runs experiment.py's EXPERIMENT (`--helpfull`)."""

from experiments.harness import driver
from experiments.seq2seq import experiment

driver.main(experiment.EXPERIMENT)
