"""Numbered migrations and the ``schema_version`` table.

Migrations are ``migrations/NNNN_name.sql``, applied in order, each exactly once, all pending
ones in one ``BEGIN IMMEDIATE`` transaction: two processes that open a new database at the same
moment (the daemon and a hook's fallback) cannot both apply them.
"""

from __future__ import annotations

import re
import sqlite3
import time
from pathlib import Path

from memq.exceptions import SchemaError, SchemaUpgradeError

# The hook's fallback migrates a new database itself: keep typing and dataclasses out of it.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

MIGRATIONS_DIR: Final = Path(__file__).parent / "migrations"
_MIGRATION_FILE: Final = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

_CREATE_VERSION_TABLE: Final = """
CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       TEXT    NOT NULL,
    applied_at INTEGER NOT NULL
) STRICT
"""


class Migration:
    """One numbered schema change."""

    __slots__ = ("name", "sql", "version")

    def __init__(self, version: int, name: str, sql: str) -> None:
        self.version = version
        self.name = name
        self.sql = sql


def available_migrations(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """The migrations shipped with this memq, in version order."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = _MIGRATION_FILE.match(path.name)
        if match is None:
            raise SchemaError(f"migration file name {path.name!r} is not NNNN_name.sql")
        found.append(Migration(int(match.group(1)), match.group(2), path.read_text("utf-8")))
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise SchemaError(f"migrations must be numbered 1..n without gaps, found {versions}")
    return found


def split_statements(script: str) -> list[str]:
    """Split a SQL script into complete statements (trigger bodies stay whole)."""
    statements: list[str] = []
    current: list[str] = []
    for line in script.splitlines(keepends=True):
        current.append(line)
        candidate = "".join(current)
        if sqlite3.complete_statement(candidate):
            statements.append(candidate.strip())
            current = []
    rest = "".join(current).strip()
    if rest and not all(ln.strip().startswith("--") for ln in rest.splitlines() if ln.strip()):
        raise SchemaError(f"incomplete SQL statement at end of script: {rest[:80]!r}")
    return statements


def current_version(conn: sqlite3.Connection) -> int:
    """The highest applied migration, 0 for a database memq has never touched."""
    exists = conn.execute(
        "SELECT 1 FROM sqlite_schema WHERE type = 'table' AND name = 'schema_version'"
    ).fetchone()
    if exists is None:
        return 0
    (version,) = conn.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()
    return int(version)


def migrate(
    conn: sqlite3.Connection,
    migrations: list[Migration] | None = None,
    *,
    new_only: bool = False,
) -> int:
    """Apply every migration newer than the database; return the resulting version.

    ``conn`` must be in autocommit mode. Raises ``SchemaError`` when the database is newer than
    this memq (a downgrade), so an old binary never writes to a schema it does not know.
    ``new_only`` (the hook's direct write): create the schema of a database memq never
    touched, but raise ``SchemaUpgradeError`` rather than upgrade one an older memq made: an
    upgrade may rebuild an index for seconds, longer than a hook may take (the daemon does it
    at its start).
    """
    wanted = available_migrations() if migrations is None else migrations
    latest = wanted[-1].version if wanted else 0
    found = current_version(conn)
    if found == latest:
        return latest  # the common case: no write lock taken
    if new_only and 0 < found < latest:
        raise SchemaUpgradeError(
            f"the database is at schema version {found} and needs {latest}: "
            "the daemon upgrades it when it starts"
        )
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute(_CREATE_VERSION_TABLE)
        version = _check_not_newer(current_version(conn), latest)
        for migration in wanted[version:]:
            for statement in split_statements(migration.sql):
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, name, applied_at) VALUES (?, ?, ?)",
                (migration.version, migration.name, int(time.time() * 1000)),
            )
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    return latest


def _check_not_newer(version: int, latest: int) -> int:
    if version > latest:
        raise SchemaError(
            f"the database is at schema version {version}, newer than this memq "
            f"understands ({latest}); upgrade memq"
        )
    return version
