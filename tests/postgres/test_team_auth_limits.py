"""The team server as a real daemon on PostgreSQL: a batch re-sent with the person's rotated
key is a duplicate (before and after the upgrade that moved the dedupe keys from the key's
id to its name), and an address that fails authentication too often is told to wait
before any key is checked, its refusals counted in one audit row."""

from __future__ import annotations

import json
import math
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memq.storage.postgres import schema as pg_schema_module
from memq.team import keys
from memq.team.intake import origin_key
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_server import (
    EVENTS,
    P,
    TeamServer,
    batch,
    event,
    statuses,
    stored,
)

FAILURES = 3  # MEMQ_TEAM_AUTH_FAILURES of the limited server
WINDOW = 60  # its MEMQ_TEAM_AUTH_WINDOW, seconds
CONTEXT = "/api/team/v1/context"


class TestRotationResend:
    def test_a_batch_resent_with_the_rotated_key_is_a_duplicate(
        self, team: TeamServer, pg_schema: PgSchema
    ) -> None:
        session = "claude-code:rot1"
        old = team.key("alice", P)
        team.pause(session)
        sent = batch(event(1, session), event(2, session))
        first = team.post(old, sent)
        assert statuses(first) == [(1, "accepted"), (2, "accepted")]
        assert team.daemon.memq("keys", "revoke", "alice").returncode == 0
        new = team.key("alice", P)
        # The laptop never saw the 200: it sends the same events again, with the new key.
        again = team.post(new, sent)
        assert statuses(again) == [(1, "duplicate"), (2, "duplicate")]
        assert [r["id"] for r in again.json()["results"]] == [
            r["id"] for r in first.json()["results"]
        ]
        assert [d for _, d, _ in stored(pg_schema, session)] == [
            origin_key("alice", "laptop-1", n) for n in (1, 2)
        ]
        # The machine is still part of the origin: the same local id elsewhere is another event.
        other = team.post(new, batch(event(1, session), machine="laptop-2"))
        assert statuses(other) == [(1, "accepted")]
        # Another person's key cannot pass the re-send off as theirs (the session is alice's).
        bob = team.key("bob", P)
        assert statuses(team.post(bob, sent)) == [(1, "refused"), (2, "refused")]
        assert len(stored(pg_schema, session)) == 3


async def test_after_the_upgrade_a_resend_with_the_rotated_key_is_a_duplicate(
    pg_conn: Any, pg_schema: PgSchema, tmp_path: Path
) -> None:
    """A team database stored events under ``origin:<key_id>:...`` (before migration 0008);
    alice's key was rotated; the daemon of this memq upgrades the schema at its start, and
    the laptop's re-send with the new key is a duplicate of the row stored before."""
    before = [m for m in pg_schema_module.migrations() if m.name != "team_auth_limits"]
    await pg_schema_module.migrate(pg_conn, [m for m in before if m.version < 8])
    old_id, new_id = "0123456789ab", "ba9876543210"
    secret = secrets.token_urlsafe(32)
    now = int(time.time() * 1000)
    for key_id, revoked in ((old_id, now - 1000), (new_id, None)):
        pg_schema.query(
            "INSERT INTO api_keys (key_id, name, secret_hash, projects, created_at, revoked_at)"
            " VALUES (%s, 'alice', %s, %s, %s, %s)",
            (key_id, keys.secret_hash(secret), json.dumps([P]), now - 5000, revoked),
        )
    session = "claude-code:up1"
    pg_schema.query(
        "INSERT INTO team_sessions (session_id, key_id, created_at) VALUES (%s, %s, %s)",
        (session, old_id, now - 4000),
    )
    (stored_id,) = pg_schema.query(
        "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, status,"
        " available_at, created_at, finished_at)"
        " VALUES (%s, 'prompt', NULL, %s, 'processed', %s, %s, %s) RETURNING id",
        (session, f"origin:{old_id}:laptop-1:1", now - 3000, now - 3000, now - 2000),
    )[0]
    server = TeamServer(tmp_path / "team", pg_schema.schema_url)
    server.start()
    try:
        answer = server.post(f"memq_{new_id}_{secret}", batch(event(1, session), event(2, session)))
        assert statuses(answer) == [(1, "duplicate"), (2, "accepted")]
        assert answer.json()["results"][0]["id"] == stored_id
    finally:
        server.daemon.kill()
    assert [d for _, d, _ in stored(pg_schema, session)] == [
        origin_key("alice", "laptop-1", n) for n in (1, 2)
    ]


