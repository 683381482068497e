"""Run directories: every run leaves a folder that explains itself.

    results/<experiment>/<run_name>/
      config.json      the full config, written before step 0
      metrics.jsonl    one JSON object per logged step: {"step": ..., "loss": ..., ...}
      summary.json     final metrics, wall time, parameter count, versions; "finished": true
      checkpoints/     orbax checkpoints (rnn_jax.training.checkpoint)
      curves.png       learning curves, drawn from metrics.jsonl by `plot_curves`
      .lock            held by the process using the run (`rnn_jax.training.run_lock`)

Nothing on disk is lost by accident: a run name is one path component, so `--overwrite` can
only ever remove the one directory it names (moved aside by an atomic rename, then deleted, so
a kill mid-delete never leaves half a run under the run's name); a finished run opened again
with the same config raises `RunFinished` before anything is written; metrics.jsonl is only
appended to, and the one rewrite (dropping records a resumed run will replay) writes a new file
and renames it over the old one, so a kill at any moment leaves the old or the new file whole.

One process at a time per run directory: the lock in `rnn_jax.training.run_lock`.
"""

import glob
import json
import os
import shutil
from pathlib import Path
from typing import Any

from absl import logging

from rnn_jax.training.records import (
    CONFIG,
    METRICS,
    SUMMARY,
    RunDirectoryError,
    metric_lines,
    read_json,
    read_metrics,
    replace_file,
    to_jsonable,
    versions,
    write_json,
)
from rnn_jax.training.run_lock import acquire, release


class RunFinished(Exception):
    """`Run.create` (or `fit`) found a run that `fit` completed with the same config.

    Raised before anything is written, so the run directory is left exactly as it was;
    `str(error)` is the line to show (where the run is, how to start it again).
    """

    def __init__(self, run: "Run"):
        self.run = run
        summary = run.summary()
        done = (f"{summary['populations']} populations trained" if "populations" in summary
                else f"{summary.get('steps', '?')} steps, stopped at {summary.get('stopped', '?')}")
        super().__init__(
            f"run {run.path} is already finished ({done}); nothing was changed. To train it "
            "again, choose another --run_name (or pass --overwrite, which deletes this run "
            "directory first)"
        )



MAX_NAME_BYTES = 255  # the longest file name of common file systems (ext4, APFS, NTFS)


def check_name(name: Any, what: str = "run name") -> str:
    """Returns `name` if it is one path component: not empty, '.' or '..', no separator or NUL,
    at most `MAX_NAME_BYTES` bytes in UTF-8.

    Why: `out_dir/experiment/name` must stay inside `out_dir/experiment`, so that
    `--overwrite` can only ever remove the one run it names; a longer name is refused here, in
    one line, rather than by the file system with its own message.
    """
    bad = {"/", os.sep, os.altsep or "/", "\0"}
    if not isinstance(name, str) or name in ("", ".", "..") or any(c in name for c in bad):
        raise ValueError(f"expected the {what} to be one path component (not empty, '.' or "
                         f"'..', without '/' or NUL), received {name!r}")
    size = len(name.encode("utf-8", "surrogatepass"))
    if size > MAX_NAME_BYTES:
        raise ValueError(f"expected the {what} to be at most {MAX_NAME_BYTES} bytes (the file "
                         f"system's limit for one name), received {size} bytes: "
                         f"{name[:40]!r}...")
    return name



def same_config(old: Any, new: Any, defaults: dict | None = None) -> bool:
    """Whether a run written with config `old` can continue with config `new`.

    Dicts compare key by key (and lists element by element, e.g. a population's members); a
    key missing from `old` counts as equal when its value in `new` equals `defaults[key]`: a
    flag added later, whose default keeps the old behaviour, leaves old runs resumable.
    """
    defaults = defaults or {}
    if isinstance(old, dict) and isinstance(new, dict):
        for key in set(old) | set(new):
            if key not in old:
                if key not in defaults or not same_config(defaults[key], new[key]):
                    return False
            elif key not in new or not same_config(old[key], new[key], defaults):
                return False
        return True
    if isinstance(old, list) and isinstance(new, list):
        return len(old) == len(new) and all(
            same_config(o, n, defaults) for o, n in zip(old, new))
    return old == new


