"""The status document: what ``GET /api/status`` answers and ``memq status --json`` prints.

One shape whichever tells it: the running daemon (``memq.worker.status.live_status``), or the
CLI reading the database file because none answers (``memq.cli.status_gather``). Without a
daemon, what only a running daemon knows is empty: no version, no uptime, nothing active and
nothing it paused. Light imports only: the CLI imports it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from memq.queue import QueueStats


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusReport:
    """The daemon's state, its queue, its disk and its spool; ``as_dict`` is the document."""

    # The daemon's (memq.worker.daemon.DaemonState); with no answer, "starting" while its pid
    # file says one runs, else "stopped".
    state: str
    port: int
    queue: QueueStats
    paused_sessions: Sequence[str]  # sessions whose own ``paused`` setting is true
    session_ttl: float
    disk: Mapping[str, Any]  # memq.worker.disk.DiskMonitor.report's shape
    spool: Mapping[str, int]  # spool_counts' shape
    # What only a running daemon knows: without one, these keep their defaults.
    pid: int | None = None
    version: str | None = None
    processor: str | None = None  # the default processor's name
    started_at: float | None = None
    uptime_seconds: float | None = None
    active_sessions: Sequence[str] = ()
    processing: bool = False
    pause_reason: str | None = None  # why all processing is paused (an API key refused)
    paused_processors: Sequence[Mapping[str, Any]] = ()  # processors lacking their keys
    ephemeral: bool = False
    tracked_sessions: int = 0
    settings: Mapping[str, Any] | None = None  # the settings the daemon runs with
    # Messages being processed now (memq.queue.Queue.processing_messages' shape): a claim
    # outlives the daemon that made it only as a lease to expire, so none without one.
    processing_messages: Sequence[Mapping[str, Any]] = ()
    # On PostgreSQL: the database (its URL without the password) and every live daemon
    # (``shared_database``'s shape); None on SQLite.
    postgres: Mapping[str, Any] | None = None
    # Forwarding to the team server (memq.team.forwarder.Forwarder.status' shape); None
    # when MEMQ_UPSTREAM is not set, or no daemon runs.
    upstream: Mapping[str, Any] | None = None
    # ``memq serve --team``: its listener, keys and recent requests
    # (memq.team.team_status.team_server_status' shape); None otherwise, or no daemon runs.
    team_server: Mapping[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        """The document as JSON-ready values."""
        counts = self.queue.counts
        return {
            "state": self.state,
            "pid": self.pid,
            "port": self.port,
            "version": self.version,
            "processor": self.processor,
            "started_at": self.started_at,
            "uptime_seconds": self.uptime_seconds,
            "counts": counts.as_dict(),
            "failed": counts.failed,
            # The anchor's session manager reported these; tools built for it read them.
            "has_pending_work": counts.pending > 0,
            "queue_depth": counts.pending,
            "active_work": counts.pending + counts.processing,
            "sessions": [
                {"session_id": key, "counts": per_status.as_dict()}
                for key, per_status in self.queue.sessions.items()
            ],
            "active_session_count": len(self.active_sessions),
            "active_generators": len(self.active_sessions),
            "active_sessions": list(self.active_sessions),
            "processing": self.processing,
            "processing_messages": [dict(item) for item in self.processing_messages],
            "paused": self.pause_reason is not None,
            "pause_reason": self.pause_reason,
            "paused_sessions": list(self.paused_sessions),
            "paused_processors": [dict(item) for item in self.paused_processors],
            "ephemeral": self.ephemeral,
            "tracked_sessions": self.tracked_sessions,
            "session_ttl": self.session_ttl,
            "database_bytes": self.queue.database_bytes,
            "wal_bytes": self.queue.wal_bytes,
            "disk": dict(self.disk),
            "spool": dict(self.spool),
            "settings": None if self.settings is None else dict(self.settings),
            "postgres": None if self.postgres is None else dict(self.postgres),
            "upstream": None if self.upstream is None else dict(self.upstream),
            "team_server": None if self.team_server is None else dict(self.team_server),
        }


def offline_upstream(conn: sqlite3.Connection, url: str, mode: str, now_ms: int) -> dict[str, Any]:
    """The ``upstream`` key of the status read from the database, with no daemon running:
    what waits, what was refused or kept local, and the head's last failure (stored with
    it). Nothing is sent meanwhile; whether the server answers is not known."""
    from memq.storage.sqlfile import load_queries  # noqa: PLC0415 - only with a team server

    queries = load_queries("upstream")
    counts = {
        str(state): (int(n), oldest) for state, n, oldest in conn.execute(queries["count_by_state"])
    }
    head = conn.execute(queries["head_waiting"]).fetchone()
    machine = conn.execute(queries["machine"]).fetchone()
    waiting, oldest = counts.get("waiting", (0, None))
    return {
        "url": url,
        "mode": mode,
        "machine": None if machine is None else machine[0],
        "reachable": None,
        "waiting": waiting,
        "oldest_waiting_seconds": None if oldest is None else max(now_ms - int(oldest), 0) / 1000,
        "refused": counts.get("refused", (0, None))[0],
        "local_only": counts.get("local_only", (0, None))[0],
        "forwarded": None,
        "last_error": None if head is None else head[0],
        "last_error_seconds_ago": None,
        "paused": False,
        "paused_reason": None,
        "retry_in_seconds": None
        if head is None or int(head[1]) <= now_ms
        else (int(head[1]) - now_ms) / 1000,
        "offline": True,
    }


def spool_counts(home: str | None) -> dict[str, int]:
    """The ``spool`` key of the status: events waiting in ``MEMQ_HOME/spool`` and files put
    aside in ``spool/rejected`` (none without a home). One directory scan each."""
    if home is None:
        return {"waiting": 0, "rejected": 0}
    from memq.hooks import spool  # noqa: PLC0415 - only the status needs it

    return {"waiting": spool.count_waiting(home), "rejected": spool.count_rejected(home)}


def shared_database(url: str, daemons: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The ``postgres`` key of the status: the database's URL as shown (no password), and
    each live daemon (``PgQueue.daemons``' rows) with its heartbeat's age in seconds."""
    return {
        "database": url,
        "daemons": [
            {
                "id": int(row["id"]),
                "host": str(row["host"]),
                "pid": int(row["pid"]),
                "port": int(row["port"]),
                "sessions": int(row["sessions"]),
                "heartbeat_age_seconds": round(max(int(row["heartbeat_age_ms"]), 0) / 1000, 3),
            }
            for row in daemons
        ],
    }
