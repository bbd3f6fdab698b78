"""When the daemon does not answer: write the event straight into the pending table, and
start the daemon in the background without waiting for it.

The row is the one the daemon would have written (same statement, same dedupe key), so an
event that also reaches the daemon later, or that the daemon did commit before its answer
timed out, is stored once. The write waits for SQLite's locks only until the hook's deadline:
past it the hook puts the event in the spool (``memq.hooks.spool``) instead.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from memq import env as memq_env
from memq.exceptions import NoTimeLeftError
from memq.storage import connection, schema
from memq.storage.sqlfile import load_queries

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Final

    from memq.events import Route

# A burst of hooks that all find the daemon down should start it once, not once each.
SPAWN_INTERVAL_SECONDS: Final = 10.0
SPAWN_STAMP_FILE: Final = "spawn.stamp"


def busy_timeout_left(busy_timeout: float, deadline: float | None) -> float:
    """How long SQLite may wait for a lock now: ``busy_timeout``, cut to what is left before
    ``deadline`` (a ``time.monotonic()`` value). Raises ``NoTimeLeftError`` when nothing is."""
    if deadline is None:
        return busy_timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise NoTimeLeftError("the hook's budget was spent before the database could be written")
    return min(busy_timeout, left)


def store_directly(
    home: str, route: Route, body: bytes, busy_timeout: float, *, deadline: float | None = None
) -> int:
    """Insert the event (``body``: its payload as compact JSON, the text the daemon would
    store) into ``home``'s database, creating the directory (0700) and the schema if needed.
    Returns the message id (the existing one for a duplicate).

    Each wait for a lock is cut to what is left before ``deadline``; raises ``NoTimeLeftError``
    when the deadline passed, ``sqlite3.Error`` (a lock held past it, a damaged or read-only
    database), ``SchemaError`` or ``OSError`` when the database cannot take the event."""
    make_home(home)
    conn = connection.connect(
        Path(home) / memq_env.DATABASE_FILE,
        synchronous=connection.Synchronous.FULL,
        busy_timeout_ms=_milliseconds(busy_timeout_left(busy_timeout, deadline)),
    )
    try:
        _wait_at_most(conn, busy_timeout_left(busy_timeout, deadline))
        schema.migrate(conn, new_only=True)  # an upgrade is the daemon's: spooled meanwhile
        _wait_at_most(conn, busy_timeout_left(busy_timeout, deadline))
        queries = load_queries("queue")
        now = time.time_ns() // 1_000_000
        text = body.decode("utf-8")
        row = (route.session_key, route.kind, text, route.dedupe_key, now, now)
        inserted = conn.execute(queries["insert_messages"].format(rows="(?, ?, ?, ?, ?, ?)"), row)
        found = inserted.fetchall()
        if found:
            return int(found[0][0])
        existing = conn.execute(
            queries["select_by_dedupe_keys"],
            {"keys": json.dumps([[route.session_key, route.dedupe_key]])},
        ).fetchone()
        return int(existing[0]) if existing else 0
    finally:
        conn.close()


def _wait_at_most(conn: sqlite3.Connection, seconds: float) -> None:
    # Set before each statement that may wait for the write lock: one connection's timeout
    # applies to every wait, and two waits must not add up past the deadline.
    conn.execute(f"PRAGMA busy_timeout = {_milliseconds(seconds)}")


def _milliseconds(seconds: float) -> int:
    return max(1, int(seconds * 1000))


def make_home(home: str) -> None:
    """Create MEMQ_HOME (0700, as the daemon would) and its logs directory if missing."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(home, memq_env.LOGS_DIR), mode=0o700, exist_ok=True)


def start_daemon(home: str) -> bool:
    """Start ``memq serve`` detached (own session, stdio on /dev/null) unless one was started
    in the last few seconds. Does not wait. Returns whether it started one."""
    stamp = os.path.join(home, SPAWN_STAMP_FILE)
    try:
        age = time.time() - os.stat(stamp).st_mtime
        # A stamp from the future (the clock was stepped back) is stale, not a fresh start.
        if 0 <= age < SPAWN_INTERVAL_SECONDS:
            return False
    except FileNotFoundError:
        pass
    make_home(home)
    with open(stamp, "w", encoding="ascii") as handle:
        handle.write(f"{os.getpid()}\n")
    devnull = os.open(os.devnull, os.O_RDWR)
    try:
        # posix_spawn, not subprocess: subprocess alone costs more to import than the hook's
        # whole budget. The new session detaches the daemon from the assistant's terminal;
        # the hook's own stdin/stdout/stderr never reach it.
        os.posix_spawn(
            sys.executable,
            [sys.executable, "-m", "memq", "serve", "--quiet"],
            # The home the event was just stored in, whatever the environment said: the
            # daemon reads its other settings from that home's settings.toml.
            {**os.environ, memq_env.Variable.HOME: home},
            file_actions=[
                (os.POSIX_SPAWN_DUP2, devnull, 0),
                (os.POSIX_SPAWN_DUP2, devnull, 1),
                (os.POSIX_SPAWN_DUP2, devnull, 2),
            ],
            setsid=True,
        )
    finally:
        os.close(devnull)
    return True
