"""Text corpora and vocabularies for language modelling (character or word level).

Corpora (`load_corpus`):
  * `"pydoc"` (the default): the English documentation topics that ship inside every CPython
    (`pydoc_data.topics`, ~465k characters); needs no download.
  * `"tinyshakespeare"`: downloaded on first use from `TINYSHAKESPEARE_URL` into a cache
    directory and checked against `TINYSHAKESPEARE_SHA256` (1,115,394 characters).
  * any UTF-8 file via `data_path`.

A `Vocabulary` is built from a text (characters: from the whole corpus, so that no character
of the validation text, or of a prime drawn from it, is unknown; words: from the training text)
and saved with the run (`save_vocabulary`), so sampling from a checkpoint decodes with the same
ids. Encoding text that holds a symbol the vocabulary lacks raises a ValueError naming it,
unless the vocabulary has an explicit unknown token (the word level always has one, `<unk>`;
the character level never does).
"""

import collections
import hashlib
import json
import os
import re
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, NamedTuple

import numpy as np

TINYSHAKESPEARE_URL = (
    "https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt"
)
TINYSHAKESPEARE_SHA256 = "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
CORPORA = ("pydoc", "tinyshakespeare")
UNKNOWN_WORD = "<unk>"
_WORD_PATTERN = re.compile(r"\w+|[^\w\s]|\n")  # words, single punctuation marks, newlines


class Vocabulary(NamedTuple):
    """Token strings in id order; `level` is "char" or "word"; `unknown` the unknown token."""

    tokens: tuple[str, ...]
    level: str = "char"
    unknown: str | None = None

    @property
    def size(self) -> int:
        return len(self.tokens)


