"""Why the daemon could not start (or stopped on an error), kept where people look.

A daemon started by ``memq start`` or by a hook has no terminal: its reason goes to
``MEMQ_HOME/logs/startup-error.json`` (time, pid, kind, reason, and for a damaged database
which file), which ``memq start`` prints when its daemon exits, ``memq status`` shows while no
daemon runs, and the hook reads on SessionStart. A good start removes it.

Standard library only: the hook reads it.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

from memq import env as memq_env
from memq.exceptions import MemqError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

STARTUP_ERROR_FILE: Final = "startup-error.json"


class Kind:
    """What kind of reason (strings: they are written to the file)."""

    DATABASE_DAMAGED: Final = "database_damaged"
    HOME_NOT_WRITABLE: Final = "home_not_writable"
    ERROR: Final = "error"  # anything else: the reason says what


class Phase:
    """When it happened."""

    START: Final = "start"  # before the daemon served
    RUN: Final = "run"  # it served, then stopped on an error


def path_in(home: str) -> str:
    return os.path.join(home, memq_env.LOGS_DIR, STARTUP_ERROR_FILE)


def record(
    home: str,
    reason: str,
    *,
    kind: str = Kind.ERROR,
    phase: str = Phase.START,
    database: str | None = None,
) -> bool:
    """Write why, replacing any earlier reason; False when it cannot be written (a home
    that is not writable: then only stderr and ``memq status``'s own look can say it)."""
    entry: dict[str, Any] = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "pid": os.getpid(),
        "phase": phase,
        "kind": kind,
        "reason": reason,
    }
    if database is not None:
        entry["database"] = database
        identity = _identity(database)
        if identity is not None:
            entry["database_identity"] = identity
    path = path_in(home)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        with open(fd, "w", encoding="utf-8") as handle:
            json.dump(entry, handle)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True


def read(home: str) -> dict[str, Any] | None:
    """The recorded reason, or None (none recorded, or the file is unreadable)."""
    try:
        fd = os.open(path_in(home), os.O_RDONLY | os.O_NOFOLLOW)
        with open(fd, encoding="utf-8") as handle:
            entry = json.load(handle)
    except (OSError, ValueError):
        return None
    if not isinstance(entry, dict) or not isinstance(entry.get("reason"), str):
        return None
    return entry


def clear(home: str) -> None:
    """Forget the recorded reason (a good start, a repair)."""
    with contextlib.suppress(OSError):
        os.unlink(path_in(home))


def says_damaged(entry: dict[str, Any] | None, database: str) -> bool:
    """Whether ``entry`` records that ``database``, the very file at that path now, is
    damaged (a file repaired or replaced since is a different file)."""
    if entry is None or entry.get("kind") != Kind.DATABASE_DAMAGED:
        return False
    if entry.get("database") != database:
        return False
    return entry.get("database_identity") == _identity(database)


def _identity(path: str) -> list[int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return [info.st_dev, info.st_ino]


def describe(exc: BaseException) -> str:
    """One line for an exception: an ExceptionGroup as its leaf exceptions' messages (never
    a traceback's ``+---`` lines), memq's own errors by their message alone."""
    leaves = list(_leaves(exc))
    parts: list[str] = []
    for leaf in leaves:
        text = _one(leaf)
        if text not in parts:
            parts.append(text)
    return "; ".join(parts) if parts else type(exc).__name__


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        found: list[BaseException] = []
        for inner in exc.exceptions:
            found.extend(_leaves(inner))
        return found
    return [exc]


def _one(exc: BaseException) -> str:
    message = " ".join(str(exc).split())
    if isinstance(exc, MemqError) and message:
        return message
    if isinstance(exc, OSError) and exc.strerror:
        where = f": {exc.filename}" if exc.filename else ""
        return f"{exc.strerror}{where}"
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def home_write_problem(home: str) -> str | None:
    """What keeps memq from writing in ``home``, as a sentence, or None when it can
    (or when ``home`` does not exist yet: it is created where it can be)."""
    try:
        info = os.statvfs(home)
    except FileNotFoundError:
        return None
    except OSError as exc:
        return f"{memq_env.Variable.HOME} {home} cannot be used: {exc.strerror}"
    advice = (
        "memq keeps its database, token and logs there; make it writable or set MEMQ_HOME "
        "to a directory that is"
    )
    if info.f_flag & os.ST_RDONLY:
        return f"{memq_env.Variable.HOME} {home} is on a read-only file system; {advice}"
    for path in (home, os.path.join(home, memq_env.LOGS_DIR)):
        if os.path.isdir(path) and not os.access(path, os.W_OK):
            return (
                f"{memq_env.Variable.HOME} {home} is read-only ({path} is not writable by this "
                f"user); {advice}"
            )
    return None
