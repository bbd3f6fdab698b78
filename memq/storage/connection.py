"""How every memq connection to the database is configured.

The daemon (through aiosqlite) and the hook's fallback (through ``sqlite3``) apply the same
settings, so both see the same journal mode and wait for each other the same way.
"""

from __future__ import annotations

import sqlite3
from enum import StrEnum
from pathlib import Path

from memq.exceptions import SQLiteTooOldError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

# STRICT tables need 3.37; RETURNING needs 3.35.
MIN_SQLITE_VERSION: Final = (3, 37, 0)

# The WAL is truncated back to this size after a checkpoint, so one burst cannot leave a
# large file behind.
JOURNAL_SIZE_LIMIT_BYTES: Final = 8 * 1024 * 1024


class Synchronous(StrEnum):
    """What a committed transaction survives (SQLite's ``PRAGMA synchronous`` in WAL mode)."""

    # fsync on every commit: survives a killed process, an OS crash and power loss.
    FULL = "FULL"
    # fsync only at checkpoints: survives a killed process; an OS crash or power loss may lose
    # the last transactions (never corrupts the file).
    NORMAL = "NORMAL"


def connection_pragmas(synchronous: Synchronous, busy_timeout_ms: int) -> list[str]:
    """The PRAGMA statements each new connection runs, in order."""
    return [
        f"PRAGMA busy_timeout = {int(busy_timeout_ms)}",
        f"PRAGMA synchronous = {Synchronous(synchronous).value}",
        "PRAGMA foreign_keys = ON",
        f"PRAGMA journal_size_limit = {JOURNAL_SIZE_LIMIT_BYTES}",
        "PRAGMA temp_store = MEMORY",
    ]


def check_sqlite_version(version: str = sqlite3.sqlite_version) -> None:
    """Raise ``SQLiteTooOldError`` when the linked SQLite library is too old for memq's
    schema."""
    found = tuple(int(part) for part in version.split(".")[:3])
    if found < MIN_SQLITE_VERSION:
        wanted = ".".join(map(str, MIN_SQLITE_VERSION))
        raise SQLiteTooOldError(
            f"memq needs SQLite >= {wanted}; this Python links SQLite {version}"
        )


def connect(
    path: Path, *, synchronous: Synchronous = Synchronous.FULL, busy_timeout_ms: int = 5000
) -> sqlite3.Connection:
    """Open ``path`` with memq's settings, in autocommit mode (transactions are explicit)."""
    conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_ms / 1000)
    try:
        enable_wal(conn)
        for pragma in connection_pragmas(synchronous, busy_timeout_ms):
            conn.execute(pragma)
    except BaseException:
        conn.close()
        raise
    return conn


def enable_wal(conn: sqlite3.Connection) -> None:
    """Switch the database to WAL mode (persistent; a no-op once set)."""
    (mode,) = conn.execute("PRAGMA journal_mode = WAL").fetchone()
    if str(mode).lower() != "wal":
        raise sqlite3.OperationalError(f"could not enable WAL mode (journal_mode is {mode})")
