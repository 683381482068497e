"""Baselines of experiments.text_classification on the RNN's split: the majority class and a
bag of 1- and 2-grams with logistic regression (scikit-learn, imported when used).

Both read the same examples as the RNN (`speakers.Examples.tokens`: lower-cased words, cut
at --max_words); the n-gram features are counted over every training word, not capped at
--vocab_size (the vocabulary cap is the RNN's).
"""

import numpy as np

from rnn_jax.data import speakers as speaker_data

INSTALL = "pip install scikit-learn"
C = 1.0  # inverse L2 strength of the logistic regression (scikit-learn's default)


def sklearn_available() -> bool:
    try:
        import sklearn.linear_model  # noqa: F401
    except ImportError:
        return False
    return True


def majority(data: speaker_data.Dataset) -> dict:
    """Always the speaker with the most training examples."""
    label = int(np.argmax(np.bincount(data.train.labels)))
    return {"params": 0, "test_accuracy": float(np.mean(data.test.labels == label)),
            "train_accuracy": float(np.mean(data.train.labels == label))}


def _identity(tokens):
    return tokens


def ngram_logistic_regression(data: speaker_data.Dataset, max_n: int = 2) -> dict:
    """Counts of the training set's 1..max_n-grams -> multinomial logistic regression (L2,
    C = 1, L-BFGS; deterministic). Returns test and train accuracy and the parameter count."""
    try:
        from sklearn.feature_extraction.text import CountVectorizer
        from sklearn.linear_model import LogisticRegression
    except ImportError as error:
        raise ImportError(f"the n-gram baseline needs scikit-learn: {INSTALL}") from error
    vectorizer = CountVectorizer(tokenizer=_identity, preprocessor=_identity,
                                 token_pattern=None, lowercase=False, ngram_range=(1, max_n))
    train = vectorizer.fit_transform(data.train.tokens)
    model = LogisticRegression(C=C, max_iter=5000).fit(train, data.train.labels)
    test = vectorizer.transform(data.test.tokens)
    return {"params": int(model.coef_.size + model.intercept_.size),
            "test_accuracy": float(np.mean(model.predict(test) == data.test.labels)),
            "train_accuracy": float(np.mean(model.predict(train) == data.train.labels))}
