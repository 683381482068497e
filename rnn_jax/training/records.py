"""The files of a run directory as data: JSON values, atomic writes, metrics.jsonl records.

`to_jsonable` turns configs and metrics into plain JSON; `write_json` and `replace_file` write
through a new file and `os.replace` (atomic), so an interrupt leaves the old file or the new
one, never half a file; `read_metrics` skips a partial last line left by a killed process.
"""

import dataclasses
import json
import math
import os
import platform
from pathlib import Path
from typing import Any

import jax
import numpy as np
from absl import logging

CONFIG = "config.json"
METRICS = "metrics.jsonl"
SUMMARY = "summary.json"
CURVES = "curves.png"


class RunDirectoryError(ValueError):
    """The run directory cannot be used: a file in the way, no permission, a symbolic link."""


def to_jsonable(value: Any) -> Any:
    """Dataclasses, tuples, numpy/JAX scalars and arrays -> plain JSON values (NaN -> None)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        value = dataclasses.asdict(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (jax.Array, np.ndarray, np.generic)):
        value = np.asarray(value)
        value = value.item() if value.ndim == 0 else value.tolist()
        return to_jsonable(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def versions() -> dict[str, str]:
    """Versions of the packages a result depends on, for summary.json."""
    import flax
    import optax

    return {
        "python": platform.python_version(),
        "jax": jax.__version__,
        "flax": flax.__version__,
        "optax": optax.__version__,
        "numpy": np.__version__,
        "backend": jax.default_backend(),
    }


def num_params(params: Any) -> int:
    """Total number of scalars in a params pytree."""
    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))


def read_json(path: Path, what: str) -> Any:
    """The JSON value in `path`; an empty, unreadable or corrupt file is a RunDirectoryError
    naming the file and what it should hold (`what`), not the parser's message alone."""
    try:
        return json.loads(Path(path).read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        received = "an empty file" if not Path(path).read_bytes().strip() else f"{error}"
        raise RunDirectoryError(
            f"{path}: expected {what} (JSON), received {received}. Move the run directory "
            "aside (or choose another --run_name) to start a new run") from None


def metric_lines(path: Path) -> tuple[list[tuple[dict, str]], bool]:
    """`([(record, line), ...], torn)`: torn when the last line has no newline (a process was
    killed while appending it); that line is kept only if it is a whole JSON object."""
    *lines, tail = path.read_text().split("\n")
    records = []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                records.append((json.loads(line), line))
            except json.JSONDecodeError:
                raise ValueError(f"{path} line {number}: expected one JSON object per line, "
                                 f"received {line[:80]!r}") from None
    if tail.strip():
        try:
            records.append((json.loads(tail), tail))
        except json.JSONDecodeError:
            logging.warning("%s: skipped a partial last line (a process was stopped while "
                            "writing it): %r", path, tail[:80])
    return records, bool(tail)


def read_metrics(run_dir: str | Path) -> list[dict]:
    """The records of `run_dir`/metrics.jsonl ([] when there is none); a partial last line,
    left by a killed process, is skipped with a warning."""
    path = Path(run_dir) / METRICS
    return [record for record, _ in metric_lines(path)[0]] if path.exists() else []


def write_json(path: Path, value: Any) -> None:
    replace_file(path, json.dumps(value, indent=2, sort_keys=True) + "\n")


def replace_file(path: Path, text: str) -> None:
    """Writes `text` to `path` through a new file and `os.replace` (atomic): an interrupt
    leaves the old file or the new one, never half a file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def scalars(metrics: dict) -> dict:
    """Device metrics -> Python floats/ints, fetched in one transfer."""
    return {k: np.asarray(v).item() for k, v in jax.device_get(metrics).items()}
