"""What the fault scenarios share: the real ``memq`` command (a hook, the CLI), a hook payload,
a home a daemon ran in, and the queue and the logs as an outside tool reads them.

A scenario's events go through the real ``memq hook``, one process each. Unless a scenario
says otherwise the hook is kept from starting a daemon of its own (a fresh spawn stamp), so
that the scenario decides when a daemon starts.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from tests.helpers.daemon import Daemon
from tests.helpers.processes import project_env
from tests.helpers.rows import table

MEMQ = Path(sys.executable).with_name("memq")
SPAWN_STAMP = "spawn.stamp"


# -- hook payloads and the hook ---------------------------------------------------------------


def tool_call(
    session_id: str, tool_use_id: str, *, cwd: str, echo: str, stdout: str | None = None
) -> dict[str, Any]:
    """A Bash ``echo <echo>`` tool call's PostToolUse payload; its dedupe key is
    ``tool:<tool_use_id>``. Its output is ``stdout``, by default what echo prints."""
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session_id,
        "transcript_path": "/nonexistent/transcript.jsonl",
        "cwd": cwd,
        "tool_name": "Bash",
        "tool_use_id": tool_use_id,
        "tool_input": {"command": f"echo {echo}"},
        "tool_response": {
            "stdout": f"{echo}\n" if stdout is None else stdout,
            "stderr": "",
            "interrupted": False,
        },
    }


def keep_hooks_from_spawning(home: Path) -> None:
    """A fresh spawn stamp (its time is what the hook reads): the hook believes it started the
    daemon a moment ago. Creates ``home`` (0700) if missing."""
    stamp = home / SPAWN_STAMP
    try:
        home.mkdir(mode=0o700, parents=True, exist_ok=True)
        stamp.touch(mode=0o600)
        stamp.chmod(0o600)  # as memq writes it: the file-mode tests look at every file
    except OSError:
        # A read-only home: the hook cannot write a stamp either, and a daemon it started
        # could not run there. Nothing to do.
        return


def run_hook(
    home: Path, port: int | str, payload: dict[str, Any], *, spawning: bool = False
) -> subprocess.CompletedProcess[bytes]:
    """Run the real ``memq hook`` with ``payload`` (as JSON) on stdin, ``MEMQ_HOME`` ``home``
    and ``MEMQ_PORT`` ``port``, to its end, whatever its exit status.

    Args:
        spawning: leave the hook free to start a daemon as it does when none answers (the
            spawn stamp removed, if any) instead of keeping it from doing so.
    """
    if spawning:
        (home / SPAWN_STAMP).unlink(missing_ok=True)
    else:
        keep_hooks_from_spawning(home)
    return subprocess.run(
        [str(MEMQ), "hook"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env=project_env({"MEMQ_HOME": str(home), "MEMQ_PORT": str(port)}),
    )


def hook_output(done: subprocess.CompletedProcess[bytes]) -> str:
    """What a hook printed, its stdout then its stderr, as text."""
    return (done.stdout + done.stderr).decode(errors="replace")


def memq(home: Path, port: int, *args: str, timeout: float = 120) -> tuple[int, str]:
    """Run the real ``memq`` command; its exit code and its stdout and stderr together."""
    result = subprocess.run(
        [str(MEMQ), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env=project_env({"MEMQ_HOME": str(home), "MEMQ_PORT": str(port)}),
    )
    return result.returncode, result.stdout + result.stderr


# -- a home a daemon ran in ---------------------------------------------------------------------


def daemon_with(home: Path, events: Sequence[dict[str, Any]] = ()) -> Daemon:
    """A real daemon started in ``home`` that took ``events`` through its API and processed
    them all (killed if it does not)."""
    daemon = Daemon(home)
    daemon.start()
    try:
        with daemon.client() as client:
            for event in events:
                client.post("/api/events", json=event).raise_for_status()
        daemon.wait_idle(timeout=120)
    except BaseException:
        daemon.kill()
        raise
    return daemon


def ran_home(scratch: Path, events: Sequence[dict[str, Any]] = ()) -> Daemon:
    """``daemon_with`` in ``scratch/home``, then stopped: its database, token, spool directory
    and logs exist. The daemon's ``home`` and ``port`` are the home's."""
    daemon = daemon_with(scratch / "home", events)
    daemon.stop()
    return daemon


# -- what memq kept ---------------------------------------------------------------------------


def queue_statuses(database: Path, session_id: str) -> dict[str, list[str]]:
    """The status of each queue row of session ``claude-code:<session_id>``, by dedupe key,
    read-only (an error if the database cannot be read)."""
    statuses: dict[str, list[str]] = {}
    for row in table(
        database,
        "SELECT dedupe_key, status FROM pending_messages WHERE session_id = ? ORDER BY id",
        f"claude-code:{session_id}",
    ):
        statuses.setdefault(str(row["dedupe_key"]), []).append(str(row["status"]))
    return statuses


def queue_counts(
    database: Path, session_id: str, keys: Iterable[str], *, status: str | None = None
) -> dict[str, int]:
    """How many queue rows of session ``claude-code:<session_id>`` each of ``keys`` has (only
    those in ``status``, if given), read-only; all 0 while there is no database or it cannot
    be read (a damaged file, one being replaced)."""
    keys = list(keys)
    if not database.exists():
        return dict.fromkeys(keys, 0)
    try:
        found = queue_statuses(database, session_id)
    except sqlite3.Error:
        return dict.fromkeys(keys, 0)
    return {
        key: sum(status is None or seen == status for seen in found.get(key, ())) for key in keys
    }


def json_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON objects of a log file, one a line (other lines passed over)."""
    if not path.exists():
        return []
    lines: list[dict[str, Any]] = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            found = json.loads(line)
        except ValueError:
            continue
        if isinstance(found, dict):
            lines.append(found)
    return lines


def hook_log(home: Path) -> list[dict[str, Any]]:
    """What the hooks logged in ``home`` (``hook.log``): their problems and fallbacks."""
    return json_lines(home / "logs" / "hook.log")


def daemon_log(home: Path) -> list[dict[str, Any]]:
    """The daemon's log lines in ``home`` (``memq.log``, then its rotated files)."""
    return [line for path in sorted((home / "logs").glob("memq.log*")) for line in json_lines(path)]
