from __future__ import annotations

import re
import sqlite3
from pathlib import Path

import pytest

from memq.exceptions import SchemaError, SQLiteTooOldError
from memq.storage import connection, schema, sqlfile


class TestNamedQueries:
    def test_splits_blocks_by_name(self) -> None:
        """Each ``-- name:`` line opens a statement that runs to the next one."""
        text = "-- name: one\nSELECT 1;\n\n-- name: two\n-- a comment\nSELECT 2;\n"
        assert dict(sqlfile.parse_named_queries(text)) == {
            "one": "SELECT 1;",
            "two": "-- a comment\nSELECT 2;",
        }

    def test_refuses_a_repeated_name(self) -> None:
        """Two statements under one name would make one of them unreachable."""
        with pytest.raises(ValueError, match="twice"):
            sqlfile.parse_named_queries("-- name: a\nSELECT 1;\n-- name: a\nSELECT 2;\n")

    def test_every_queue_statement_compiles_against_the_schema(self) -> None:
        """A typo in queue.sql fails here, not on the first claim in production."""
        conn = sqlite3.connect(":memory:", isolation_level=None)
        schema.migrate(conn)
        for name, template in sqlfile.load_queries("queue").items():
            sql = template.format(rows="(?, ?, ?, ?, ?, ?)") if "{rows}" in template else template
            params = [None] * 6 if "{rows}" in template else _null_params(sql)
            try:
                conn.execute("EXPLAIN " + sql, params)
            except sqlite3.Error as exc:  # pragma: no cover - the failure message
                pytest.fail(f"query {name} does not compile: {exc}")


def _null_params(sql: str) -> dict[str, None]:
    return dict.fromkeys(re.findall(r":([a-z_]+)", sql))


class TestMigrations:
    def test_split_keeps_trigger_bodies_whole(self) -> None:
        """Statements are split where SQLite says they end, not at every semicolon."""
        script = (
            "CREATE TABLE t (x);\n"
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN\n  SELECT 1;\n  SELECT 2;\nEND;\n"
            "-- trailing comment\n"
        )
        statements = schema.split_statements(script)
        assert len(statements) == 2
        assert statements[1].endswith("END;")

    def test_migrate_is_idempotent_and_records_versions(self, tmp_path: Path) -> None:
        """A second migrate does nothing; schema_version lists every migration once."""
        conn = connection.connect(tmp_path / "m.db")
        latest = schema.migrate(conn)
        assert schema.migrate(conn) == latest
        versions = [row[0] for row in conn.execute("SELECT version FROM schema_version")]
        assert versions == list(range(1, latest + 1))

    def test_refuses_a_database_from_a_newer_memq(self, tmp_path: Path) -> None:
        """An old binary must not write to a schema it does not understand."""
        conn = connection.connect(tmp_path / "m.db")
        latest = schema.migrate(conn)
        conn.execute("INSERT INTO schema_version VALUES (?, 'future', 0)", (latest + 1,))
        with pytest.raises(SchemaError, match="newer"):
            schema.migrate(conn)

    def test_applies_only_missing_migrations_in_one_transaction(self, tmp_path: Path) -> None:
        """A failing migration leaves the database at its previous version."""
        conn = connection.connect(tmp_path / "m.db")
        base = schema.available_migrations()
        schema.migrate(conn, base)
        broken = [*base, schema.Migration(len(base) + 1, "broken", "CREATE TABLE x (;")]
        with pytest.raises(sqlite3.OperationalError):
            schema.migrate(conn, broken)
        assert schema.current_version(conn) == len(base)

    def test_migration_files_are_numbered_without_gaps(self) -> None:
        """Shipped migrations are 0001, 0002, ... so order is unambiguous."""
        versions = [m.version for m in schema.available_migrations()]
        assert versions == list(range(1, len(versions) + 1))


class TestConnection:
    def test_rejects_sqlite_older_than_the_schema_needs(self) -> None:
        """STRICT tables need SQLite 3.37; an older library is named in the error."""
        with pytest.raises(SQLiteTooOldError, match=r"3\.31\.1"):
            connection.check_sqlite_version("3.31.1")
        connection.check_sqlite_version("3.37.0")

    def test_connect_uses_wal_and_the_requested_sync_level(self, tmp_path: Path) -> None:
        """Every connection is in WAL mode with the configured synchronous level."""
        conn = connection.connect(tmp_path / "c.db", synchronous=connection.Synchronous.NORMAL)
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
