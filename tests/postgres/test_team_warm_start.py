"""A laptop restarted after working in a repository has the team's context at its FIRST
SessionStart after the restart (issue 17; memq.team.warm_start): a real ``memq serve --team``
on PostgreSQL, laptop A (alice) whose session there becomes the team's memory, and laptop B
(bob), a real daemon on SQLite, that worked in the same repository before, restarted. B's
daemon reads the team context of its recent projects at start, before any SessionStart asks,
so the first one's text (the real ``memq hook``) holds A's work, labelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.helpers.daemon import Daemon
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_forwarding_end_to_end import (
    PROJECT,
    git_repository,
    laptop,
    prompt,
    tool_call,
    wait_for,
)
from tests.postgres.test_team_reads import WORD, a_tool_call, hook, session_start
from tests.postgres.test_team_server import TeamServer


def team_context_read(daemon: Daemon, timeout: float = 30) -> None:
    """Wait until ``daemon`` has read PROJECT's team context; fail naming what it has."""

    def items() -> list[dict[str, Any]]:
        with daemon.client() as client:
            upstream = client.get("/api/status").json()["upstream"]
        found: list[dict[str, Any]] = upstream["team_context"]["items"]
        return found

    def read() -> bool:
        return any(i["project"] == PROJECT and i["age_seconds"] is not None for i in items())

    assert wait_for(read, timeout=timeout), f"never read: {items()}"


def test_a_restarted_laptops_first_session_start_has_the_teams_context(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice = laptop(tmp_path / "alice", team.key("alice", PROJECT), team.team_url)
    bob = laptop(tmp_path / "bob", team.key("bob", PROJECT), team.team_url)
    try:
        # B works in the repository (no SessionStart: nothing asks for the team's context),
        # then its daemon stops.
        bob.start()
        with bob.client() as client:
            for body in (prompt("b1", 0, repo), tool_call("b1", 0, repo)):
                assert client.post("/api/events", json=body).status_code in (200, 202)
        bob.wait_idle()
        assert bob.stop() == 0

        # A's session reaches the server and becomes the team's memory.
        alice.start()
        with alice.client() as client:
            for body in (prompt("a1", 0, repo), a_tool_call("a1", repo)):
                assert client.post("/api/events", json=body).status_code in (200, 202)
        assert wait_for(
            lambda: pg_schema.query("SELECT count(*) FROM observations WHERE author = 'alice'")[0][
                0
            ]
        )

        # B starts again: its recent project's team context is read with no session asking.
        bob.start()
        team_context_read(bob)
        first, _ = hook(bob, session_start("b2", repo))
        assert "[alice]" in first, first
        assert WORD in first
    finally:
        alice.kill()
        bob.kill()


def test_a_sessions_first_event_reads_its_projects_team_context(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    """A session begun while the daemon was down (its SessionStart written by the hook
    directly): its first event through the daemon asks for the team context, so the next
    SessionStart (a /clear, another session) has it."""
    repo = git_repository(tmp_path / "repo")
    alice = laptop(tmp_path / "alice", team.key("alice", PROJECT), team.team_url)
    bob = laptop(tmp_path / "bob", team.key("bob", PROJECT), team.team_url)
    try:
        alice.start()
        with alice.client() as client:
            for body in (prompt("a1", 0, repo), a_tool_call("a1", repo)):
                assert client.post("/api/events", json=body).status_code in (200, 202)
        assert wait_for(
            lambda: pg_schema.query("SELECT count(*) FROM observations WHERE author = 'alice'")[0][
                0
            ]
        )
        bob.start()  # a new laptop: no recent project to read at start
        with bob.client() as client:
            assert client.post("/api/events", json=prompt("b1", 0, repo)).status_code == 202
        team_context_read(bob)
        cleared, _ = hook(bob, {**session_start("b1", repo), "source": "clear"})
        assert "[alice]" in cleared, cleared
    finally:
        alice.kill()
        bob.kill()
