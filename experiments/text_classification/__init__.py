"""Text classification, many-to-one over words: which of K speakers of tiny-shakespeare says a
turn, against a bag-of-n-grams logistic regression.

experiment.py declares it, __main__.py runs it, README.md holds its results and figures/."""
