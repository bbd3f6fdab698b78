"""When the daemon does not answer: write the event straight into the pending table, and
start the daemon in the background without waiting for it.

The row is the one the daemon would have written (same statement, same dedupe key), so an
event that also reaches the daemon later, or that the daemon did commit before its answer
timed out, is stored once.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from memq import env as memq_env
from memq.storage import connection, schema
from memq.storage.sqlfile import load_queries

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

    from memq.events import Route

# A burst of hooks that all find the daemon down should start it once, not once each.
SPAWN_INTERVAL_SECONDS: Final = 10.0
SPAWN_STAMP_FILE: Final = "spawn.stamp"


def store_directly(home: str, route: Route, body: bytes, busy_timeout: float) -> int:
    """Insert the event (``body``: its payload as compact JSON, the text the daemon would
    store) into ``home``'s database, creating the directory (0700) and the schema if needed.
    Returns the message id (the existing one for a duplicate)."""
    make_home(home)
    conn = connection.connect(
        Path(home) / memq_env.DATABASE_FILE,
        synchronous=connection.Synchronous.FULL,
        busy_timeout_ms=int(busy_timeout * 1000),
    )
    try:
        schema.migrate(conn)
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


def make_home(home: str) -> None:
    """Create MEMQ_HOME (0700, as the daemon would) and its logs directory if missing."""
    os.makedirs(home, mode=0o700, exist_ok=True)
    os.makedirs(os.path.join(home, memq_env.LOGS_DIR), mode=0o700, exist_ok=True)


def start_daemon(home: str) -> bool:
    """Start ``memq serve`` detached (own session, stdio on /dev/null) unless one was started
    in the last few seconds. Does not wait. Returns whether it started one."""
    stamp = os.path.join(home, SPAWN_STAMP_FILE)
    try:
        if time.time() - os.stat(stamp).st_mtime < SPAWN_INTERVAL_SECONDS:
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
            {**os.environ, memq_env.HOME_VARIABLE: home},
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
