"""The exclusive instance lock: one queue per database file, across processes.

Holding it is what lets ``Queue.open`` treat every ``processing`` row as orphaned. It is an
``flock`` on a file beside the database, so the kernel releases it when its process dies: a
crashed daemon never leaves a lock that blocks the next start.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from memq.exceptions import QueueLockedError


def lock_path_for(database: Path) -> Path:
    """Where the lock of ``database`` lives."""
    return database.with_name(database.name + ".lock")


class InstanceLock:
    """An exclusive, non-blocking ``flock`` whose file records the holder's pid."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, path: Path) -> InstanceLock:
        """Take the lock or raise ``QueueLockedError`` naming the holder, without waiting."""
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = read_holder_pid(path)
            who = f"process {holder}" if holder else "another process"
            raise QueueLockedError(
                f"{path.with_suffix('')} is already open by {who} (lock file {path})"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        return cls(path, fd)

    @property
    def held(self) -> bool:
        """Whether this object still holds the lock."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lock up. The file stays: unlinking it would race with the next opener."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(fd, 0)
        os.close(fd)


def read_holder_pid(path: Path) -> int | None:
    """The pid written by the lock's last holder, if any."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(text) if text.isdigit() else None
