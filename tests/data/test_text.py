"""Vocabularies, corpora (built-in, file, download with sha256 check) and the split."""

import hashlib
import urllib.error

import numpy as np
import pytest

from rnn_jax.data import text


def test_char_vocabulary_round_trip_and_saved_with_the_run(tmp_path):
    corpus = "hello world\nhow are you?"
    vocab = text.build_vocabulary(corpus)
    assert vocab.tokens == tuple(sorted(set(corpus)))
    ids = text.encode(vocab, corpus)
    assert ids.dtype == np.int32 and len(ids) == len(corpus)
    assert text.decode(vocab, ids) == corpus
    text.save_vocabulary(vocab, tmp_path / "vocab.json")
    assert text.load_vocabulary(tmp_path / "vocab.json") == vocab


def test_unknown_character_is_a_clear_error():
    vocab = text.build_vocabulary("abc")
    with pytest.raises(ValueError, match=r"unknown chars \['z'\]"):
        text.encode(vocab, "abz")
    with pytest.raises(ValueError, match=r"ids in \[0, 3\)"):
        text.decode(vocab, [0, 3])


def test_word_level_caps_the_vocabulary_with_an_unknown_token():
    corpus = "the cat sat on the mat .\nthe dog sat ."
    vocab = text.build_vocabulary(corpus, "word", max_size=4)
    # counts: the 3, sat 2, . 2, then ties at 1 broken alphabetically ('\n' sorts first)
    assert vocab.tokens == (text.UNKNOWN_WORD, "the", ".", "sat")
    ids = text.encode(vocab, "the zebra sat .")
    assert ids.tolist() == [1, 0, 3, 2]
    assert text.decode(vocab, ids) == "the <unk> sat ."
    full = text.build_vocabulary(corpus, "word")
    assert text.decode(full, text.encode(full, corpus)) == "the cat sat on the mat .\nthe dog sat ."
    with pytest.raises(ValueError, match="cap >= 2"):
        text.build_vocabulary(corpus, "word", max_size=1)


def test_builtin_corpus_needs_no_download():
    corpus = text.load_corpus("pydoc")
    assert len(corpus) > 100_000 and "assert" in corpus
    with pytest.raises(ValueError, match=r"expected a corpus among .*, received 'nope'"):
        text.load_corpus("nope")


def test_data_path_reads_utf8_and_rejects_other_bytes(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("héllo\n", encoding="utf-8")
    assert text.load_corpus("tinyshakespeare", path) == "héllo\n"  # the file wins over the name
    path.write_bytes(b"\xff\xfe\xfa")
    with pytest.raises(ValueError, match="not UTF-8"):
        text.load_corpus(data_path=path)
    with pytest.raises(ValueError, match="does not exist"):
        text.load_corpus(data_path=tmp_path / "missing.txt")


@pytest.mark.parametrize("content, received", [
    (None, r"received '.*missing.txt', which does not exist"),
    ("directory", r"received '.*', which is a directory"),
    (b"", r"received the empty file '.*'"),
    (b"text\x00\x01\x02binary", r"received the binary file '.*' \(a NUL byte at offset 4\)"),
    ("caf\xe9".encode("latin-1"), r"received '.*', which is not UTF-8 \(byte 0xe9 at offset 3\)"),
])
def test_every_unusable_text_file_is_one_clear_error(tmp_path, content, received):
    path = tmp_path / "missing.txt"
    if content == "directory":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(ValueError, match=f"^expected a non-empty UTF-8 text file, {received}$"):
        text.read_text_file(path)


def test_text_file_drops_a_byte_order_mark_and_expands_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "bom.txt").write_bytes("\ufeffhé\n".encode("utf-8"))
    assert text.read_text_file("~/bom.txt") == "hé\n"


def test_no_network_error_names_data_path(tmp_path):
    def offline(url):
        raise urllib.error.URLError("no network")

    with pytest.raises(ValueError, match="--data_path"):
        text.load_corpus("tinyshakespeare", cache_dir=tmp_path, fetch=offline)
    assert not (tmp_path / "tinyshakespeare.txt").exists()


def test_corrupted_download_fails_the_sha256_check(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("A corrupted download: not the expected corpus.\n")
    with pytest.raises(ValueError, match=f"expected sha256 {text.TINYSHAKESPEARE_SHA256}"):
        text.download_tinyshakespeare(tmp_path / "cache", url=bad.as_uri())
    assert not (tmp_path / "cache" / "tinyshakespeare.txt").exists()


def test_download_from_a_file_url_is_checked_and_cached(tmp_path, monkeypatch):
    source = tmp_path / "source.txt"  # stands in for the real text: its hash is the expected one
    source.write_text("a small corpus made by the test\n")
    monkeypatch.setattr(text, "TINYSHAKESPEARE_SHA256",
                        hashlib.sha256(source.read_bytes()).hexdigest())
    cache = tmp_path / "cache"
    path = text.download_tinyshakespeare(cache, url=source.as_uri())
    assert hashlib.sha256(path.read_bytes()).hexdigest() == text.TINYSHAKESPEARE_SHA256

    def offline(url):
        raise urllib.error.URLError("no network")

    corpus = text.load_corpus("tinyshakespeare", cache_dir=cache, fetch=offline)  # from cache
    assert corpus == source.read_text()
    path.write_text("corrupted cache")  # a bad cached copy is fetched again
    with pytest.raises(ValueError, match="--data_path"):
        text.load_corpus("tinyshakespeare", cache_dir=cache, fetch=offline)


def test_split_keeps_order_and_puts_the_end_in_validation():
    ids = np.arange(100)
    train, valid = text.split_train_validation(ids, 0.1)
    assert train.tolist() == list(range(90)) and valid.tolist() == list(range(90, 100))
    with pytest.raises(ValueError, match=r"validation_fraction in \(0, 1\)"):
        text.split_train_validation(ids, 1.0)
    with pytest.raises(ValueError, match="long enough"):
        text.split_train_validation(np.arange(3), 0.1)
