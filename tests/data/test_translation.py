"""rnn_jax.data.translation: every pair checked by Python's own str/int/datetime."""

import datetime

import jax
import numpy as np
import pytest

from rnn_jax.data import translation
from rnn_jax.seq2seq import decoder

STRPTIME = ("%d %B %Y", "%B %d, %Y", "%d %b %Y", "%b %d, %Y", "%d.%m.%Y", "%m/%d/%Y",
            "%A, %B %d, %Y", "%Y/%m/%d")
DATE_RANGE = translation.DATE_YEARS


def pairs(batch: translation.Batch):
    """(source text, target text) per row, checking padding and EOS on the way."""
    out = []
    for s, sl, t, tl in zip(*map(np.asarray, batch)):
        assert np.all(s[sl:] == translation.PAD) and np.all(s[:sl] > translation.EOS)
        assert t[tl - 1] == translation.EOS and np.all(t[tl:] == translation.PAD)
        assert np.all(t[:tl - 1] > translation.EOS)
        out.append((translation.decode(s[:sl]), translation.decode(t[:tl])))
    return out


def test_vocabulary_shares_the_decoder_ids():
    assert (translation.PAD, translation.BOS, translation.EOS) == (decoder.PAD, decoder.BOS,
                                                                  decoder.EOS)
    assert translation.decode(translation.encode("123+45") + [translation.EOS, 5]) == "123+45"


@pytest.mark.parametrize("task", ["reversal", "sorting", "addition"])
def test_answers_are_exact(task, key):
    batch = jax.jit(lambda k: translation.sample(task, k, 64, 3, 9))(key)
    assert (batch.source.shape[1], batch.target.shape[1]) == translation.shapes(task, 9)
    lengths = set()
    for source, target in pairs(batch):
        lengths.add(len(source))
        assert 3 <= len(source) <= 9
        if task == "reversal":
            assert target == source[::-1]
        elif task == "sorting":
            assert target == "".join(sorted(source))
        else:
            a, b = source.split("+")
            assert a and b and a == str(int(a)) and b == str(int(b))  # no leading zeros
            assert target == str(int(a) + int(b))
    assert len(lengths) >= 4  # lengths vary


def test_addition_reaches_every_split_and_carries(key):
    batch = jax.jit(lambda k: translation.sample("addition", k, 256, 5, 5))(key)
    sums = pairs(batch)
    assert {len(s.split("+")[0]) for s, _ in sums} == {1, 2, 3}
    assert any(len(t) > max(len(x) for x in s.split("+")) for s, t in sums)  # a final carry


def test_dates_are_iso_8601(key):
    batch = translation.sample("dates", key, 64, 1, 1)
    assert (batch.source.shape[1], batch.target.shape[1]) == translation.shapes("dates", 1)
    formats = set()
    for source, target in pairs(batch):
        expected = datetime.date.fromisoformat(target)
        assert len(target) == 10 and DATE_RANGE[0] <= expected.year <= DATE_RANGE[1]
        parsed = set()
        for i, f in enumerate(STRPTIME):
            try:
                parsed.add(datetime.datetime.strptime(source, f).date())
                formats.add(i)
            except ValueError:
                pass
        assert parsed == {expected}, (source, target)
    assert len(formats) >= 6


def test_bad_input_names_expected_and_received(key):
    with pytest.raises(ValueError, match=r"expected task in .*received 'copy'"):
        translation.sample("copy", key, 2, 1, 3)
    with pytest.raises(ValueError, match="received min_len=4, max_len=3"):
        translation.sample("reversal", key, 2, 4, 3)
    with pytest.raises(ValueError, match="max_len >= 3, received min_len=1, max_len=2"):
        translation.sample("addition", key, 2, 1, 2)
    with pytest.raises(ValueError, match=r"expected characters of .*received \['\?'\]"):
        translation.encode("12?")
