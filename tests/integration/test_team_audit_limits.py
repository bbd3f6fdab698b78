"""The team server's audit log stays bounded, on both backends and the queue's clock: a
refused token is counted in one row per address, key id and reason per minute (creations,
revocations and projects out of scope stay exact), and rows past the retention are pruned.
The forwarded events' dedupe keys move from the key's id to its name (SQLite's migration;
PostgreSQL's in tests/postgres/test_team_auth_limits.py)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from memq.exceptions import AuthenticationError, ForbiddenProjectError
from memq.storage import schema
from memq.team import keys
from memq.team.audit_retention import AuditRetention
from memq.team.intake import origin_key
from tests.conftest import FAST
from tests.helpers.backends import Backend
from tests.helpers.clock import FakeClock

P = "github.com/acme/app"
Q = "github.com/acme/other"
# 2027-01-15 08:00:00 UTC: the start of a minute (and of an hour).
MINUTE_START_MS = 1_800_000_000_000
DAY = 86_400.0


def refusals(backend: Backend) -> list[tuple[Any, ...]]:
    rows = backend.table(
        "SELECT key_id, detail, address, times, minute FROM audit_log"
        " WHERE action = 'refused' ORDER BY id"
    )
    return [(r["key_id"], r["detail"], r["address"], r["times"], r["minute"]) for r in rows]


async def refuse(queue: Any, token: str, address: str, project: str | None = None) -> None:
    with pytest.raises(AuthenticationError):
        await keys.authenticate(queue, token, project, address=address)


class TestRefusedTokensAreCounted:
    async def test_one_row_per_address_key_and_reason_per_minute(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        created = await keys.create_key(queue, "alice", projects=[P])
        key_id = created.key.key_id
        wrong = f"memq_{key_id}_{'w' * 43}"
        for _ in range(50):
            await refuse(queue, wrong, "198.51.100.7", P)
        await refuse(queue, wrong, "203.0.113.9")
        # Made-up key ids, each a new one: one row, not one per guess.
        for n in range(30):
            await refuse(queue, f"memq_{n:012x}_{'s' * 43}", "198.51.100.7")
        await refuse(queue, "nonsense", "198.51.100.7")
        clock.advance(59.999)  # the same minute still
        await refuse(queue, wrong, "198.51.100.7")
        start = MINUTE_START_MS
        assert refusals(backend) == [
            (key_id, "wrong secret", "198.51.100.7", 51, start),
            (key_id, "wrong secret", "203.0.113.9", 1, start),
            (None, "unknown key", "198.51.100.7", 30, start),
            (None, "malformed token", "198.51.100.7", 1, start),
        ]
        clock.advance(0.001)  # the next minute (60 s after the first try, not 60 ms)
        await refuse(queue, wrong, "198.51.100.7")
        assert refusals(backend)[-1] == (key_id, "wrong secret", "198.51.100.7", 1, start + 60_000)
        assert len(refusals(backend)) == 5

    async def test_a_revoked_keys_tries_are_counted_under_its_id(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        created = await keys.create_key(queue, "alice", projects=[P])
        await keys.revoke_key(queue, "alice")
        for _ in range(3):
            await refuse(queue, created.token, "198.51.100.7")
        assert refusals(backend) == [
            (created.key.key_id, "revoked key", "198.51.100.7", 3, MINUTE_START_MS)
        ]

    async def test_creations_revocations_and_projects_stay_exact(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        created = await keys.create_key(queue, "alice", projects=[P])
        for _ in range(3):
            with pytest.raises(ForbiddenProjectError):
                await keys.authenticate(queue, created.token, Q, address="198.51.100.7")
        await keys.revoke_key(queue, "alice")
        await keys.create_key(queue, "alice", projects=[P])
        rows = backend.table(
            "SELECT action, target, detail, address, times, minute FROM audit_log ORDER BY id"
        )
        assert [(r["action"], r["target"], r["times"], r["minute"]) for r in rows] == [
            ("create", None, 1, None),
            ("refused", Q, 1, None),
            ("refused", Q, 1, None),
            ("refused", Q, 1, None),
            ("revoke", None, 1, None),
            ("create", None, 1, None),
        ]
        assert rows[1]["address"] == "198.51.100.7"
        entries = await keys.audit_entries(queue, limit=10)
        assert [(e.action, e.times) for e in entries][:2] == [("create", 1), ("revoke", 1)]


class TestRetention:
    async def test_rows_past_the_retention_are_pruned(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        created = await keys.create_key(queue, "alice", projects=[P])
        await keys.authenticate(queue, created.token, P)  # an hour of key_use
        await refuse(queue, "nonsense", "198.51.100.7")
        retention = AuditRetention(queue, clock, days=90)
        clock.advance(10 * DAY)
        await keys.revoke_key(queue, "alice")  # 80 days younger than the rest
        clock.advance(80 * DAY - 1)  # the first rows are a second short of 90 days old
        assert await retention.prune() == 0
        clock.advance(2)  # a second past 90 days (90 days of seconds, not of milliseconds)
        assert await retention.prune() == 2  # the creation and the refusal
        rows = backend.table("SELECT action FROM audit_log")
        assert [r["action"] for r in rows] == ["revoke"]
        assert backend.table("SELECT hour FROM key_use") == []
        clock.advance(10 * DAY)
        assert await retention.prune() == 1
        assert backend.table("SELECT action FROM audit_log") == []

    async def test_it_prunes_on_the_request_path_at_most_hourly(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        retention = AuditRetention(queue, clock, days=90)
        await refuse(queue, "nonsense", "198.51.100.7")
        await retention.prune_if_due()  # the first request prunes (nothing old yet)
        clock.step_wall(91 * DAY)  # the rows are old, but no hour passed on the monotonic clock
        await retention.prune_if_due()
        assert len(refusals(backend)) == 1
        clock.advance(3599)
        await retention.prune_if_due()
        assert len(refusals(backend)) == 1
        clock.advance(1)  # an hour since the last prune (3600 s, not 3600 ms)
        await retention.prune_if_due()
        assert refusals(backend) == []

    async def test_more_than_a_chunk_is_pruned(self, backend: Backend) -> None:
        clock = FakeClock(wall_ms=MINUTE_START_MS)
        queue = await backend.open(FAST, clock=clock)
        for n in range(keys.PRUNE_CHUNK + 5):
            await refuse(queue, "nonsense", f"10.0.{n // 256}.{n % 256}")
        clock.advance(91 * DAY)
        assert await AuditRetention(queue, clock, days=90).prune() == keys.PRUNE_CHUNK + 5


def test_sqlite_migration_moves_origins_to_the_keys_name(tmp_path: Path) -> None:
    """An upgraded team database: old ``origin:<key_id>:...`` keys take the name's form, so
    an event re-sent after the upgrade is a duplicate; an event the old bug stored twice
    (once per rotated key) keeps one row in the new form and the other as it was."""
    conn = sqlite3.connect(tmp_path / "memq.db", isolation_level=None)
    try:
        migrations = schema.available_migrations()
        before = [m for m in migrations if m.name != "team_auth_limits"]
        assert len(before) == len(migrations) - 1
        upto = [m for m in before if m.version < 19]
        schema.migrate(conn, upto)
        old, new = "0123456789ab", "ba9876543210"
        for key_id, revoked in ((old, 1), (new, None)):
            conn.execute(
                "INSERT INTO api_keys (key_id, name, secret_hash, created_at, revoked_at)"
                " VALUES (?, 'al:ice', 'h', 1, ?)",
                (key_id, revoked),
            )
        rows = [
            ("claude-code:s1", f"origin:{old}:laptop-1:1"),
            ("claude-code:s1", f"origin:{old}:laptop-1:2"),
            ("claude-code:s1", f"origin:{new}:laptop-1:2"),  # the old bug's second copy
            ("claude-code:s1", f"origin:{old}:lap:top:3"),
            ("claude-code:s1", "tool-use-id-1"),  # a laptop's own dedupe key: left alone
            ("claude-code:s2", "origin:ffffffffffff:laptop-1:1"),  # no such key: left alone
        ]
        for session, dedupe in rows:
            conn.execute(
                "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key,"
                " available_at, created_at) VALUES (?, 'prompt', '{}', ?, 1, 1)",
                (session, dedupe),
            )
        schema.migrate(conn)
        found = [r[0] for r in conn.execute("SELECT dedupe_key FROM pending_messages ORDER BY id")]
    finally:
        conn.close()
    assert found == [
        origin_key("al:ice", "laptop-1", 1),
        origin_key("al:ice", "laptop-1", 2),
        f"origin:{new}:laptop-1:2",
        origin_key("al:ice", "lap:top", 3),
        "tool-use-id-1",
        "origin:ffffffffffff:laptop-1:1",
    ]
    assert found[0] == "origin:6.al:ice:laptop-1:1"


def test_origins_of_names_and_machines_with_colons_differ() -> None:
    assert origin_key("a:b", "c", 1) != origin_key("a", "b:c", 1)
    assert origin_key("alice", "laptop-1", 7) == "origin:5.alice:laptop-1:7"
    longest = origin_key("n" * keys.MAX_NAME_CHARS, "m" * 200, 2**63 - 1)
    assert len(longest) <= 512
