"""Checkpoints of a `TrainState` with orbax: save, find the latest, restore against a template.

The state is stored as its flat list of leaves (PRNG keys as their raw key data) plus a JSON
description of every leaf (tree path, shape, dtype). Restoring checks that description against
the template state first, so a checkpoint written by a different model or optimiser gives a
`ValueError` naming the first leaf that differs, and an unreadable (corrupt, half-written)
checkpoint gives a `ValueError` naming its directory, instead of an orbax traceback.

Every array's bytes are verified on restore against a SHA-256 stored with the description at
save time. Why our own checksum: orbax 0.12 checksums only the shard index of its zarr3 files
(crc32c), not the array data, so changed bytes in an array restore without complaint. A
checkpoint that fails (`CorruptCheckpointError`) is moved to `<directory>_rejected/<step>`
(kept for inspection, out of the way of the step's next save) and `restore_latest` falls back
to the previous one: resuming from an older checkpoint replays the same steps exactly (see
rnn_jax.training.loop), so falling back loses only time, while stopping would make every run with
one bad file need a person.

Sharded states (`rnn_jax.distributed`). In one process each array is saved whole, gathered
from its devices. With several processes every process calls `save` and `restore` (in the same
order), each writing and reading the shards of its own devices (orbax's multi-process
checkpointing, on a directory all of them see); the checksums are of the whole arrays, the same
in every process. Either way a checkpoint restores onto any device or process count: the
restored arrays take the template's shardings.
"""

import contextlib
import errno
import shutil
import signal
import threading
from pathlib import Path
from typing import Any

import jax
import orbax.checkpoint as ocp
from absl import logging

from rnn_jax import distributed
from rnn_jax.training import stored

# orbax writes a checkpoint into `<step>.orbax-checkpoint-tmp*` and renames it when complete
_ORBAX_TMP = ".orbax-checkpoint-tmp"


@contextlib.contextmanager
def _quiet(level: int = logging.WARNING):
    """Orbax logs every save at INFO through absl; keep the run's own log readable."""
    verbosity = logging.get_verbosity()
    logging.set_verbosity(min(verbosity, level))
    try:
        yield
    finally:
        logging.set_verbosity(verbosity)


@contextlib.contextmanager
def _interrupt_after():
    """Holds back Ctrl-C (SIGINT) until the block ends, then raises it: a checkpoint being
    written is finished, not left half-written with orbax's threads still at work (whose
    errors, once their event loop is gone, would print tracebacks). Main thread only."""
    if threading.current_thread() is not threading.main_thread() or \
            signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield
        return
    received = []
    signal.signal(signal.SIGINT, lambda *_: received.append(True))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if received:
        raise KeyboardInterrupt


class CorruptCheckpointError(ValueError):
    """A checkpoint is unreadable, incomplete, or its array bytes differ from their checksum."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (e.g. the disk is full: errno ENOSPC); its partial
    files were removed. One error for the whole save: orbax's own per-thread tracebacks of the
    same failure are not logged."""


