"""The team server's API keys on both backends: made with a token shown once and stored
hashed, scoped to projects, revoked at once, refusals audited without any secret, and use
counted per key and hour by the queue's clock."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memq.exceptions import (
    ApiKeyNameTakenError,
    ApiKeyNotFoundError,
    AuthenticationError,
    ForbiddenProjectError,
    InvalidRequestError,
)
from memq.queue.testing import ManualClock
from memq.team import keys
from memq.team.direct import PgDatabase, SqliteDatabase
from tests.conftest import FAST
from tests.helpers.backends import Backend, PgBackend, SqliteBackend

P = "github.com/acme/app"
Q = "github.com/acme/other"
# 2027-01-15 08:00:00 UTC: the start of an hour (1_800_000_000 / 3600 = 500_000).
HOUR_START = 1_800_000_000.0


def audit(backend: Backend) -> list[dict[str, Any]]:
    return backend.table(
        "SELECT key_id, key_name, action, target, detail FROM audit_log ORDER BY id"
    )


def stored_text(backend: Backend) -> str:
    """Everything the store holds, as text: every row of every table (and on SQLite the
    database's and WAL's bytes too)."""
    if backend.postgres:
        tables = [r["tablename"] for r in backend.table(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        )]  # fmt: skip
        return "\n".join(
            str(r["row"])
            for table in tables
            for r in backend.table(f'SELECT CAST(t AS TEXT) AS row FROM "{table}" AS t')
        )
    assert isinstance(backend, SqliteBackend)
    tables = [r["name"] for r in backend.table(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
    )]  # fmt: skip
    rows = [str(r) for table in tables for r in backend.table(f'SELECT * FROM "{table}"')]
    files = [backend.db_path, Path(f"{backend.db_path}-wal")]
    raw = [path.read_bytes().decode("latin-1") for path in files if path.exists()]
    return "\n".join(rows + raw)


class TestCreate:
    async def test_the_token_is_returned_once_and_only_its_hash_is_kept(
        self, backend: Backend
    ) -> None:
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        key_id, secret = keys.parse_token(created.token) or ("", "")
        assert created.token == f"memq_{key_id}_{secret}"
        assert len(key_id) == 12
        assert len(secret) >= 43  # 32 bytes of base64
        assert created.key.key_id == key_id
        (row,) = backend.table("SELECT * FROM api_keys")
        assert row["secret_hash"] == keys.secret_hash(secret)
        assert json.loads(row["projects"]) == [P]
        assert (row["all_projects"], row["revoked_at"], row["last_used_at"]) == (0, None, None)
        assert secret not in stored_text(backend)
        assert audit(backend) == [
            {"key_id": key_id, "key_name": "alice", "action": "create", "target": None,
             "detail": P},
        ]  # fmt: skip

    async def test_projects_are_normalised_and_listed(self, backend: Backend) -> None:
        created = await keys.create_key(
            backend.queue, "ci", projects=["git@github.com:Acme/App.git", P, Q]
        )
        assert created.key.projects == (P, Q)
        (listed,) = await keys.list_keys(backend.queue)
        assert listed.projects == (P, Q)
        assert not listed.all_projects
        assert "secret" not in json.dumps(listed.to_dict())

    async def test_a_name_is_unique_among_unrevoked_keys(self, backend: Backend) -> None:
        first = await keys.create_key(backend.queue, "alice", projects=[P])
        with pytest.raises(ApiKeyNameTakenError, match="'alice' exists"):
            await keys.create_key(backend.queue, "alice", projects=[Q])
        await keys.revoke_key(backend.queue, "alice")
        second = await keys.create_key(backend.queue, "alice", projects=[Q])
        assert second.key.key_id != first.key.key_id
        listed = await keys.list_keys(backend.queue)
        assert [(k.name, k.revoked) for k in listed] == [("alice", True), ("alice", False)]
        assert [r["action"] for r in audit(backend)] == ["create", "revoke", "create"]

    @pytest.mark.parametrize(
        ("name", "projects", "all_projects", "message"),
        [
            ("", [P], False, "1 to 100 printable"),
            (" alice", [P], False, "without spaces"),
            ("a\nb", [P], False, "printable"),
            ("x" * 101, [P], False, "1 to 100"),
            ("0123456789ab", [P], False, "looks like a key id"),
            ("alice", [], False, "name the projects"),
            ("alice", [P], True, "names no projects"),
            ("alice", ["/srv/git/app"], False, "names no repository"),
        ],
    )
    async def test_what_is_refused(
        self, backend: Backend, name: str, projects: list[str], all_projects: bool, message: str
    ) -> None:
        with pytest.raises(InvalidRequestError, match=message):
            await keys.create_key(backend.queue, name, projects=projects, all_projects=all_projects)
        assert backend.table("SELECT * FROM api_keys") == []


class TestAuthenticate:
    async def test_a_key_may_use_its_projects_only(self, backend: Backend) -> None:
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        key = await keys.authenticate(backend.queue, created.token, P)
        assert (key.key_id, key.name) == (created.key.key_id, "alice")
        assert (await keys.authenticate(backend.queue, created.token, None)).name == "alice"
        with pytest.raises(ForbiddenProjectError, match=f"'alice' may not use {Q}"):
            await keys.authenticate(backend.queue, created.token, Q)
        assert audit(backend)[-1] == {
            "key_id": created.key.key_id,
            "key_name": "alice",
            "action": "refused",
            "target": Q,
            "detail": "project not allowed",
        }
        # The refused request is no use of the key.
        assert sum(n for _, n in await keys.key_use(backend.queue, created.key.key_id)) == 2

    async def test_a_key_for_all_projects(self, backend: Backend) -> None:
        created = await keys.create_key(backend.queue, "server", all_projects=True)
        for project in (P, Q, "git.example.com:2222/Team/Repo"):
            assert (await keys.authenticate(backend.queue, created.token, project)).all_projects

    async def test_a_revoked_key_is_refused_at_once(self, backend: Backend) -> None:
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        await keys.authenticate(backend.queue, created.token, P)
        revoked = await keys.revoke_key(backend.queue, created.key.key_id)
        assert revoked.revoked_at is not None
        with pytest.raises(AuthenticationError, match="the API key was revoked") as refused:
            await keys.authenticate(backend.queue, created.token, P)
        assert (refused.value.reason, refused.value.key_id) == ("revoked key", revoked.key_id)
        assert audit(backend)[-1]["detail"] == "revoked key"
        # Without the secret, nobody learns that the key id was revoked.
        with pytest.raises(AuthenticationError, match="invalid API key") as guessed:
            await keys.authenticate(backend.queue, f"memq_{revoked.key_id}_guess", P)
        assert guessed.value.reason == "wrong secret"
        with pytest.raises(ApiKeyNotFoundError, match="revoked already"):
            await keys.revoke_key(backend.queue, "alice")

    async def test_a_revocation_through_another_connection_holds_at_the_next_request(
        self, backend: Backend
    ) -> None:
        """``memq keys revoke`` runs beside the server's daemon, on a connection of its
        own (memq.team.direct): the daemon caches nothing, so the next request fails."""
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        await keys.authenticate(backend.queue, created.token, P)
        async with _direct(backend) as elsewhere:
            await keys.revoke_key(elsewhere, "alice")
        with pytest.raises(AuthenticationError, match="revoked"):
            await keys.authenticate(backend.queue, created.token, P)

    async def test_a_wrong_secret_is_refused_and_audited_without_it(self, backend: Backend) -> None:
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        key_id, secret = keys.parse_token(created.token) or ("", "")
        wrong = "W" + secret[1:] if not secret.startswith("W") else "X" + secret[1:]
        with pytest.raises(AuthenticationError, match="invalid API key") as refused:
            await keys.authenticate(backend.queue, f"memq_{key_id}_{wrong}", P)
        assert (refused.value.reason, refused.value.key_id) == ("wrong secret", key_id)
        assert audit(backend)[-1] == {
            "key_id": key_id,
            "key_name": "alice",
            "action": "refused",
            "target": None,  # a refused token's row counts a minute's tries, whatever project
            "detail": "wrong secret",
        }
        everything = stored_text(backend)
        assert wrong not in everything
        assert secret not in everything
        assert keys.secret_hash(wrong) not in everything
        assert await keys.key_use(backend.queue, key_id) == []

    @pytest.mark.parametrize(
        "token",
        ["", "Bearer x", "memq_", "memq_0123456789AB_abc", "memq_0123456789a_abc",
         "memq_0123456789ab_", "memq_0123456789ab_a b", "x" * 5000],
    )  # fmt: skip
    async def test_a_malformed_token_is_refused_and_audited_without_it(
        self, backend: Backend, token: str
    ) -> None:
        with pytest.raises(AuthenticationError, match="invalid API key") as refused:
            await keys.authenticate(backend.queue, token, P)
        assert (refused.value.reason, refused.value.key_id) == ("malformed token", None)
        assert audit(backend) == [
            {"key_id": None, "key_name": None, "action": "refused", "target": None,
             "detail": "malformed token"},
        ]  # fmt: skip

    async def test_an_unknown_key_is_audited_without_its_made_up_id(self, backend: Backend) -> None:
        await keys.create_key(backend.queue, "alice", projects=[P])
        with pytest.raises(AuthenticationError, match="invalid API key") as refused:
            await keys.authenticate(backend.queue, "memq_0123456789ab_" + "s" * 43, None)
        assert refused.value.reason == "unknown key"
        assert refused.value.key_id == "0123456789ab"  # in the log line, not the audit log
        assert audit(backend)[-1] == {
            "key_id": None,
            "key_name": None,
            "action": "refused",
            "target": None,
            "detail": "unknown key",
        }
        assert "s" * 43 not in stored_text(backend)


class TestUse:
    async def test_requests_are_counted_per_hour_of_the_queue_clock(self, backend: Backend) -> None:
        clock = ManualClock(wall_seconds=HOUR_START)
        queue = await backend.open(FAST, clock=clock)
        created = await keys.create_key(queue, "alice", projects=[P])
        key_id = created.key.key_id
        start = int(HOUR_START * 1000)
        for _ in range(2):
            await keys.authenticate(queue, created.token, P)
        clock.advance(3599)  # the hour's last second
        await keys.authenticate(queue, created.token, P)
        clock.advance(1)  # the next hour
        await keys.authenticate(queue, created.token, P)
        assert await keys.key_use(queue, key_id) == [(start, 3), (start + 3_600_000, 1)]
        (listed,) = await keys.list_keys(queue)
        assert listed.last_used_at == start + 3_600_000
        assert listed.recent_requests == 4
        clock.advance(23 * 3600)  # the first hour is 24 hours back: out of the window
        (listed,) = await keys.list_keys(queue)
        assert listed.recent_requests == 1
        assert backend.table("SELECT count(*) AS n FROM key_use") == [{"n": 2}]

    def test_the_cli_names_the_same_window(self) -> None:
        from memq.cli import key_commands  # noqa: PLC0415

        assert key_commands.RECENT_HOURS == keys.RECENT_HOURS


class TestAuditWrite:
    async def test_a_deletion_is_audited_in_its_own_transaction(self, backend: Backend) -> None:
        created = await keys.create_key(backend.queue, "alice", projects=[P])
        write = keys.audit_write(
            keys.AuditAction.DELETE, created.key, target="claude:s1", detail="session"
        )
        await backend.queue.run_in_transaction(write)
        entries = await keys.audit_entries(backend.queue, limit=1)
        assert [(e.action, e.key_name, e.target, e.detail) for e in entries] == [
            ("delete", "alice", "claude:s1", "session")
        ]


def _direct(backend: Backend) -> Any:
    """The database as ``memq keys`` opens it beside a running daemon: a connection of its
    own (on SQLite without the queue's lock, which the daemon holds)."""
    import contextlib  # noqa: PLC0415

    @contextlib.asynccontextmanager
    async def opened() -> Any:
        if isinstance(backend, PgBackend):
            from memq.storage.postgres import connection  # noqa: PLC0415

            pg_conn = await connection.connect(backend.schema.url, backend.schema.options())
            try:
                yield PgDatabase(pg_conn, backend.schema.url)
            finally:
                await pg_conn.close()
            return
        from memq.storage import connection as sqlite_connection  # noqa: PLC0415

        assert isinstance(backend, SqliteBackend)
        conn = sqlite_connection.connect(backend.db_path)
        try:
            yield SqliteDatabase(conn)
        finally:
            conn.close()

    return opened()
