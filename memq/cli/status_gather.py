"""What ``memq status`` shows: the daemon's status document, or the same document read from
the files when no daemon answers (``memq.worker.status_report``), with what only the CLI
checks: the database file itself, why the last daemon failed, the home, and the settings."""

from __future__ import annotations

import os
import sqlite3
import time
from typing import Any, Final

from memq import startup_error
from memq.client.daemon_api import request
from memq.config import Settings, settings_report
from memq.env import RESERVE_FILE
from memq.model_cost import read_budget_status
from memq.queue import MessageStatus, QueueStats, StatusCounts
from memq.storage import integrity
from memq.storage.sqlfile import load_queries
from memq.worker.pidfile import running_daemon
from memq.worker.status_report import StatusReport, offline_upstream, spool_counts

# ``memq status`` checks the database file itself, read-only, for at most this long: that is
# about 1.5 GB read from the page cache, 200 MB from a cold disk (``memq.storage.integrity``);
# a larger file is checked in part, and the daemon checks all of it when it starts.
STATUS_CHECK_SECONDS: Final = 1.0
# With no daemon to say how its writes fare, less than this free counts as a full disk.
OFFLINE_FULL_BELOW_BYTES: Final = 1024 * 1024


def gather_status(settings: Settings) -> dict[str, Any]:
    """The status ``memq status`` shows (``--json`` prints it as it is)."""
    paths = settings.paths
    home = str(paths.home)
    record = running_daemon(paths.pidfile, paths.database)
    status = None if record is None else _daemon_status(settings, record.port)
    if status is None:
        status = offline_status(settings, starting=record is not None).as_dict()
    # A daemon older than these keys did not count them: count them here.
    if "spool" not in status:
        status["spool"] = spool_counts(home)
    if "disk" not in status:
        status["disk"] = offline_disk(home, settings.reserve_bytes)
    if settings.database_url:
        # A server's database: no file here to check or to count model tokens in.
        status.setdefault("database_check", None)
        status.setdefault("models", None)
    # The file itself, read-only, whether or not a daemon answered (it checked at its start).
    status.setdefault("database_check", database_check(str(paths.database), home))
    status.setdefault("startup_error", startup_failure(home, status.get("state")))
    status.setdefault("home_problem", startup_error.home_write_problem(home))
    add_settings(status, settings)
    # Today's model tokens and the daily budget, from the file (the same with or without a
    # daemon: the budget counts the rows there).
    status.setdefault(
        "models",
        read_budget_status(paths.database, settings.daily_tokens or None, settings.model_prices),
    )
    return status


def _daemon_status(settings: Settings, port: int) -> dict[str, Any] | None:
    """The running daemon's answer to ``GET /api/status``; None when it gives none."""
    try:
        response = request(settings, "GET", "/api/status", port=port)
    except OSError:
        return None
    if response.status != 200:
        return None
    body: dict[str, Any] = response.body
    return body


def offline_status(settings: Settings, *, starting: bool = False) -> StatusReport:
    """The status read straight from the files, for when no daemon answers; ``starting``
    when its pid file says one runs."""
    database = settings.paths.database
    home = str(settings.paths.home)
    if settings.database_url:
        return _server_status(settings, starting=starting)
    counts = dict.fromkeys(MessageStatus, 0)
    sessions: dict[str, dict[MessageStatus, int]] = {}
    paused: list[str] = []
    upstream: dict[str, Any] | None = None
    if database.exists():
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            query = load_queries("queue")["count_by_session_and_status"]
            for session_id, state, n in conn.execute(query):
                status = MessageStatus(state)
                sessions.setdefault(session_id, dict.fromkeys(MessageStatus, 0))[status] = n
                counts[status] += n
            paused_query = load_queries("session_config")["paused_sessions"]
            paused = [str(row[0]) for row in conn.execute(paused_query)]
            if settings.upstream:  # what waits for the team server, and why
                now_ms = int(time.time() * 1000)
                upstream = offline_upstream(conn, settings.upstream, settings.upstream_mode, now_ms)
        except sqlite3.Error:
            pass  # a database without these tables yet: nothing counted, nothing paused
        finally:
            conn.close()
    wal = database.with_name(database.name + "-wal")
    queue = QueueStats(
        counts=_status_counts(counts),
        sessions={key: _status_counts(sessions[key]) for key in sorted(sessions)},
        database_bytes=database.stat().st_size if database.exists() else 0,
        wal_bytes=wal.stat().st_size if wal.exists() else 0,
    )
    return StatusReport(
        state="starting" if starting else "stopped",
        port=settings.port,
        queue=queue,
        paused_sessions=paused,
        session_ttl=settings.session_ttl,
        disk=offline_disk(home, settings.reserve_bytes),
        spool=spool_counts(home),
        upstream=upstream,
    )


