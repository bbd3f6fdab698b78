"""The mark ``memq repair`` leaves in ``MEMQ_HOME`` while it rebuilds the database.

While it is there (and the process that made it lives), a hook whose daemon does not answer
leaves the database alone and spools its event (``memq.hooks.spool``): the files at the
database's path are being renamed and replaced, and SQLite must never see a new database with
the old one's ``-wal`` beside it, nor a write land in the file being set aside. The repair
takes the spool in when it is done.

Standard library only: the hook reads it.
"""

from __future__ import annotations

import contextlib
import os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

MARK_FILE: Final = "repairing"


def mark(home: str) -> None:
    """Leave the mark (this process's pid), replacing a stale one."""
    path = os.path.join(home, MARK_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with open(fd, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    os.replace(tmp, path)


def unmark(home: str) -> None:
    """Remove the mark, if it is this process's."""
    if repairing_pid(home) == os.getpid():
        with contextlib.suppress(FileNotFoundError):
            os.unlink(os.path.join(home, MARK_FILE))


def repairing_pid(home: str) -> int | None:
    """The pid of the ``memq repair`` rebuilding ``home``'s database now, or None (no mark,
    or its process is gone: a repair that died leaves nothing in the way)."""
    try:
        fd = os.open(os.path.join(home, MARK_FILE), os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with open(fd, encoding="ascii", errors="replace") as handle:
        text = handle.read(32).strip()
    if not text.isdigit():
        return None
    pid = int(text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, another user's
    return pid
