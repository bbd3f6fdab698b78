"""Starting and stopping the daemon's process from outside it (``memq start``, ``memq stop``):
a background ``memq serve`` waited for until healthy, SIGTERM waited for until gone."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Final

from memq import startup_error
from memq.client.daemon_api import is_healthy
from memq.config import Paths, Settings
from memq.exceptions import ControlError
from memq.storage import repairing
from memq.worker.pidfile import DaemonRecord, database_in_use, running_daemon

DAEMON_STDERR_FILE: Final = "daemon.stderr"  # in MEMQ_HOME/logs: what a started daemon wrote


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
    (``memq.startup_error``), else the last line it wrote to stderr that says
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
