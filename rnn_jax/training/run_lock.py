"""One process at a time per run directory: an advisory `flock` on `<run_dir>/.lock`. Why `flock`
on an open file rather than a pid file made with `O_CREAT | O_EXCL`: the kernel drops the lock
when its owner ends, however it ends (return, exception, kill -9), so a lock can never outlive
its process and no guess about whether a pid is still alive (or was reused) is needed. The file
also holds `pid <pid> on <host>`: a second process is refused with that owner in its message,
and a clean release (at `release` or interpreter exit) empties it, so text found in a lock that
could be taken names an owner that was killed: it is taken over with a warning. The lock file
is never deleted (deleting it would let two processes lock two different files of the same
name). On NFS, Linux emulates `flock` with byte-range locks, so it holds across hosts there
too. Locks are re-entrant within one process: a test or notebook that opens the same run twice
is not refused by itself.
"""

import atexit
import fcntl
import os
import socket
from pathlib import Path

from absl import logging

LOCK = ".lock"
_held: dict[str, int] = {}  # resolved run directory -> open file descriptor holding its lock


class RunLockedError(RuntimeError):
    """Another live process holds the run directory's lock."""


def _key(directory: str | Path) -> str:
    return str(Path(directory).resolve())


def _owner(fd: int) -> str:
    return os.pread(fd, 200, 0).decode("utf-8", "replace").strip()


def holds(directory: str | Path) -> bool:
    """Whether this process holds the lock of `directory`."""
    return _key(directory) in _held


def acquire(directory: str | Path) -> None:
    """Locks the existing run directory `directory` for this process.

    Raises:
      RunLockedError: another process holds it; the message names that process and the
        directory.
    """
    key = _key(directory)
    if key in _held:
        return
    path = Path(key) / LOCK
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _owner(fd) or "another process"
            os.close(fd)
            raise RunLockedError(
                f"run directory {key} is in use by {owner} (lock file {path}): expected one "
                "process per run directory; wait for that one to end, or choose another "
                "--run_name"
            ) from None
        try:  # the directory may have been moved away (--overwrite) before the lock was taken
            current = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            current = False
        if current:
            break
        os.close(fd)
    previous = _owner(fd)
    if previous:
        logging.warning("run directory %s: taking over the lock of %s, which ended without "
                        "releasing it", key, previous)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}\n".encode(), 0)
    _held[key] = fd


def release(directory: str | Path) -> None:
    """Releases this process's lock of `directory` (a no-op when it holds none)."""
    fd = _held.pop(_key(directory), None)
    if fd is not None:
        os.ftruncate(fd, 0)  # a clean release leaves an empty lock file
        os.close(fd)  # closing the file drops the flock


@atexit.register
def _release_all() -> None:
    for key in list(_held):
        release(key)
