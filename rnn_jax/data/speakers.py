"""Who said it: a text-classification task built from a play's speaker turns.

The notes' sentiment example (many-to-one: read a sentence word by word, classify it at the
end) needs a labelled corpus; this task takes its labels from the text itself. In a play
formatted like tiny-shakespeare

    GLOUCESTER:
    Now is the winter of our discontent
    Made glorious summer by this sun of York;

    ...

a *turn* is a block that opens with a `NAME:` line and runs up to the next blank line; its
label is NAME. The task: given a turn (or one line of it, `unit="line"`), which of the K
speakers with the most turns says it.

    data = load(text, speakers=4, key=jax.random.key(0))
    data.train.ids [n, time] int32, data.train.lengths [n], data.train.labels [n] in [0, K)

Words are `text.split_words` tokens of the lower-cased turn (words and single punctuation
marks), kept up to `max_words` per example; the vocabulary holds the `vocab_size` most
frequent training words (id 0 is `text.UNKNOWN_WORD`, which also pads: padded steps are
masked by the lengths). Turns are split into train and test per speaker (stratified, so both
have the same class prior to rounding) by a fixed key, so every member and every run sees the
same split; the lines of one turn are never on both sides.
"""

import collections
import re
from collections.abc import Sequence
from typing import NamedTuple

import jax
import numpy as np

from rnn_jax.data import text as text_data

UNITS = ("turn", "line")
# A speaker line: a capitalised name (letters, spaces, apostrophes, '&', ',', '.', '-') and
# a colon, alone on the first line of a block ("KING RICHARD III:", "Senators, &C:").
_HEADER = re.compile(r"([A-Z][A-Za-z' ,&.-]*):")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")


class Turn(NamedTuple):
    speaker: str
    lines: tuple[str, ...]  # the lines after "NAME:", stripped, blank lines none


class Examples(NamedTuple):
    """One side of the split (host arrays)."""

    ids: np.ndarray  # [n, time] int32 word ids, padded with 0 after each length
    lengths: np.ndarray  # [n] int32 in [1, time]
    labels: np.ndarray  # [n] int32 speaker index in [0, K)
    tokens: tuple[tuple[str, ...], ...]  # each example's words (the baselines read these)


class Dataset(NamedTuple):
    speakers: tuple[str, ...]  # label -> name, most turns first
    turn_counts: tuple[int, ...]  # turns per speaker (of >= min_words words)
    vocabulary: text_data.Vocabulary
    train: Examples
    test: Examples


def parse_turns(text: str) -> list[Turn]:
    """The text's turns in order: blocks between blank lines whose first line is `NAME:`
    (other blocks, e.g. stage directions or a title, are skipped)."""
    turns = []
    for block in _BLANK_LINE.split(text.replace("\r\n", "\n")):
        lines = [line.strip() for line in block.strip("\n").split("\n")]
        header = _HEADER.fullmatch(lines[0])
        body = tuple(line for line in lines[1:] if line)
        if header is not None and body:
            turns.append(Turn(header[1].strip(), body))
    return turns


def words(passage: str) -> tuple[str, ...]:
    """Lower-cased word tokens (`text.split_words`, newlines left out)."""
    return tuple(w for w in text_data.split_words(passage.lower()) if w != "\n")


def examples_of(turns: Sequence[Turn], unit: str, min_words: int) -> list[list[tuple]]:
    """Per turn, its examples' words: the whole turn, or each line (`unit`); examples with
    fewer than `min_words` words are dropped (a turn may be left with none)."""
    if unit not in UNITS:
        raise ValueError(f"expected unit in {UNITS}, received {unit!r}")
    passages = [[" ".join(t.lines)] if unit == "turn" else list(t.lines) for t in turns]
    return [[w for w in map(words, p) if len(w) >= min_words] for p in passages]


