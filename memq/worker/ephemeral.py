"""``memq serve --ephemeral``: a daemon whose database lives in memory and dies with it.

SQLite's own in-memory databases cannot be shared by the several connections the daemon
opens (the queue's writers, the readers) with WAL and an instance lock, so the database is
an ordinary file in a RAM-backed directory (``/dev/shm``, tmpfs on Linux) that is deleted
when the daemon exits. Where no such directory exists the system's temporary directory is
used, and the banner says so.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from memq.env import DATABASE_FILE

MEMORY_DIRECTORIES: Final = ("/dev/shm",)  # noqa: S108 - RAM-backed on purpose, 0700 below


@dataclass(frozen=True, slots=True)
class EphemeralDatabase:
    """Where an ephemeral daemon keeps its database, and whether that is really RAM."""

    path: Path
    in_memory: bool

    def banner(self) -> str:
        """The warning ``memq serve --ephemeral`` prints before anything else."""
        where = "in memory" if self.in_memory else "in a temporary directory (no RAM disk here)"
        return (
            f"memq: EPHEMERAL MODE: the database is {where} at {self.path.parent}.\n"
            "memq: everything remembered is DELETED when this daemon exits; nothing is saved."
        )


@contextlib.contextmanager
def ephemeral_database() -> Iterator[EphemeralDatabase]:
    """A private (0700) directory for the database, removed with everything in it on exit."""
    base = next((d for d in MEMORY_DIRECTORIES if _usable(d)), None)
    directory = Path(tempfile.mkdtemp(prefix="memq-ephemeral-", dir=base))
    try:
        yield EphemeralDatabase(directory / DATABASE_FILE, in_memory=base is not None)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def _usable(directory: str) -> bool:
    return os.path.isdir(directory) and os.access(directory, os.W_OK | os.X_OK)
