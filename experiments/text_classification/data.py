"""text_classification's examples: the play's turns of its --speakers speakers, split into
train and test (`rnn_jax.data.speakers.load`), for a config's data flags.

Why its own module: Config.validate, the task and the report all read this split; the loading
and its caches stand apart from the model and the report.
"""

import functools

import jax

from rnn_jax.data import speakers as speaker_data
from rnn_jax.data import text as text_data


@functools.lru_cache(maxsize=1)
def read_text(path: str) -> str:
    """The file's text (cached: validation and every population read the same file)."""
    if not path:
        raise FileNotFoundError("expected a play's text file (e.g. tinyshakespeare.txt), "
                                "received ''")
    try:
        return text_data.read_text_file(path)
    except ValueError as error:
        raise FileNotFoundError(str(error)) from None


def dataset(config) -> speaker_data.Dataset:
    """The task's examples for `config`'s data flags (cached per distinct data flags)."""
    return _load(config.data_path, config.speakers, config.unit, config.min_turns,
                 config.min_words, config.max_words, config.vocab_size, config.test_fraction,
                 config.split_seed)


@functools.lru_cache(maxsize=4)
def _load(path, speakers, unit, min_turns, min_words, max_words, vocab_size,
          test_fraction, split_seed) -> speaker_data.Dataset:
    return speaker_data.load(read_text(path), speakers=speakers, unit=unit,
                             min_turns=min_turns, min_words=min_words, max_words=max_words,
                             vocab_size=vocab_size, test_fraction=test_fraction,
                             key=jax.random.key(split_seed))
