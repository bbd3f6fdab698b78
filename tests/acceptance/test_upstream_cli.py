"""``memq upstream list|retry|drop`` end to end: the real ``memq serve``, ``memq hook`` and CLI
against a stand-in of the team server's intake on loopback (``tests.helpers.fake_team``),
with the daemon running (its API) and stopped (the database file itself).

The order contract they pin: a refused event does not hold back the later events of its
session; retried, it reaches the server after them, once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.test_upstream_forwarding import (
    hook,
    laptop,
    no_spawn,
    repository,
    rows,
    upstream_status,
    wait_for,
)
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.fake_team import TeamIntake, TeamServer

BIG = 20_000  # characters of output: one event over the intake's body limit below


@pytest.fixture
def team() -> Iterator[TeamServer]:
    server = TeamServer(TeamIntake(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def stored_tools(team: TeamServer) -> list[str]:
    with team.intake.lock:
        return [str(e["payload"]["tool_use_id"]) for e in team.intake.stored]


def listed(daemon: Daemon, *args: str) -> dict[str, Any]:
    done = daemon.memq("upstream", "list", "--json", *args)
    assert done.returncode == 0, done.stderr
    body: dict[str, Any] = json.loads(done.stdout)
    return body


def test_a_refused_event_is_listed_and_retried_after_its_session_s_later_events(
    tmp_path: Path, team: TeamServer
) -> None:
    repo = repository(tmp_path, "repo", "git@github.com:Team/Repo.git")
    team.intake.max_events_bytes = 8_000  # a request over it: 413
    daemon = laptop(tmp_path, team)
    daemon.start()
    try:
        for n in range(4):
            hook(daemon, "s", n, repo, output="x" * BIG if n == 1 else None)
        wait_for(lambda: len(team.intake.local_ids()) == 3)
        wait_for(lambda: upstream_status(daemon)["refused"] == 1)
        # Not held back: the session's later events went on without the refused one.
        assert stored_tools(team) == ["toolu_s_000", "toolu_s_002", "toolu_s_003"]
        [big] = [i for (i,) in rows(daemon.home, "SELECT id FROM pending_messages ORDER BY id")][
            1:2
        ]

        text = daemon.memq("upstream", "list")
        assert text.returncode == 0, text.stderr
        lines = text.stdout.splitlines()
        assert lines[0].split() == ["ID", "STATE", "AGE", "TRIES", "KIND", "SESSION"]
        assert lines[1].split()[:2] == [str(big), "refused"]
        assert lines[1].split()[-1] == "claude-code:s"
        assert "error: " in lines[2]
        assert "body too large" in lines[2]
        assert "(0 waiting, 1 refused, 0 kept local)" in text.stdout
        assert "memq upstream retry" in text.stdout
        body = listed(daemon)
        [item] = body["items"]
        assert item["message_id"] == big
        assert item["age_seconds"] >= 0
        assert item["attempts"] == 1

        # Wrong ids change nothing, and say why.
        missing = daemon.memq("upstream", "retry", str(big), "999999")
        assert missing.returncode == 1
        assert "no event 999999 in the outbox" in missing.stderr
        usage = daemon.memq("upstream", "retry")
        assert usage.returncode == 2
        assert "give event ids or --all" in usage.stderr
        assert upstream_status(daemon)["refused"] == 1

        # Fixed on the server's side, the event is retried: it arrives last, once.
        team.intake.max_events_bytes = None
        retried = daemon.memq("upstream", "retry", str(big))
        assert retried.returncode == 0, retried.stderr
        assert f"retried 1 event(s): {big}" in retried.stdout
        wait_for(lambda: len(team.intake.local_ids()) == 4)
        wait_for(lambda: upstream_status(daemon)["refused"] == 0)
        assert listed(daemon)["items"] == []
        again = daemon.memq("upstream", "retry", "--all")
        assert again.stdout.strip() == "no refused events to retry"
    finally:
        daemon.kill()
    assert stored_tools(team) == ["toolu_s_000", "toolu_s_002", "toolu_s_003", "toolu_s_001"]
    assert team.intake.duplicates == 0


def test_with_the_daemon_stopped_the_cli_lists_retries_and_drops_on_the_database(
    tmp_path: Path, team: TeamServer
) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    other = repository(tmp_path, "other", "https://github.com/team/other.git")
    plain = tmp_path / "plain"
    plain.mkdir()
    team.intake.refuse_projects = {"github.com/team/other"}
    daemon = laptop(tmp_path, team)
    daemon.start()
    try:
        hook(daemon, "a", 0, repo)
        hook(daemon, "b", 0, other)
        hook(daemon, "b", 1, other)
        hook(daemon, "c", 0, plain)
        hook(daemon, "a", 1, repo)
        wait_for(lambda: (s := upstream_status(daemon))["refused"] == 2 and s["local_only"] == 1)
        wait_for(lambda: len(team.intake.local_ids()) == 2)
        daemon.stop()
        no_spawn(daemon.home)
        ids = {state: [i for (i,) in rows(daemon.home, sql)] for state, sql in _BY_STATE.items()}
        assert len(ids["refused"]) == 2
        assert len(ids["local_only"]) == 1

        # Read from the database: no daemon answers.
        listing = daemon.memq("upstream", "list")
        assert listing.returncode == 0, listing.stderr
        assert "daemon not running" in listing.stderr
        assert "(0 waiting, 2 refused, 1 kept local)" in listing.stdout
        assert listing.stdout.count("project out of scope") == 2
        local = listed(daemon, "--state", "local_only")
        assert [i["message_id"] for i in local["items"]] == ids["local_only"]
        assert "no git repository with a remote" in str(local["items"])

        # Drop: only what will not be sent, by id, logged; a wrong id drops nothing.
        refused_one, refused_two = ids["refused"]
        waiting_id = _insert_waiting(daemon)
        wrong = daemon.memq("upstream", "drop", str(ids["local_only"][0]), str(waiting_id))
        assert wrong.returncode == 1
        assert f"event {waiting_id} is waiting" in wrong.stderr
        assert rows(daemon.home, _COUNT) == [(4,)]
        dropped = daemon.memq("upstream", "drop", str(ids["local_only"][0]))
        assert dropped.returncode == 0, dropped.stderr
        assert f"dropped event {ids['local_only'][0]} (local_only" in dropped.stdout
        assert rows(daemon.home, _COUNT) == [(3,)]
        [entry] = [e for e in _log_entries(daemon) if e.get("event") == "upstream.dropped"]
        assert entry["message_id"] == ids["local_only"][0]
        assert entry["state"] == "local_only"
        assert rows(daemon.home, "SELECT count(*) FROM pending_messages") == [(6,)]  # kept

        # Retry with no daemon: the rows wait again; the next daemon sends them, once.
        team.intake.refuse_projects = set()
        retried = daemon.memq("upstream", "retry", "--all")
        assert retried.returncode == 0, retried.stderr
        assert f"retried 2 event(s): {refused_one}, {refused_two}" in retried.stdout
        assert listed(daemon)["counts"] == {"waiting": 3, "refused": 0, "local_only": 0}
        daemon.start()
        wait_for(lambda: upstream_status(daemon)["waiting"] == 0)
    finally:
        daemon.kill()
    assert team.intake.local_ids()[2:] == [refused_one, refused_two, waiting_id]
    assert team.intake.duplicates == 0


_BY_STATE = {
    state: f"SELECT message_id FROM upstream_outbox WHERE state = '{state}' ORDER BY message_id"
    for state in ("waiting", "refused", "local_only")
}
_COUNT = "SELECT count(*) FROM upstream_outbox"


def _insert_waiting(daemon: Daemon) -> int:
    """One more event of session a, as the hook writes it with no daemon: it waits."""
    repo = daemon.home.parent / "repo"
    hook(daemon, "a", 2, repo)
    [(waiting,)] = rows(daemon.home, _BY_STATE["waiting"])
    return int(waiting)


def _log_entries(daemon: Daemon) -> list[dict[str, Any]]:
    """The JSON lines of the daemon's log file."""
    text = (daemon.home / "logs" / "memq.log").read_text(errors="replace")
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_in_forward_mode_a_retried_event_stops_being_a_failure_once_forwarded(
    tmp_path: Path, team: TeamServer
) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    team.intake.refuse_projects = {"github.com/team/repo"}
    daemon = laptop(tmp_path, team, MEMQ_UPSTREAM_MODE="forward")
    daemon.start()
    try:
        hook(daemon, "f", 0, repo)
        wait_for(lambda: upstream_status(daemon)["refused"] == 1)
        # Nothing processes it here and the server refused it: a failed message.
        wait_for(lambda: daemon.wait_idle()["counts"]["failed"] == 1)
        team.intake.refuse_projects = set()
        retried = daemon.memq("upstream", "retry", "--all")
        assert retried.returncode == 0, retried.stderr
        wait_for(lambda: len(team.intake.local_ids()) == 1)
        wait_for(lambda: daemon.wait_idle()["counts"]["failed"] == 0)
        counts = daemon.wait_idle()["counts"]
    finally:
        daemon.kill()
    assert counts["processed"] == 1
    assert rows(daemon.home, "SELECT status, last_error FROM pending_messages") == [
        ("processed", None)
    ]
