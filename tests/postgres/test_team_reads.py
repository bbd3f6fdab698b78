"""A laptop's context and search merge local and team memory (issue 17), end to end: a real
``memq serve --team`` on PostgreSQL and laptops A (alice) and B (bob), real ``memq serve``
daemons on SQLite with their own MEMQ_HOMEs, in one git repository. A's session, forwarded
and processed on the server, reaches B's SessionStart context (the real ``memq hook``) and
B's ``memq search``, labelled ``[alice]``; A sees its own records once; a key scoped to
another project reads nothing of this one; with the server down, B's hook still answers at
once, from its cache."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.faults.kit import keep_hooks_from_spawning
from tests.helpers.daemon import Daemon
from tests.helpers.processes import run_module
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_forwarding_end_to_end import (
    PROJECT,
    git_repository,
    laptop,
    prompt,
    wait_for,
)
from tests.postgres.test_team_server import TeamServer

OTHER = "github.com/acme/other"
WORD = "jitterbackoff"  # in A's tool call only: what B searches for


def hook(daemon: Daemon, payload: dict[str, Any]) -> tuple[str, float]:
    """The real ``memq hook`` against ``daemon``: what it printed, and its seconds."""
    keep_hooks_from_spawning(daemon.home)
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "memq", "hook"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env=daemon.env,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode(), time.monotonic() - started


def session_start(session: str, repo: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "SessionStart",
        "session_id": session,
        "cwd": str(repo),
        "source": "startup",
    }


def a_tool_call(session: str, repo: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": str(repo),
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{session}_001",
        "tool_input": {"command": f"pytest tests/test_{WORD}.py"},
        "tool_response": {"stdout": "3 passed", "stderr": "", "interrupted": False},
    }


def team_context_read(daemon: Daemon) -> dict[str, Any]:
    """The daemon's cached team context of PROJECT, once a refresh worked."""

    def read() -> dict[str, Any] | None:
        with daemon.client() as client:
            upstream = client.get("/api/status").json()["upstream"]
        items = upstream["team_context"]["items"]
        return next(
            (i for i in items if i["project"] == PROJECT and i["age_seconds"] is not None), None
        )

    found: dict[str, Any] | None = wait_for(read, timeout=15)
    assert found is not None, "the team context was never read"
    return found


def test_laptops_share_context_and_search_each_record_once(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice_key, bob_key = team.key("alice", PROJECT), team.key("bob", PROJECT)
    alice = laptop(tmp_path / "alice", alice_key, team.team_url)
    bob = laptop(tmp_path / "bob", bob_key, team.team_url)
    carol = team.key("carol", OTHER)
    try:
        alice.start()
        bob.start()
        # A's session, forwarded and processed on the server.
        with alice.client() as client:
            for body in (prompt("a1", 0, repo), a_tool_call("a1", repo)):
                assert client.post("/api/events", json=body).status_code in (200, 202)
        assert wait_for(
            lambda: pg_schema.query("SELECT count(*) FROM observations WHERE author = 'alice'")[0][
                0
            ]
        )
        sessions = pg_schema.query("SELECT DISTINCT project FROM sessions")
        assert sessions == [(PROJECT,)]  # filed under the repository, not A's directory
        alice.wait_idle()

        # B: the first SessionStart asks for the team's context (answered from the cache,
        # empty yet); the next session's context holds A's work, labelled.
        first, _ = hook(bob, session_start("b1", repo))
        assert "[alice]" not in first
        team_context_read(bob)
        second, _ = hook(bob, session_start("b2", repo))
        assert "[alice]" in second, second
        assert WORD in second

        # B's memq search finds A's record, labelled; the JSON marks it the team's.
        found = run_module("memq", "search", WORD, env=bob.env, cwd=repo)
        assert found.returncode == 0, found.stderr
        assert f"[alice] Ran `pytest tests/test_{WORD}.py`" in found.stdout, found.stdout
        as_json = run_module("memq", "search", WORD, "--json", env=bob.env, cwd=repo)
        items = json.loads(as_json.stdout)["items"]
        assert [(i["author"], i.get("team")) for i in items] == [("alice", True)]

        # A: its own records come from local memory, once, unlabelled; the server leaves
        # out A's records from A's machine.
        hook(alice, session_start("a2", repo))
        team_context_read(alice)
        own, _ = hook(alice, session_start("a3", repo))
        assert own.count(WORD) == 1, own
        assert "[alice]" not in own
        with alice.client() as client:
            hits = client.get("/api/search", params={"q": WORD, "cwd": str(repo)}).json()
        assert [(h["author"], h.get("team")) for h in hits["items"]] == [(None, None)]

        # Without exclude_machine (mode forward: local memory holds nothing), the server's
        # context holds the caller's own records too, unlabelled for their author.
        def server_context(token: str) -> str:
            answer = httpx.get(
                f"{team.team_url}/api/team/v1/context",
                params={"project": PROJECT},
                headers={"Authorization": f"Bearer {token}"},
                timeout=10,
            )
            assert answer.status_code == 200, answer.text
            text: str = answer.json()["context"]
            return text

        forwarded = server_context(alice_key)
        assert WORD in forwarded
        assert "[alice]" not in forwarded
        assert "[alice]" in server_context(bob_key)

        # A key scoped to another project reads nothing of this one, by either route.
        for path in ("context", "search"):
            answer = httpx.get(
                f"{team.team_url}/api/team/v1/{path}",
                params={"project": PROJECT, "q": WORD},
                headers={"Authorization": f"Bearer {carol}"},
                timeout=10,
            )
            assert answer.status_code == 403, answer.text
        answer = httpx.get(f"{team.team_url}/api/team/v1/context", params={"project": PROJECT})
        assert answer.status_code == 401

        # The server down: B's SessionStart answers at once, from its cache; search says
        # the team was not searched and answers local hits.
        team.daemon.kill()
        down, seconds = hook(bob, session_start("b3", repo))
        assert "[alice]" in down, down
        assert seconds < 3
        alone = run_module("memq", "search", WORD, env=bob.env, cwd=repo)
        assert alone.returncode == 0
        assert "team memory not searched" in alone.stderr
    finally:
        alice.kill()
        bob.kill()
