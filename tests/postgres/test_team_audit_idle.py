"""Issue 17: a real ``memq serve --team`` prunes its audit log with no request coming in.

The daemon runs the audit log's retention beside the team listener (``AuditRetention.run``),
so rows past MEMQ_TEAM_AUDIT_DAYS (90 by default) go at start and hourly after, not only
when a laptop's request passes. Here nothing talks to the team listener: rows 91 days old
go, rows 89 days old stay (the real clock; the hourly rhythm is
tests.integration.test_audit_retention_idle's, on a controlled one).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import anyio

from memq.storage.postgres import schema as pg_schema_module
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_server import TeamServer

DAY_MS = 86_400_000


def actions(pg_schema: PgSchema) -> list[str]:
    return [a for (a,) in pg_schema.query("SELECT action FROM audit_log ORDER BY id")]


async def test_an_idle_team_server_prunes_its_audit_log(
    pg_schema: PgSchema, pg_conn: Any, tmp_path: Path
) -> None:
    await pg_schema_module.migrate(pg_conn)
    now = int(time.time() * 1000)
    for action, age_days in (("create", 91), ("revoke", 89), ("delete", 90.01)):
        pg_schema.query(
            "INSERT INTO audit_log (at, key_id, key_name, action) VALUES (%s, 'k1', 'alice', %s)",
            (now - int(age_days * DAY_MS), action),
        )
    pg_schema.query("INSERT INTO key_use (key_id, hour, requests) VALUES ('k1', %s, 3)", (0,))
    server = TeamServer(tmp_path / "team", pg_schema.schema_url)
    server.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - another process prunes
            actions(pg_schema) != ["revoke"] or pg_schema.query("SELECT hour FROM key_use")
        ):
            await anyio.sleep(0.05)
    finally:
        server.daemon.kill()
    assert actions(pg_schema) == ["revoke"]
    assert pg_schema.query("SELECT hour FROM key_use") == []
