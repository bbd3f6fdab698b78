"""Starting, stopping and asking the daemon, from the command line.

Standard library HTTP only: these commands run in a fresh process each time and should not
pay for an HTTP client library.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from memq.config import Paths, Settings
from memq.exceptions import ControlError
from memq.private_files import read_token
from memq.storage import repairing
from memq.storage.sqlfile import load_queries
from memq.worker import startup_error
from memq.worker.pidfile import DaemonRecord, database_in_use, running_daemon
from memq.worker.status import queue_status

STATUSES = ("pending", "processing", "processed", "failed")
DAEMON_STDERR_FILE = "daemon.stderr"  # in MEMQ_HOME/logs: what a started daemon wrote there
HEALTH_PATH = "/api/health"


@dataclass(frozen=True, slots=True)
class ApiResponse:
    status: int
    body: Any


def request_bytes(
    settings: Settings,
    method: str,
    path: str,
    data: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 5.0,
    port: int | None = None,
) -> tuple[int, bytes]:
    """Call the daemon's API with the token from ``MEMQ_HOME/token``; the status and the raw
    body, error answers included. Raises ``OSError`` when the daemon does not answer and
    ``UnsafeFileError`` when the token file is not memq's own."""
    headers = {"Content-Type": content_type}
    # Health needs no token. Without a token file (the daemon never ran) the daemon answers
    # 401, if anything answers. The file is never followed, only memq's own, never quoted.
    if path != HEALTH_PATH and os.path.lexists(settings.paths.token):
        token = read_token(str(settings.paths.token))
        headers["Authorization"] = f"Bearer {token}"
    url = f"http://127.0.0.1:{port or settings.port}{path}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def request(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float = 5.0,
    port: int | None = None,
) -> ApiResponse:
    """``request_bytes`` for JSON both ways."""
    data = None if body is None else json.dumps(body).encode()
    status, raw = request_bytes(settings, method, path, data, timeout=timeout, port=port)
    try:
        parsed = json.loads(raw or b"null")
    except ValueError:
        parsed = {"error": raw.decode("utf-8", "replace")}
    return ApiResponse(status, parsed)


def is_healthy(settings: Settings, port: int | None = None) -> bool:
    """Whether a memq daemon answers ``/api/health`` on the port."""
    try:
        response = request(settings, "GET", HEALTH_PATH, timeout=1.0, port=port)
    except (OSError, ValueError):
        return False
    return response.status == 200 and isinstance(response.body, dict)


