"""``memq status`` on PostgreSQL when this home's daemon does not answer: the queue's counts,
the paused sessions, the database's size and every live daemon, read from the server (other
daemons may be serving it). Synchronous and light: the CLI imports it only with
``MEMQ_DATABASE_URL`` set."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from memq.queue import MessageStatus, QueueStats, StatusCounts
from memq.storage.sqlfile import POSTGRES, load_queries
from memq.worker.status_report import shared_database


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What the server says: the queue (with the database's size), the paused sessions and
    the status's ``postgres`` key (``shared_database``'s shape, with a ``problem`` when the
    server did not answer: then the rest is empty)."""

    queue: QueueStats
    postgres: dict[str, Any]
    paused: list[str] = field(default_factory=list)


def read_server_status(url: str, shown: str, *, timeout: float = 5.0) -> ServerStatus:
    """The status read from ``url``'s database (``shown``: its URL without the password)."""
    import psycopg  # noqa: PLC0415 - only with a PostgreSQL database
    from psycopg.rows import dict_row  # noqa: PLC0415

    queue_q = load_queries("queue", POSTGRES)
    pg_q = load_queries("pg_queue", POSTGRES)
    config_q = load_queries("session_config", POSTGRES)
    empty = QueueStats(counts=StatusCounts(), sessions={}, database_bytes=0, wal_bytes=0)
    try:
        with psycopg.connect(
            url, autocommit=True, connect_timeout=max(2, round(timeout)), row_factory=dict_row
        ) as conn:
            counted = conn.execute(queue_q["count_by_session_and_status"]).fetchall()
            paused = conn.execute(config_q["paused_sessions"]).fetchall()
            size = conn.execute(pg_q["database_bytes"]).fetchall()
            daemons = conn.execute(pg_q["live_daemons"]).fetchall()
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        problem = f"PostgreSQL at {shown} does not answer: {first}"
        return ServerStatus(empty, postgres={**shared_database(shown, []), "problem": problem})
    per_session: dict[str, dict[str, int]] = {}
    for row in counted:
        per_session.setdefault(str(row["session_id"]), {})[str(row["status"])] = int(row["n"])
    sessions = {key: StatusCounts(**counts) for key, counts in sorted(per_session.items())}
    totals = {
        status.value: sum(getattr(c, status.value) for c in sessions.values())
        for status in MessageStatus
    }
    queue = QueueStats(
        counts=StatusCounts(**totals),
        sessions=sessions,
        database_bytes=int(size[0]["bytes"]) if size else 0,
        wal_bytes=0,
    )
    return ServerStatus(
        queue,
        shared_database(shown, daemons),
        paused=[str(row["session_key"]) for row in paused],
    )