def top_speakers(turns: Sequence[Turn], examples: Sequence[list], num_speakers: int,
                 min_turns: int) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """The `num_speakers` speakers with the most turns that have an example (ties: by name),
    and their counts. ValueError when fewer than `num_speakers` have `min_turns` or more."""
    counts = collections.Counter(t.speaker for t, e in zip(turns, examples) if e)
    ranked = sorted((s for s in counts if counts[s] >= min_turns), key=lambda s: (-counts[s], s))
    if len(ranked) < num_speakers:
        raise ValueError(f"asked for {num_speakers} speakers, the text has {len(ranked)} with "
                         f">= {min_turns} turns")
    chosen = tuple(ranked[:num_speakers])
    return chosen, tuple(counts[s] for s in chosen)


def split_turns(labels: np.ndarray, test_fraction: float, key: jax.Array) -> np.ndarray:
    """A boolean test mask over turns `[n]`: per class c with n_c turns, `round(test_fraction
    * n_c)` of them (at least 1, at most n_c - 1), the first of the class in one random order
    of all turns (`jax.random.permutation(key, n)`: one draw, whatever the classes)."""
    rank = np.argsort(np.asarray(jax.random.permutation(key, len(labels))))
    test = np.zeros(len(labels), bool)
    for c in np.unique(labels):
        members = np.flatnonzero(labels == c)
        count = min(max(round(test_fraction * len(members)), 1), len(members) - 1)
        test[members[np.argsort(rank[members])[:count]]] = True
    return test


def encode(vocabulary: text_data.Vocabulary, examples: Sequence[tuple], labels: Sequence[int],
           max_words: int) -> Examples:
    """Word ids of the first `max_words` words of each example, padded with 0 to the longest."""
    index = {w: i for i, w in enumerate(vocabulary.tokens)}
    kept = tuple(tuple(e[:max_words]) for e in examples)
    lengths = np.array([len(e) for e in kept], np.int32)
    ids = np.zeros((len(kept), int(lengths.max(initial=1))), np.int32)
    for row, example in enumerate(kept):
        ids[row, :len(example)] = [index.get(w, 0) for w in example]
    return Examples(ids, lengths, np.asarray(labels, np.int32), kept)


def load(text: str, *, speakers: int, key: jax.Array, unit: str = "turn", min_turns: int = 20,
         min_words: int = 1, max_words: int = 50, vocab_size: int = 2000,
         test_fraction: float = 0.2) -> Dataset:
    """The task from a play's text (module docstring). Raises ValueError when the text has
    fewer than `speakers` speakers with `min_turns` turns of `min_words` words."""
    if not 2 <= min_turns:
        raise ValueError(f"expected min_turns >= 2 (a turn on each side of the split), "
                         f"received {min_turns}")
    turns = parse_turns(text)
    per_turn = examples_of(turns, unit, min_words)
    names, counts = top_speakers(turns, per_turn, speakers, min_turns)
    label_of = {name: i for i, name in enumerate(names)}
    chosen = [i for i, t in enumerate(turns) if t.speaker in label_of and per_turn[i]]
    turn_labels = np.array([label_of[turns[i].speaker] for i in chosen])
    test = split_turns(turn_labels, test_fraction, key)
    sides = {}
    for name, mask in (("train", ~test), ("test", test)):
        pairs = [(e, label) for i, label in zip(np.asarray(chosen)[mask], turn_labels[mask])
                 for e in per_turn[i]]
        sides[name] = [p[0] for p in pairs], [p[1] for p in pairs]
    training_words = " ".join(w for e in sides["train"][0] for w in e[:max_words])
    vocabulary = text_data.build_vocabulary(training_words, "word", max_size=vocab_size)
    return Dataset(names, counts, vocabulary,
                   encode(vocabulary, *sides["train"], max_words),
                   encode(vocabulary, *sides["test"], max_words))


def class_prior(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """The fraction of examples per class `[num_classes]`."""
    return np.bincount(labels, minlength=num_classes) / max(len(labels), 1)
