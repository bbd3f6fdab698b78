"""What the browser tests and ``scripts/screenshots.py`` share: finding a Chromium, a daemon
holding some memory, and a browser page logged in through ``memq open --print``."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

from tests.helpers.daemon import Daemon

CHROMIUM_PATHS = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
FIXTURES = Path(__file__).parents[1] / "fixtures" / "claude-code"
# The captured Claude Code run: a prompt "create out.txt", `echo hello > out.txt`, its end.
SEED = ("SessionStart", "UserPromptSubmit", "PostToolUse.Bash", "Stop")


def find_chromium() -> str | None:
    """A Chromium to drive: ``MEMQ_CHROMIUM``, else Debian's, else one on PATH."""
    configured = os.environ.get("MEMQ_CHROMIUM")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    for path in CHROMIUM_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("chromium")


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """One captured Claude Code hook payload, with ``changes``."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return {**data, **changes}


def seed(daemon: Daemon) -> None:
    """Give the daemon one processed session to show."""
    with daemon.client() as client:
        for name in SEED:
            assert client.post("/api/events", json=sample(name)).is_success
    daemon.wait_idle()


def add_failed_message(daemon: Daemon, error: str = "model said no") -> None:
    """A failed observation in the queue, as a processor that gave up would leave it."""
    payload = sample("PostToolUse.Write", session_id="failing")
    conn = sqlite3.connect(daemon.home / "memq.db")
    with conn:
        conn.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, status, attempts,"
            " available_at, created_at, finished_at, last_error) VALUES"
            " ('claude-code:failing', 'observation', ?, 'failed', 3, 0, 0, 1, ?)",
            (json.dumps(payload), error),
        )
    conn.close()


def login_url(daemon: Daemon) -> str:
    """The one-time login URL ``memq open --print`` gives."""
    done = daemon.memq("open", "--print")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip().splitlines()[-1]
    assert url.startswith(f"{daemon.url}/login?code="), url
    return url
