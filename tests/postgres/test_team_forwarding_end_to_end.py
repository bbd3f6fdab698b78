"""Team memory end to end: a real ``memq serve --team`` on a fresh PostgreSQL schema and two
laptops (real ``memq serve`` daemons, each with its own MEMQ_HOME and SQLite database,
``MEMQ_UPSTREAM`` pointing at the team server, a key made by ``memq keys create`` in its
``upstream.key``, 0600), working in one git repository. Every event reaches the server
exactly once, in its session's order, and the server turns it into memory."""

from __future__ import annotations

import shutil
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from memq.team.intake import parse_origin_key
from tests.helpers.daemon import Daemon
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_server import TeamServer

PROJECT = "github.com/acme/team-app"
REMOTE = "git@github.com:Acme/Team-App.git"


def git_repository(directory: Path) -> Path:
    """A real repository (``git init``) whose origin is REMOTE."""
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    directory.mkdir()
    for args in (["init", "-q"], ["remote", "add", "origin", REMOTE]):
        subprocess.run(["git", *args], cwd=directory, check=True, capture_output=True)
    return directory


def laptop(home: Path, token: str, team_url: str) -> Daemon:
    home.mkdir(mode=0o700)
    key = home / "upstream.key"
    key.write_text(token + "\n")
    key.chmod(0o600)
    return Daemon(home, env={"MEMQ_UPSTREAM": team_url})


def prompt(session: str, n: int, cwd: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": session,
        "cwd": str(cwd),
        "prompt": f"{session} asks for step {n}",
        "prompt_id": f"{session}-{n}",
    }


def tool_call(session: str, n: int, cwd: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": str(cwd),
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{session}_{n:03d}",
        "tool_input": {"command": f"pytest tests/test_step_{n}.py"},
        "tool_response": {"stdout": f"{n} passed", "stderr": "", "interrupted": False},
    }


def local_rows(daemon: Daemon) -> list[tuple[int, str]]:
    conn = sqlite3.connect(daemon.home / "memq.db")
    try:
        rows = conn.execute("SELECT id, session_id FROM pending_messages ORDER BY id").fetchall()
    finally:
        conn.close()
    return [(int(i), str(s)) for i, s in rows]


def wait_for(what: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def send(sessions: dict[Daemon, list[str]], repo: Path, steps: int) -> None:
    """A prompt and a tool call per session and step, the sessions interleaved, through
    each laptop's own intake (what ``memq hook`` posts)."""
    clients = {daemon: daemon.client() for daemon in sessions}
    try:
        for n in range(steps):
            for daemon, names in sessions.items():
                for name in names:
                    for body in (prompt(name, n, repo), tool_call(name, n, repo)):
                        answer = clients[daemon].post("/api/events", json=body)
                        assert answer.status_code in (200, 202), answer.text
    finally:
        for client in clients.values():
            client.close()


def by_origin(
    rows: list[tuple[Any, ...]], laptops: dict[str, Daemon], key_ids: dict[str, str]
) -> dict[str, list[int]]:
    """Each session's local ids in the server's order, checking that the server's rows are
    the laptops' events, each once (by origin: the key's name, the machine, the local id)."""
    expected: dict[str, str] = {}
    for owner, daemon in laptops.items():
        for local_id, session in local_rows(daemon):
            expected[f"{owner}:{local_id}"] = session
    assert set(laptops) <= set(key_ids)
    got: dict[str, list[int]] = {}
    for _, session, dedupe, _ in rows:
        origin = parse_origin_key(str(dedupe))
        assert origin is not None, dedupe
        name, machine, local_id = origin
        assert machine == socket.gethostname()
        assert expected.pop(f"{name}:{local_id}") == session
        got.setdefault(session, []).append(local_id)
    assert expected == {}, "laptop events the server never got"
    return got


def test_two_laptops_events_reach_the_team_once_in_order_and_become_memory(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice = laptop(tmp_path / "alice", team.key("alice", REMOTE), team.team_url)
    bob = laptop(tmp_path / "bob", team.key("bob", PROJECT), team.team_url)
    sessions = {alice: ["a1", "a2"], bob: ["b1"]}
    steps = 6
    total = 3 * steps * 2
    try:
        for daemon in sessions:
            daemon.start()
        send(sessions, repo, steps)

        def server_rows() -> list[tuple[Any, ...]]:
            return pg_schema.query(
                "SELECT id, session_id, dedupe_key, status FROM pending_messages ORDER BY id"
            )

        def all_processed() -> list[tuple[Any, ...]]:
            rows = server_rows()
            done = len(rows) >= total and all(row[3] == "processed" for row in rows)
            return rows if done else []

        rows = wait_for(all_processed)
        assert len(rows) == total, f"the server has {server_rows()}"  # once each
        key_ids = {
            name: key_id for key_id, name in pg_schema.query("SELECT key_id, name FROM api_keys")
        }
        got = by_origin(rows, {"alice": alice, "bob": bob}, key_ids)
        # Each session's events in the order they happened on its laptop.
        assert set(got) == {"claude-code:a1", "claude-code:a2", "claude-code:b1"}
        for session, local_ids in got.items():
            assert len(local_ids) == steps * 2
            assert local_ids == sorted(local_ids), session

        # Who owns each session, and the memory the server made of them.
        owners = dict(pg_schema.query("SELECT session_id, key_id FROM team_sessions"))
        assert owners == {
            "claude-code:a1": key_ids["alice"],
            "claude-code:a2": key_ids["alice"],
            "claude-code:b1": key_ids["bob"],
        }
        prompts = pg_schema.query(
            "SELECT session_key, count(*) FROM prompts GROUP BY session_key ORDER BY session_key"
        )
        assert prompts == [(s, steps) for s in sorted(got)]
        observed = pg_schema.query("SELECT count(DISTINCT message_id) FROM observations")
        assert observed == [(3 * steps,)]

        # The laptops' outboxes emptied; each laptop processed its own events too (both).
        for daemon, names in sessions.items():
            assert daemon.wait_idle()["counts"]["processed"] == len(names) * steps * 2
            with daemon.client() as client:

                def drained(c: httpx.Client = client) -> dict[str, Any] | None:
                    found: dict[str, Any] = c.get("/api/status").json()["upstream"]
                    return found if found["waiting"] == 0 else None

                upstream = wait_for(drained)
            assert (upstream["refused"], upstream["local_only"]) == (0, 0)
            assert upstream["forwarded"] == len(names) * steps * 2
    finally:
        for daemon in sessions:
            daemon.kill()