def default_cache_dir() -> Path:
    """`$RNN_JAX_CACHE`, else `$XDG_CACHE_HOME/rnn_jax`, else `~/.cache/rnn_jax`."""
    if "RNN_JAX_CACHE" in os.environ:
        return Path(os.environ["RNN_JAX_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME", str(Path.home() / ".cache"))
    return Path(base) / "rnn_jax"


def _urlopen_bytes(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=30) as response:
        return response.read()


def download_tinyshakespeare(
    cache_dir: str | Path | None = None,
    *,
    url: str = TINYSHAKESPEARE_URL,
    fetch: Callable[[str], bytes] = _urlopen_bytes,
) -> Path:
    """Path to the cached tiny-shakespeare file, downloading and sha256-checking it if absent.

    A cached file whose hash is wrong is downloaded again. Raises a ValueError naming
    `--data_path` when the download fails (no network), and one naming both hashes when the
    downloaded bytes do not match `TINYSHAKESPEARE_SHA256`.
    """
    path = Path(cache_dir or default_cache_dir()) / "tinyshakespeare.txt"
    if path.exists() and hashlib.sha256(path.read_bytes()).hexdigest() == TINYSHAKESPEARE_SHA256:
        return path
    try:
        data = fetch(url)
    except (urllib.error.URLError, OSError) as error:
        raise ValueError(
            f"could not download tinyshakespeare from {url} ({error}); without network, pass a "
            "local copy of the text with --data_path=/path/to/tinyshakespeare.txt"
        ) from error
    digest = hashlib.sha256(data).hexdigest()
    if digest != TINYSHAKESPEARE_SHA256:
        raise ValueError(
            f"tinyshakespeare from {url}: expected sha256 {TINYSHAKESPEARE_SHA256}, received "
            f"{digest}; the download is corrupt (or pass a good copy with --data_path)"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".part")
    partial.write_bytes(data)
    partial.replace(path)  # atomic: a crash never leaves a truncated cache file
    return path


def read_text_file(path: str | Path) -> str:
    """The text of a non-empty UTF-8 file (`~` expanded; a leading byte-order mark dropped).

    Raises a ValueError naming what was expected and what was received for a path that does
    not exist, a directory or other non-regular file, an unreadable, empty or binary file (one
    holding a NUL byte) and bytes that are not UTF-8 (with the offset of the first bad byte).
    """
    path = Path(path).expanduser()

    def fail(received: str):
        return ValueError(f"expected a non-empty UTF-8 text file, received {received}")

    if not path.exists():
        raise fail(f"'{path}', which does not exist")
    if not path.is_file():
        raise fail(f"'{path}', which is a {'directory' if path.is_dir() else 'special file'}")
    try:
        data = path.read_bytes()
    except OSError as error:
        raise fail(f"'{path}', which cannot be read ({error.strerror})") from error
    if not data:
        raise fail(f"the empty file '{path}'")
    if b"\0" in data:
        raise fail(f"the binary file '{path}' (a NUL byte at offset {data.index(0)})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        raise fail(f"'{path}', which is not UTF-8 (byte 0x{data[error.start]:02x} at offset "
                   f"{error.start})") from error


def load_corpus(
    name: str = "pydoc",
    data_path: str | Path | None = None,
    *,
    cache_dir: str | Path | None = None,
    fetch: Callable[[str], bytes] = _urlopen_bytes,
) -> str:
    """The text of corpus `name` (see the module docstring), or of the UTF-8 file `data_path`
    when given (which then wins over `name`)."""
    if data_path:
        return read_text_file(data_path)
    if name == "pydoc":
        from pydoc_data.topics import topics  # ships with CPython

        return "\n\n".join(topics[key] for key in sorted(topics))
    if name == "tinyshakespeare":
        return download_tinyshakespeare(cache_dir, fetch=fetch).read_text(encoding="utf-8")
    raise ValueError(f"expected a corpus among {CORPORA} (or a data_path), received {name!r}")


def split_words(text: str) -> list[str]:
    """Word-level tokens: runs of word characters, single punctuation marks and newlines."""
    return _WORD_PATTERN.findall(text)


def build_vocabulary(text: str, level: str = "char", max_size: int | None = None) -> Vocabulary:
    """Vocabulary of `text`: sorted characters, or the `max_size` most frequent words (ties
    broken alphabetically) plus `UNKNOWN_WORD` as id 0."""
    if level == "char":
        if not text:
            raise ValueError("expected a non-empty training text, received ''")
        return Vocabulary(tuple(sorted(set(text))), "char", None)
    if level == "word":
        if max_size is not None and max_size < 2:
            raise ValueError(f"expected a word vocabulary cap >= 2, received {max_size}")
        counts = collections.Counter(split_words(text))
        counts.pop(UNKNOWN_WORD, None)
        ranked = sorted(counts, key=lambda word: (-counts[word], word))
        keep = ranked if max_size is None else ranked[: max_size - 1]
        return Vocabulary((UNKNOWN_WORD, *keep), "word", UNKNOWN_WORD)
    raise ValueError(f"expected level 'char' or 'word', received {level!r}")


def encode(vocab: Vocabulary, text: str) -> np.ndarray:
    """Token ids `[tokens]` int32. Unknown symbols map to `vocab.unknown`, or raise a
    ValueError naming them when the vocabulary has none (character level)."""
    index = {token: i for i, token in enumerate(vocab.tokens)}
    symbols = list(text) if vocab.level == "char" else split_words(text)
    missing = sorted({s for s in symbols if s not in index})
    if missing and vocab.unknown is None:
        raise ValueError(
            f"expected only symbols of the {vocab.size}-symbol vocabulary, received unknown "
            f"{vocab.level}s {missing[:10]}"
        )
    unknown_id = index.get(vocab.unknown, -1)
    return np.array([index.get(s, unknown_id) for s in symbols], dtype=np.int32)


def decode(vocab: Vocabulary, ids) -> str:
    """Text of token ids (words joined with spaces, except around newlines)."""
    ids = np.asarray(ids).reshape(-1)
    if ids.size and (ids.min() < 0 or ids.max() >= vocab.size):
        raise ValueError(f"expected ids in [0, {vocab.size}), received {ids.min()}..{ids.max()}")
    tokens = [vocab.tokens[i] for i in ids]
    if vocab.level == "char":
        return "".join(tokens)
    return " ".join(tokens).replace(" \n ", "\n").replace(" \n", "\n").replace("\n ", "\n")


def save_vocabulary(vocab: Vocabulary, path: str | Path) -> None:
    """Writes the vocabulary as JSON (saved in the run directory next to the checkpoints)."""
    Path(path).write_text(json.dumps(vocab._asdict(), ensure_ascii=False, indent=1), "utf-8")


def load_vocabulary(path: str | Path) -> Vocabulary:
    data = json.loads(Path(path).read_text("utf-8"))
    return Vocabulary(tuple(data["tokens"]), data["level"], data["unknown"])


def split_train_validation(
    ids: np.ndarray, validation_fraction: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """The first `1 - validation_fraction` of the tokens for training, the rest (the end of the
    text) for validation."""
    if not 0.0 < validation_fraction < 1.0:
        raise ValueError(f"expected validation_fraction in (0, 1), received {validation_fraction}")
    cut = int(round(len(ids) * (1.0 - validation_fraction)))
    if cut < 2 or len(ids) - cut < 2:
        raise ValueError(
            f"expected a text long enough for a {validation_fraction} validation split "
            f"(>= 2 tokens each side), received {len(ids)} tokens"
        )
    return ids[:cut], ids[cut:]
