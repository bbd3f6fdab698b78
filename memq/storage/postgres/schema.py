"""Numbered migrations of the PostgreSQL schema, and its ``schema_version`` table.

As on SQLite (``memq.storage.schema``): ``migrations/NNNN_name.sql``, applied in order, each
exactly once, all pending ones in one transaction, and a schema newer than this memq is
refused. Several daemons may start at once against one database: the transaction first
takes a transaction-scoped advisory lock (keyed by the schema's name, so databases shared by
several memq schemas do not wait for each other), then reads the version again, so the
second daemon waits for the first to commit and finds nothing left to do. DDL is
transactional in PostgreSQL: a migration that fails leaves nothing behind. A migration must
therefore not use what cannot run in a transaction (``CREATE INDEX CONCURRENTLY``).

The numbering is PostgreSQL's own: its 0001 is SQLite's 0001-0014 at once (a new database
starts from the current schema). A SQLite migration that changes tables needs its twin here;
tests/postgres/test_schema.py compares the two schemas and fails until it has one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from memq.exceptions import SchemaError
from memq.storage.postgres.connection import storage_errors
from memq.storage.schema import Migration, available_migrations

if TYPE_CHECKING:
    import psycopg

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
# SQL-standard function bodies (0001_schema.sql's search functions) came with 14.
MIN_SERVER_VERSION: Final = 140000

_CREATE_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at BIGINT  NOT NULL
)
"""
# to_regclass looks in the search path, as every later unqualified statement does. Two
# reads: a CASE with a subquery on a missing table would fail to plan.
_HAS_VERSION_TABLE: Final = "SELECT to_regclass('schema_version') IS NOT NULL"
_MAX_VERSION: Final = "SELECT coalesce(max(version), 0) FROM schema_version"
_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(hashtext('memq migrate ' || coalesce(current_schema(), '')))"
)


@dataclass(slots=True)
class MigrationResult:
    """What ``migrate`` found and did."""

    before: int  # the schema's version when it started (0: a schema memq never touched)
    after: int
    applied: list[Migration] = field(default_factory=list)  # in order; empty: up to date


def migrations() -> list[Migration]:
    """The PostgreSQL migrations shipped with this memq, in version order."""
    return available_migrations(MIGRATIONS_DIR)


async def current_version(conn: psycopg.AsyncConnection[Any]) -> int:
    """The highest applied migration, 0 for a schema memq has never touched."""
    cursor = await conn.execute(_HAS_VERSION_TABLE)
    row = await cursor.fetchone()
    if row is None or not row[0]:
        return 0
    cursor = await conn.execute(_MAX_VERSION)
    row = await cursor.fetchone()
    return int(row[0]) if row is not None else 0


async def migrate(
    conn: psycopg.AsyncConnection[Any],
    wanted: list[Migration] | None = None,
    *,
    url: str = "",
) -> MigrationResult:
    """Apply every migration newer than the schema, in one transaction.

    ``conn`` must be in autocommit mode (``memq.storage.postgres.connection`` makes them so).
    ``url`` names the server in errors.

    Raises:
        SchemaError: the schema is newer than this memq (a downgrade), or the server is
            older than PostgreSQL 14.
        StorageError: the server failed, or a migration did.
    """
    wanted = migrations() if wanted is None else wanted
    latest = wanted[-1].version if wanted else 0
    with storage_errors(url):
        found = await current_version(conn)
        if found == latest:
            return MigrationResult(found, found)  # the common case: no lock taken
        _check_not_newer(found, latest)
        _check_server(conn.info.server_version)
        async with conn.transaction():
            # A migration may rebuild an index for a while; the daemons waiting here for the
            # lock wait for it to finish rather than fail.
            await conn.execute("SET LOCAL statement_timeout = 0")
            await conn.execute("SET LOCAL lock_timeout = 0")
            await conn.execute(_LOCK)
            await conn.execute(_CREATE_VERSION_TABLE)
            before = _check_not_newer(await current_version(conn), latest)
            applied: list[Migration] = []
            for migration in wanted[before:]:
                # No parameters: psycopg sends the whole script, every statement of it.
                await conn.execute(migration.sql.encode("utf-8"))
                await conn.execute(
                    "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, %s, %s)",
                    (migration.version, migration.name, int(time.time() * 1000)),
                )
                applied.append(migration)
    return MigrationResult(before, latest, applied)


def _check_server(version: int) -> None:
    if version < MIN_SERVER_VERSION:
        raise SchemaError(
            f"memq needs PostgreSQL {MIN_SERVER_VERSION // 10000} or newer; the server is "
            f"{version // 10000}"
        )


def _check_not_newer(version: int, latest: int) -> int:
    if version > latest:
        raise SchemaError(
            f"the PostgreSQL schema is at version {version}, newer than this memq "
            f"understands ({latest}); upgrade memq"
        )
    return version