def _server_status(settings: Settings, *, starting: bool) -> StatusReport:
    """``offline_status`` on PostgreSQL: what the server says (other daemons may serve it)."""
    from memq.storage.postgres.url import shown_url
    from memq.worker.status_postgres import read_server_status

    home = str(settings.paths.home)
    found = read_server_status(settings.database_url, shown_url(settings.database_url))
    return StatusReport(
        state="starting" if starting else "stopped",
        port=settings.port,
        queue=found.queue,
        paused_sessions=found.paused,
        session_ttl=settings.session_ttl,
        disk=offline_disk(home, settings.reserve_bytes),
        spool=spool_counts(home),
        postgres=found.postgres,
    )


def _status_counts(counts: dict[MessageStatus, int]) -> StatusCounts:
    return StatusCounts(**{status.value: n for status, n in counts.items()})


def offline_disk(home: str, reserve_bytes: int) -> dict[str, Any]:
    """The ``disk`` key of the status when no daemon answers (the shape of
    ``memq.worker.disk.DiskMonitor.report``): what the files and ``os.statvfs`` say."""
    reserve = os.path.join(home, RESERVE_FILE)
    try:
        info = os.statvfs(home)
        free: int | None = info.f_bavail * info.f_frsize
    except OSError:
        free = None
    full = free is not None and free < OFFLINE_FULL_BELOW_BYTES
    message = (
        f"disk full: {free // 1024} KiB free on the disk of {home}; memq cannot store events "
        "there until some space is freed"
        if full and free is not None
        else None
    )
    return {
        "state": "full" if full else "ok",
        "full": full,
        "accepting": not full,
        "message": message,
        "reserve_path": reserve,
        "reserve_bytes": reserve_bytes,
        "reserve_present": os.path.isfile(reserve) and not os.path.islink(reserve),
        "free_bytes": free,
        "full_since_ms": None,
        "full_for_seconds": None,
        "last_error": None,
    }


def database_check(
    database: str, home: str, *, budget_seconds: float = STATUS_CHECK_SECONDS
) -> dict[str, Any]:
    """The ``database_check`` key of ``memq status``: the file checked read-only within
    ``budget_seconds``; a part it had no time for counts as damaged when the daemon's own
    check of this very file found damage at its last start."""
    found = integrity.check(database, budget_seconds=budget_seconds)
    entry = found.as_dict()
    if found.verdict == integrity.Verdict.UNCHECKED:
        recorded = startup_error.read(home)
        if startup_error.says_damaged(recorded, database):
            assert recorded is not None
            entry["state"] = integrity.Verdict.DAMAGED
            entry["detail"] = f"the daemon found it damaged at {recorded.get('time')}"
    return entry


def startup_failure(home: str, state: object) -> dict[str, Any] | None:
    """The ``startup_error`` key of ``memq status``: why the last daemon could not start
    (or stopped on an error), while none runs. A damaged database is told by
    ``database_check`` instead."""
    if state != "stopped":
        return None
    entry = startup_error.read(home)
    if entry is None or entry.get("kind") == startup_error.Kind.DATABASE_DAMAGED:
        return None
    return entry


def add_settings(status: dict[str, Any], settings: Settings) -> None:
    """Give a ``memq status`` answer its ``settings``: those the running daemon reported it
    runs with, else those of this command (what a daemon started from here would use)."""
    if isinstance(status.get("settings"), dict) and status["settings"]:
        status["settings_view"] = "daemon"
    else:
        env = settings.environment if settings.environment is not None else os.environ
        status["settings"] = settings_report(env)
        status["settings_view"] = "cli"
    status["settings_file"] = str(settings.paths.settings_file)