class Checkpointer:
    """Keeps the last `max_to_keep` checkpoints of a train state in `directory/<step>/`.

    Saves are synchronous: when `save` returns the checkpoint is complete on disk, so an
    interrupt never leaves the latest checkpoint half-written. Ctrl-C during a save takes
    effect when the save is complete; a save that fails removes orbax's temporary directory,
    and one left by a killed process is removed when the next Checkpointer opens the
    directory.
    """

    def __init__(self, directory: str | Path, *, max_to_keep: int = 2):
        self.directory = Path(directory).absolute()
        self._failed = False
        self._remove_partial()  # left by a process killed while saving
        with _quiet():
            self._manager = ocp.CheckpointManager(
                self.directory,
                options=ocp.CheckpointManagerOptions(
                    max_to_keep=max_to_keep, enable_async_checkpointing=False, create=True
                ),
            )

    def latest_step(self) -> int | None:
        """The step of the newest complete checkpoint, or None if there is none."""
        return self._manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self._manager.all_steps())

    def save(self, state: Any, step: int | None = None) -> int:
        """Saves `state` (any pytree; a TrainState's own `step` when `step` is None)."""
        step = int(state.step) if step is None else int(step)
        hosts = [stored.to_host(x) for x in jax.tree.leaves(state)]
        described = [{**leaf, "sha256": stored.sha256(array)}
                     for leaf, array in zip(stored.describe(state), hosts)]
        if jax.process_count() == 1:
            leaves = {stored.leaf_name(i): x for i, x in enumerate(hosts)}
        else:  # each process writes its own devices' shards
            leaves = {stored.leaf_name(i): stored.storable(x)
                      for i, x in enumerate(jax.tree.leaves(state))}
        try:
            with _interrupt_after(), _quiet(logging.FATAL):  # a failure is raised below, once
                self._manager.save(
                    step,
                    args=ocp.args.Composite(
                        arrays=ocp.args.StandardSave(leaves),
                        meta=ocp.args.JsonSave({"step": step, "leaves": described}),
                    ),
                    force=True,
                )
                self._manager.wait_until_finished()
        except BaseException as error:
            self._failed = True  # orbax's threads may still log and write: see `close`
            self._remove_partial()
            if isinstance(error, Exception):
                raise _write_error(self.directory / str(step), error) from error
            raise  # an interrupt stays an interrupt
        return step

    def _remove_partial(self) -> None:
        """Removes the temporary directories of an unfinished save (process 0 only)."""
        if distributed.is_writer():
            for partial in self.directory.glob(f"*{_ORBAX_TMP}*"):
                shutil.rmtree(partial, ignore_errors=True)

    def restore(self, template: Any, step: int | None = None) -> Any:
        """Restores the checkpoint at `step` (default: latest) into the structure of `template`.

        Raises:
          CorruptCheckpointError: unreadable, incomplete, or an array whose bytes differ from
            the checksum saved with it (the message names the array).
          ValueError: no checkpoint, or one whose leaves (tree paths, shapes, dtypes) differ
            from `template`'s.
        """
        step = self.latest_step() if step is None else step
        if step is None:
            raise ValueError(f"no checkpoint in {self.directory}")
        where = self.directory / str(step)
        meta = self._read(step, where, meta=ocp.args.JsonRestore())["meta"]
        if not isinstance(meta, dict) or not isinstance(meta.get("leaves"), list):
            raise CorruptCheckpointError(f"checkpoint {where} is unreadable (corrupt or "
                                         "incomplete): its description is missing")
        saved = [{k: v for k, v in leaf.items() if k != "sha256"} for leaf in meta["leaves"]]
        stored.check_matches(saved, stored.describe(template), where)
        template_leaves, treedef = jax.tree.flatten(template)
        abstract = {stored.leaf_name(i): stored.abstract(x) for i, x in enumerate(template_leaves)}
        restored = self._read(step, where, arrays=ocp.args.StandardRestore(abstract))["arrays"]
        leaves = []
        for i, like in enumerate(template_leaves):
            value = restored[stored.leaf_name(i)]
            expected = meta["leaves"][i].get("sha256")  # None: saved before checksums existed
            if expected is not None and stored.sha256(stored.to_host(value)) != expected:
                raise CorruptCheckpointError(
                    f"checkpoint {where} is corrupt: the bytes of {saved[i]['path']} differ "
                    "from the checksum saved with them"
                )
            if stored.is_key(like):
                leaves.append(jax.random.wrap_key_data(value, impl=jax.random.key_impl(like)))
            else:
                leaves.append(jax.numpy.asarray(value))
        return jax.tree.unflatten(treedef, leaves)

    def restore_latest(self, template: Any) -> Any | None:
        """The newest checkpoint that restores and verifies, or None when there is none.

        Each one that fails is named in a warning and moved to `<directory>_rejected/`; a
        checkpoint of another model or optimiser (a ValueError) is raised, not skipped, since
        every older one would differ the same way.
        """
        for step in sorted(self.all_steps(), reverse=True):
            try:
                return self.restore(template, step)
            except CorruptCheckpointError as error:
                rejected = self.directory.with_name(self.directory.name + "_rejected") / str(step)
                while rejected.exists():  # the same step rejected before: keep both
                    rejected = rejected.with_name(rejected.name + "+")
                if distributed.is_writer():  # every process found the same fault
                    rejected.parent.mkdir(exist_ok=True)
                    shutil.move(self.directory / str(step), rejected)
                distributed.barrier("checkpoint rejected")
                with _quiet():
                    self._manager.reload()
                older = self.all_steps()
                logging.warning("%s; moved it to %s; %s", error, rejected,
                                f"falling back to step {older[-1]}" if older else
                                "no other checkpoint: starting from the initial state")
        return None

    def _read(self, step: int, where: Path, **items) -> Any:
        try:
            with _quiet():
                return self._manager.restore(step, args=ocp.args.Composite(**items))
        except Exception as error:  # orbax raises many types; say which checkpoint is bad
            raise CorruptCheckpointError(
                f"checkpoint {where} is unreadable (corrupt or incomplete): {error}"
            ) from error

    def close(self) -> None:
        """Waits for orbax's threads; after a failed or interrupted save, quietly (the error
        was raised once), then removes what they left of it."""
        with _quiet(logging.FATAL if self._failed else logging.WARNING):
            self._manager.close()
        if self._failed:
            self._remove_partial()


def _write_error(where: Path, error: Exception) -> CheckpointWriteError:
    """One error for a failed save; errno ENOSPC when the disk was full (orbax reports it in
    its message: tensorstore's RESOURCE_EXHAUSTED, os_error_code 28)."""
    text = str(error)
    full = getattr(error, "errno", None) == errno.ENOSPC or "os_error_code='28'" in text \
        or "No space left on device" in text
    code = errno.ENOSPC if full else getattr(error, "errno", None) or errno.EIO
    what = "no space left on device" if full else text.splitlines()[0][:300]
    return CheckpointWriteError(code, f"checkpoint {where} could not be written ({what}); "
                                "its partial files were removed")
