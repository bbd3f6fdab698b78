"""The daemon's pid record, and whether a daemon is really running.

The pid file says which process and port; the queue's instance lock (an ``flock`` the kernel
drops when the process dies) says whether that process is still alive. A pid file left by a
crash therefore never blocks a start and never makes ``memq status`` lie.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

from memq.queue import lock_path_for


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    """What a running daemon writes about itself."""

    pid: int
    port: int
    started_at: float  # Unix time
    version: str
    # Where its database is, when not in the home (``memq serve --ephemeral``): the lock that
    # says it is alive is beside it.
    database: str | None = None
    # Its PostgreSQL database (``MEMQ_DATABASE_URL`` without the password): no instance
    # lock says it is alive there, its process does.
    database_url: str | None = None

    def database_path(self, home_database: Path) -> Path:
        """The database it runs on: ``database`` when set, else the home's."""
        return Path(self.database) if self.database else home_database


def write_record(path: Path, record: DaemonRecord) -> None:
    """Replace the pid file atomically (a reader never sees half a file)."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(asdict(record)), encoding="utf-8")
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def read_record(path: Path) -> DaemonRecord | None:
    """The pid file's record, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return DaemonRecord(
            pid=int(data["pid"]),
            port=int(data["port"]),
            started_at=float(data["started_at"]),
            version=str(data["version"]),
            database=str(data["database"]) if data.get("database") else None,
            database_url=str(data["database_url"]) if data.get("database_url") else None,
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def remove_record(path: Path, pid: int) -> None:
    """Remove the pid file if it is this process's (a newer daemon may have replaced it)."""
    record = read_record(path)
    if record is not None and record.pid == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def database_in_use(database: Path) -> bool:
    """Whether some process holds the queue's instance lock on ``database``."""
    lock = lock_path_for(database)
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def running_daemon(pidfile: Path, database: Path) -> DaemonRecord | None:
    """The record of the daemon that is running now, or None."""
    record = read_record(pidfile)
    if record is None:
        return None
    if record.database_url is None and not database_in_use(record.database_path(database)):
        return None
    try:
        os.kill(record.pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by someone else
    return record
