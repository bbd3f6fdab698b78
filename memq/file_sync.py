"""Making a rename durable: after ``os.replace`` the new name is only on disk once the
directory holding it is synced too. Standard library only (the hook and install use it).
"""

from __future__ import annotations

import os
from pathlib import Path

_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_CLOEXEC", 0)


def sync_directory(directory: str | Path, *, best_effort: bool = False) -> None:
    """fsync ``directory``; with ``best_effort`` a platform or filesystem that cannot open
    or sync a directory is let be, otherwise its ``OSError`` is raised."""
    try:
        fd = os.open(directory, _FLAGS)
    except OSError:
        if best_effort:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not best_effort:
            raise
    finally:
        os.close(fd)
