"""The CLI against a real ``memq serve --team`` on a fresh PostgreSQL schema: ``memq status``
shows the team listener, its keys and its recent requests and refusals; ``memq sessions
--author`` lists a person's sessions with the daemon running and stopped; ``memq upstream``
reads and changes an outbox held in PostgreSQL."""

from __future__ import annotations

import json
import time
from typing import Any

from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_server import P, TeamServer, batch, event, statuses


def status(team: TeamServer) -> dict[str, Any]:
    with team.daemon.client() as client:
        body: dict[str, Any] = client.get("/api/status").json()
    return body


def wait_for_prompts(schema: PgSchema, sessions: list[str]) -> None:
    deadline = time.monotonic() + 30
    while True:
        found = schema.query(
            "SELECT DISTINCT session_key FROM prompts WHERE session_key = ANY(%s)", (sessions,)
        )
        if len(found) == len(sessions):
            return
        assert time.monotonic() < deadline, f"never processed: {found}"
        time.sleep(0.05)


def test_status_shows_the_team_listener_its_keys_and_its_traffic(team: TeamServer) -> None:
    first = status(team)["team_server"]
    assert first == {
        "address": f"127.0.0.1:{team.team_port}",
        "tls": False,
        "proxy": False,
        "keys_active": 0,
        "keys_revoked": 0,
        "requests_this_hour": 0,
        "requests_recent": 0,
        "refused_recent": 0,
        "recent_hours": 24,
    }
    token = team.key("alice", P)
    team.key("bob", P)
    assert team.daemon.memq("keys", "revoke", "bob").returncode == 0
    assert statuses(team.post(token, batch(event(1, "claude-code:st")))) == [(1, "accepted")]
    assert statuses(team.post(token, batch(event(2, "claude-code:st")))) == [(2, "accepted")]
    refused = team.post("memq_000000000000_" + "x" * 43, batch(event(3)))
    assert refused.status_code == 401
    later = status(team)["team_server"]
    assert later["keys_active"] == 1
    assert later["keys_revoked"] == 1
    assert later["requests_this_hour"] == later["requests_recent"] == 2
    assert later["refused_recent"] == 1
    text = team.daemon.memq("status")
    assert text.returncode == 0, text.stderr
    assert (
        f"team      listening on 127.0.0.1:{team.team_port} (plain HTTP, this machine only)"
        in text.stdout
    )
    assert (
        "          1 key active (1 revoked); requests: 2 this hour, 2 in 24 h; "
        "1 refused in 24 h" in text.stdout
    )


def test_sessions_filter_by_author_with_the_daemon_running_and_stopped(
    team: TeamServer, pg_schema: PgSchema
) -> None:
    alice = team.key("alice", P)
    bob = team.key("bob", P)
    assert statuses(team.post(alice, batch(event(1, "claude-code:a1")))) == [(1, "accepted")]
    assert statuses(team.post(bob, batch(event(1, "claude-code:b1")))) == [(1, "accepted")]
    wait_for_prompts(pg_schema, ["claude-code:a1", "claude-code:b1"])

    def listed(*args: str) -> tuple[list[str], str]:
        done = team.daemon.memq("sessions", "--json", *args)
        assert done.returncode == 0, done.stderr
        return sorted(item["key"] for item in json.loads(done.stdout)["items"]), done.stderr

    assert listed() == (["claude-code:a1", "claude-code:b1"], "")
    assert listed("--author", "alice") == (["claude-code:a1"], "")
    assert listed("--author", "alice", "--author", "bob")[0] == [
        "claude-code:a1",
        "claude-code:b1",
    ]
    assert listed("--author", "carol")[0] == []
    table = team.daemon.memq("sessions", "--author", "bob")
    assert "claude-code:b1" in table.stdout
    assert "claude-code:a1" not in table.stdout

    team.daemon.kill()
    keys, stderr = listed("--author", "alice")
    assert "daemon not running" in stderr
    assert keys == ["claude-code:a1"]
    assert listed("--author", "bob")[0] == ["claude-code:b1"]


def test_the_upstream_commands_work_on_an_outbox_in_postgresql(
    team: TeamServer, pg_schema: PgSchema
) -> None:
    insert = (
        "INSERT INTO upstream_outbox (message_id, session_id, kind, payload, created_at, state,"
        " last_error) VALUES (%s, 'claude-code:o', 'observation', '{}', %s, %s, %s)"
    )
    now = int(time.time() * 1000)
    pg_schema.query(insert, (11, now - 90_000, "refused", "project out of scope"))
    pg_schema.query(insert, (12, now - 60_000, "waiting", None))
    pg_schema.query(insert, (13, now - 30_000, "local_only", "no git remote"))

    def run(*args: str) -> Any:
        return team.daemon.memq("upstream", *args)

    # Through the running daemon's API.
    listing = json.loads(run("list", "--json").stdout)
    assert [(i["message_id"], i["state"]) for i in listing["items"]] == [
        (11, "refused"),
        (12, "waiting"),
    ]
    assert listing["counts"] == {"waiting": 1, "refused": 1, "local_only": 1}
    assert 89 <= listing["items"][0]["age_seconds"] < 200
    wrong = run("retry", "12")
    assert wrong.returncode == 1
    assert "only refused events can be retried: event 12 is waiting" in wrong.stderr
    assert run("drop", "13").returncode == 0

    # With the daemon stopped: the schema itself.
    team.daemon.kill()
    text = run("list", "--state", "refused")
    assert "daemon not running" in text.stderr
    assert "project out of scope" in text.stdout
    retried = run("retry", "--all")
    assert retried.returncode == 0, retried.stderr
    assert "retried 1 event(s): 11" in retried.stdout
    assert pg_schema.query("SELECT message_id, state FROM upstream_outbox ORDER BY 1") == [
        (11, "waiting"),
        (12, "waiting"),
    ]
    missing = run("drop", "13")
    assert missing.returncode == 1
    assert "no event 13 in the outbox" in missing.stderr