async def test_the_migration_keeps_one_row_of_an_event_stored_twice(
    pg_conn: Any, pg_schema: PgSchema
) -> None:
    """Where the old bug stored an event twice (once per rotated key), the first row takes
    the new key and the other keeps its old one: the unique index allows one of each."""
    before = [m for m in pg_schema_module.migrations() if m.name != "team_auth_limits"]
    await pg_schema_module.migrate(pg_conn, [m for m in before if m.version < 8])
    old_id, new_id = "0123456789ab", "ba9876543210"
    for key_id, revoked in ((old_id, 1), (new_id, None)):
        pg_schema.query(
            "INSERT INTO api_keys (key_id, name, secret_hash, created_at, revoked_at)"
            " VALUES (%s, 'al:ice', 'h', 1, %s)",
            (key_id, revoked),
        )
    dedupes = [
        f"origin:{old_id}:laptop-1:1",
        f"origin:{old_id}:laptop-1:2",
        f"origin:{new_id}:laptop-1:2",
        f"origin:{old_id}:lap:top:3",
        "tool-use-id-1",
        "origin:ffffffffffff:laptop-1:1",
    ]
    for dedupe in dedupes:
        pg_schema.query(
            "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, available_at,"
            " created_at) VALUES ('claude-code:s1', 'prompt', '{}', %s, 1, 1)",
            (dedupe,),
        )
    await pg_schema_module.migrate(pg_conn)
    found = [d for (d,) in pg_schema.query("SELECT dedupe_key FROM pending_messages ORDER BY id")]
    assert found == [
        origin_key("al:ice", "laptop-1", 1),
        origin_key("al:ice", "laptop-1", 2),
        f"origin:{new_id}:laptop-1:2",
        origin_key("al:ice", "lap:top", 3),
        "tool-use-id-1",
        "origin:ffffffffffff:laptop-1:1",
    ]


@pytest.fixture
def limited(pg_schema: PgSchema, tmp_path: Path) -> Iterator[TeamServer]:
    """A team server behind a declared TLS proxy (on loopback), 3 failures a minute."""
    server = TeamServer(
        tmp_path / "team",
        pg_schema.schema_url,
        MEMQ_TLS_PROXY="1",
        MEMQ_TEAM_AUTH_FAILURES=str(FAILURES),
        MEMQ_TEAM_AUTH_WINDOW=str(WINDOW),
    )
    server.start()
    try:
        yield server
    finally:
        server.daemon.kill()


def post_from(server: TeamServer, token: str, forwarded: str) -> httpx.Response:
    headers = {"Content-Type": "application/json", "X-Forwarded-For": forwarded}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    body = json.dumps(batch(event(1, "claude-code:lim"))).encode()
    return httpx.post(server.team_url + EVENTS, content=body, headers=headers, timeout=10)


class TestFailedAuthentication:
    def test_past_the_failures_an_address_waits_before_any_key_is_checked(
        self, limited: TeamServer, pg_schema: PgSchema
    ) -> None:
        good = limited.key("alice", P)
        bad = good[:-4] + ("aaaa" if not good.endswith("aaaa") else "bbbb")
        sprayer, colleague = "203.0.113.5", "203.0.113.6"
        for n in range(FAILURES):
            tried = post_from(limited, f"memq_{n:012x}_{'s' * 43}" if n else bad, sprayer)
            assert tried.status_code == 401, tried.text
        held = post_from(limited, bad, sprayer)
        assert held.status_code == 429
        assert held.headers["Retry-After"] == str(math.ceil(WINDOW / FAILURES))  # 20 s
        assert "too many failed authentications" in held.json()["error"]
        # Before the key is checked: a good key from there waits too, and is not counted.
        assert post_from(limited, good, sprayer).status_code == 429
        read = httpx.get(
            limited.team_url + CONTEXT,
            params={"project": P},
            headers={"Authorization": f"Bearer {good}", "X-Forwarded-For": sprayer},
            timeout=10,
        )
        assert read.status_code == 429
        # The proxy appends the address it saw: what the client wrote before it is not it.
        assert post_from(limited, bad, f"198.51.100.1, {sprayer}").status_code == 429
        # Another laptop behind the same proxy is not held.
        assert statuses(post_from(limited, good, colleague)) == [(1, "accepted")]
        assert post_from(limited, bad, colleague).status_code == 401
        rows = pg_schema.query(
            "SELECT address, detail, times FROM audit_log WHERE action = 'refused'"
            " ORDER BY address, detail"
        )
        assert rows == [
            (sprayer, "unknown key", FAILURES - 1),
            (sprayer, "wrong secret", 1),
            (colleague, "wrong secret", 1),
        ]
        (key_id,) = [r[0] for r in pg_schema.query("SELECT key_id FROM api_keys")]
        assert sum(r for (r,) in pg_schema.query(
            "SELECT requests FROM key_use WHERE key_id = %s", (key_id,)
        )) == 1  # fmt: skip

    def test_without_a_declared_proxy_a_forwarded_header_is_not_believed(
        self, pg_schema: PgSchema, tmp_path: Path
    ) -> None:
        # A local process could otherwise name a new address on every try (uvicorn trusts
        # X-Forwarded-For from 127.0.0.1 unless told not to): every try is the connection's.
        server = TeamServer(
            tmp_path / "team",
            pg_schema.schema_url,
            MEMQ_TEAM_AUTH_FAILURES=str(FAILURES),
            MEMQ_TEAM_AUTH_WINDOW=str(WINDOW),
        )
        server.start()
        try:
            bad = f"memq_{0:012x}_{'s' * 43}"
            for n in range(FAILURES):
                assert post_from(server, bad, f"203.0.113.{n + 1}").status_code == 401
            assert post_from(server, bad, "203.0.113.200").status_code == 429
            addresses = pg_schema.query("SELECT DISTINCT address FROM audit_log")
            assert addresses == [("127.0.0.1",)]
        finally:
            server.daemon.kill()
