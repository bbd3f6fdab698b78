"""The automatic fork link for events the hook's fallback writes itself.

With the daemon up, ``memq.worker.forks`` links a forked session to its parent before the
fork's first event is queued. An event the fallback writes straight into SQLite never passes
there, so the fallback makes the same link first, with the same statements
(``queries/fork.sql``) in the same order as ``memq.memory.fork.copy_session``: the copy of the
parent's memory gets message ids before the fork's own event, as with the daemon. A failed
link never costs the event: the caller stores it whatever happens here.

Standard library only: it runs in ``memq hook``.
"""

from __future__ import annotations

import time
from pathlib import Path

from memq import env as memq_env
from memq.storage import connection, schema
from memq.storage.sqlfile import load_queries

TYPE_CHECKING = False
if TYPE_CHECKING:
    import sqlite3
    from typing import Final

    from memq.events import Route

# A fork's first event follows its parent's resuming SessionStart within this time (the
# daemon's ForkLinker uses it too).
LINK_WINDOW_SECONDS: Final = 3600.0
# The statements of a fork after its parent is found, in order (memq.memory.fork.copy_session).
COPY_STATEMENTS: Final = (
    "fork_insert_session",
    "fork_reserve_ids",
    "fork_copy_prompts",
    "fork_copy_observations",
    "fork_copy_summaries",
)


def link_before_storing(home: str, route: Route, cwd: object, busy_timeout: float) -> str | None:
    """Link ``route``'s session to the session it was forked from, if its event may be a
    fork's first (``Route.may_link_fork``) and a parent is found; returns the parent's key, or
    None. Opens ``home``'s database only when it exists: without one there is no parent."""
    if not route.may_link_fork or not isinstance(cwd, str) or not cwd:
        return None
    path = Path(home) / memq_env.DATABASE_FILE
    if not path.exists():
        return None
    conn = connection.connect(
        path,
        synchronous=connection.Synchronous.FULL,
        busy_timeout_ms=int(busy_timeout * 1000),
    )
    try:
        schema.migrate(conn, new_only=True)
        # IMMEDIATE: the look-up and the copy see no other writer in between (the daemon, or
        # another hook of the same fork).
        conn.execute("BEGIN IMMEDIATE")
        try:
            parent = link_fork(conn, route.session_key, cwd, now_ms=time.time_ns() // 1_000_000)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return parent
    finally:
        conn.close()


def link_fork(
    conn: sqlite3.Connection,
    child_key: str,
    cwd: str,
    *,
    now_ms: int,
    window_ms: int = int(LINK_WINDOW_SECONDS * 1000),
) -> str | None:
    """In the caller's transaction: make ``child_key`` a fork of the session resumed last in
    ``cwd`` within ``window_ms`` (``fork_find_parent``), with a copy of its memory, unless
    memq knows ``child_key`` already; returns the parent's key, or None."""
    queries = load_queries("fork")
    (known,) = conn.execute(queries["fork_child_known"], {"child": child_key}).fetchone()
    if known:
        return None
    found = conn.execute(
        queries["fork_find_parent"],
        {"child": child_key, "cwd": cwd, "since": now_ms - window_ms},
    ).fetchone()
    if found is None:
        return None
    parent = str(found[0])
    assistant, _, external_id = child_key.partition(":")
    params = {
        "parent": parent,
        "child": child_key,
        "assistant": assistant,
        "external_id": external_id,
        "now": now_ms,
    }
    for name in COPY_STATEMENTS:
        conn.execute(queries[name], params)
    return parent