def start(settings: Settings, *, timeout: float = 20.0) -> tuple[DaemonRecord, bool]:
    """Start the daemon in the background and wait until it is healthy.

    Returns its record and whether this call started it (False: it was already running).
    """
    paths = settings.paths
    record = running_daemon(paths.pidfile, paths.database)
    if record is not None and is_healthy(settings, record.port):
        return record, False
    home = str(paths.home)
    problem = startup_error.home_write_problem(home)
    if problem is not None:
        raise ControlError(f"cannot start: {problem}")
    _refuse_while_repairing(home)
    try:
        paths.create_home()
        stderr = open(paths.logs / DAEMON_STDERR_FILE, "wb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise ControlError(
            f"cannot start: {startup_error.home_write_problem(home) or startup_error.describe(exc)}"
        ) from None
    with stderr:
        child = subprocess.Popen(
            [sys.executable, "-m", "memq", "serve", "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=True,  # survives the terminal or hook that started it
            close_fds=True,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        exit_code = child.poll()
        if exit_code is not None:
            record = running_daemon(paths.pidfile, paths.database)
            if record is not None and is_healthy(settings, record.port):
                return record, False  # another start won the race; fine
            _refuse_while_repairing(home)
            if database_in_use(paths.database):
                # Another daemon (a hook started one) holds the database and is starting:
                # wait for it as for ours.
                time.sleep(0.05)
                continue
            raise ControlError(
                f"the daemon could not start: {exit_reason(paths, child.pid, exit_code)}"
            )
        record = running_daemon(paths.pidfile, paths.database)
        if record is not None and is_healthy(settings, record.port):
            return record, record.pid == child.pid
        time.sleep(0.05)
    raise ControlError(f"the daemon did not become healthy within {timeout:g} s (see {paths.logs})")


def _refuse_while_repairing(home: str) -> None:
    pid = repairing.repairing_pid(home)
    if pid is not None:
        raise ControlError(
            f"cannot start: memq repair (pid {pid}) is rebuilding the database; "
            "start memq once it is done"
        )


def exit_reason(paths: Paths, pid: int, exit_code: int) -> str:
    """Why the daemon ``pid`` exited at start: what it recorded
    (``memq.worker.startup_error``), else the last line it wrote to stderr that says
    something (not a traceback's frame or ``+---`` line)."""
    entry = startup_error.read(str(paths.home))
    if entry is not None and entry.get("pid") == pid:
        return str(entry["reason"])
    try:
        text = (paths.logs / DAEMON_STDERR_FILE).read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    lines = [line.strip() for line in text.splitlines()]
    told = [line for line in lines if line.startswith("memq: ")]
    if told:
        return told[-1].removeprefix("memq: ").removeprefix("cannot start: ")
    meaningful = [line.strip("|+- ") for line in lines if _says_something(line)]
    if meaningful:
        return meaningful[-1]
    if exit_code < 0:
        return f"it was killed by signal {-exit_code} and said nothing"
    return f"it exited with status {exit_code} and said nothing"


def _says_something(line: str) -> bool:
    bare = line.strip("|+-^~ ")
    return bool(bare) and not bare.startswith(("Traceback", "File ", "During handling"))


def stop(settings: Settings, *, timeout: float | None = None) -> DaemonRecord | None:
    """Ask the daemon to stop (SIGTERM) and wait until its process is gone.

    Returns the record of the daemon that was stopped, or None if none was running.
    """
    paths = settings.paths
    record = running_daemon(paths.pidfile, paths.database)
    if record is None:
        return None
    os.kill(record.pid, signal.SIGTERM)
    database = record.database_path(paths.database)
    deadline = time.monotonic() + (timeout or settings.shutdown_grace + 15)
    while time.monotonic() < deadline:
        if not _alive(record.pid) or not database_in_use(database):
            _wait_gone(record.pid, deadline)
            return record
        time.sleep(0.05)
    raise ControlError(f"memq (pid {record.pid}) did not stop within the timeout")


def status(settings: Settings) -> dict[str, Any]:
    """The daemon's status, or, when it is down, what the database says."""
    paths = settings.paths
    record = running_daemon(paths.pidfile, paths.database)
    if record is not None:
        try:
            response = request(settings, "GET", "/api/status", port=record.port)
        except OSError:
            response = None
        if response is not None and response.status == 200:
            body: dict[str, Any] = response.body
            return body
    return offline_status(settings, starting=record is not None)


def offline_status(settings: Settings, *, starting: bool = False) -> dict[str, Any]:
    """Status read straight from the database file, for when no daemon answers."""
    database = settings.paths.database
    counts = dict.fromkeys(STATUSES, 0)
    sessions: dict[str, dict[str, int]] = {}
    paused: list[str] = []
    if database.exists():
        conn = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=5)
        try:
            query = load_queries("queue")["count_by_session_and_status"]
            for session_id, state, n in conn.execute(query):
                sessions.setdefault(session_id, dict.fromkeys(STATUSES, 0))[state] = n
                counts[state] += n
            paused_query = load_queries("session_config")["paused_sessions"]
            paused = [str(row[0]) for row in conn.execute(paused_query)]
        except sqlite3.Error:
            pass  # a database without these tables yet: nothing counted, nothing paused
        finally:
            conn.close()
    wal = database.with_name(database.name + "-wal")
    return {
        "state": "starting" if starting else "stopped",
        "pid": None,
        "port": settings.port,
        **queue_status(counts, dict(sorted(sessions.items()))),
        "active_session_count": 0,
        "processing": False,
        "active_generators": 0,
        "paused_sessions": paused,
        "paused_processors": [],  # only a running daemon knows which keys it lacks
        "ephemeral": False,
        "tracked_sessions": 0,
        "session_ttl": settings.session_ttl,
        "database_bytes": database.stat().st_size if database.exists() else 0,
        "wal_bytes": wal.stat().st_size if wal.exists() else 0,
    }


def _alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (an exited one its parent has not reaped is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return True  # no procfs: trust kill()
    return stat.rpartition(")")[2].split()[:1] != ["Z"]


def _wait_gone(pid: int, deadline: float) -> None:
    # The lock is released a moment before the process has fully exited.
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