class Run:
    """A run directory. `Run.create` makes it and writes config.json; `Run(path)` opens it."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    @classmethod
    def create(
        cls,
        out_dir: str | Path,
        experiment: str,
        run_name: str,
        config: Any,
        *,
        overwrite: bool = False,
        defaults: dict | None = None,
        ignore: tuple[str, ...] = (),
    ) -> "Run":
        """Creates `out_dir/experiment/run_name/`, locks it for this process, writes config.json.

        An existing directory is reused (so an interrupted run resumes) only if it was made
        with the same config; otherwise a ValueError names the differing keys. Keys in
        `ignore` are not compared (e.g. 'out_dir': a run directory moved elsewhere is the same
        run); a key the old config.json lacks counts as equal when the new value equals its
        entry in `defaults` (`same_config`: a flag added since, at its default). With
        `overwrite=True` that one directory (never anything above it) is removed first.

        Raises:
          ValueError: `experiment` or `run_name` is not one path component; the directory
            holds a run with a different config.
          RunFinished: the directory holds a finished run with the same config (nothing on
            disk is changed; not raised with `overwrite=True`).
          RunDirectoryError: the directory cannot be created or written, or `overwrite` would
            remove a symbolic link's target.
          RunLockedError: another process is using the directory.
        """
        check_name(experiment, "experiment name")
        check_name(run_name)
        run = cls(Path(out_dir) / experiment / run_name)
        config, defaults = to_jsonable(config), to_jsonable(defaults)
        try:
            if overwrite and (run.path.exists() or run.path.is_symlink()):
                run._remove()
            run._check_reusable(config, defaults, ignore)  # read only: a finished run is
            # left untouched
            run.path.mkdir(parents=True, exist_ok=True)
            acquire(run.path)
        except OSError as error:
            release(run.path)
            raise RunDirectoryError(f"run directory {run.path}: expected a directory that can be "
                                    f"created and written, received {error}") from None
        try:
            run._check_reusable(config, defaults, ignore)  # again, now that no other
            # process can change it
            write_json(run.path / CONFIG, config)
        except BaseException:
            release(run.path)
            raise
        return run

    def _check_reusable(self, config: dict, defaults: dict | None, ignore: tuple) -> None:
        if not (self.path / CONFIG).exists():
            return
        old = {k: v for k, v in self.config().items() if k not in ignore}
        new = {k: v for k, v in config.items() if k not in ignore}
        if not same_config(old, new, defaults):
            keys = sorted(k for k in set(old) | set(new)
                          if not same_config({k: old[k]} if k in old else {}, {k: new.get(k)},
                                             defaults))
            changes = ", ".join(f"{k}: {old.get(k, '(absent)')!r} -> {new.get(k, '(absent)')!r}"
                                for k in keys)
            raise ValueError(
                f"run directory {self.path} holds a run with a different config ({changes}); "
                "choose another --run_name to keep it (--overwrite would delete it and start "
                "again)"
            )
        if self.finished:
            raise RunFinished(self)

    def _remove(self) -> None:
        """Removes this run directory: renamed aside (atomic), then deleted, so a kill midway
        leaves either the whole run or a hidden `.<name>.removing-<pid>` folder."""
        if self.path.is_symlink() or not self.path.is_dir():
            kind = "a symbolic link" if self.path.is_symlink() else "not a directory"
            raise RunDirectoryError(f"--overwrite: expected {self.path} to be a run directory, "
                                    f"received {kind}; nothing was removed")
        acquire(self.path)  # refuses while another process is using the run
        for leftover in self.path.parent.glob(f".{glob.escape(self.path.name)}.removing-*"):
            shutil.rmtree(leftover)  # from an earlier --overwrite that was killed midway
        aside = self.path.with_name(f".{self.path.name}.removing-{os.getpid()}")
        os.rename(self.path, aside)
        release(self.path)
        shutil.rmtree(aside)
        logging.warning("--overwrite: removed the run directory %s", self.path)

    @property
    def finished(self) -> bool:
        """Whether `fit` completed this run: summary.json says `"finished": true` (or,
        for runs written before that key, has `"stopped"`)."""
        path = self.path / SUMMARY
        if not path.exists():
            return False
        summary = self.summary()
        return bool(summary.get("finished", "stopped" in summary))

    @property
    def checkpoint_dir(self) -> Path:
        return self.path / "checkpoints"

    def config(self) -> dict:
        """config.json (RunDirectoryError naming the file when it is empty or corrupt)."""
        config = read_json(self.path / CONFIG, "the run's config: an object of flag values")
        if not isinstance(config, dict):
            raise RunDirectoryError(f"{self.path / CONFIG}: expected the run's config: an "
                                    f"object of flag values, received {type(config).__name__}")
        return config

    def log(self, record: dict) -> None:
        """Appends one JSON object (one logged step) to metrics.jsonl, as a single write of a
        whole line: a killed process leaves at most a partial last line, which `read_metrics`
        skips and `drop_metrics_after` removes."""
        with open(self.path / METRICS, "a") as f:
            f.write(json.dumps(to_jsonable(record)) + "\n")

    def metrics(self) -> list[dict]:
        """Every record in metrics.jsonl, in order ([] when there is none)."""
        return read_metrics(self.path)

    def drop_metrics_after(self, last_step: int) -> list[dict]:
        """Keeps only records with `step <= last_step`; returns them.

        Used when a run resumes at `last_step` (its checkpoint, or 0 without one): the steps
        after it run again and log again. The file is rewritten only when something is dropped
        (or a killed process left a partial last line), as a new file renamed over the old one
        (`os.replace`, atomic): a kill at any moment leaves the old file or the new one, whole.
        """
        path = self.path / METRICS
        if not path.exists():
            return []
        lines, torn = metric_lines(path)
        kept = [(record, line) for record, line in lines if record.get("step", 0) <= last_step]
        if torn or len(kept) < len(lines):
            replace_file(path, "".join(line + "\n" for _, line in kept))
        return [record for record, _ in kept]

    def write_summary(self, summary: dict) -> None:
        """Writes summary.json, adding the package versions."""
        write_json(self.path / SUMMARY, {**to_jsonable(summary), "versions": versions()})

    def update_summary(self, extra: dict) -> None:
        """Adds keys to an existing summary.json (e.g. an experiment's own results)."""
        path = self.path / SUMMARY
        summary = self.summary() if path.exists() else {"versions": versions()}
        write_json(path, {**summary, **to_jsonable(extra)})

    def summary(self) -> dict:
        """summary.json (RunDirectoryError naming the file when it is empty or corrupt)."""
        return read_json(self.path / SUMMARY, "the run's summary: an object of results")

    def close(self) -> None:
        """Releases this process's lock of the run directory (also released at exit)."""
        release(self.path)
