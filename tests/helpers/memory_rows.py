"""Memory's tables on either backend, as an outside tool reads (and, rarely, writes) them: the
dump that shows whether anything was written, and a statement run outside memq."""

from __future__ import annotations

import sqlite3
from typing import Any, Final

from tests.helpers.backends import Backend, SqliteBackend

# The tables memory's writes touch, each in the order of its key.
TABLES: Final = {
    "sessions": "key",
    "prompts": "id",
    "observations": "id",
    "summaries": "id",
    "pending_messages": "id",
}


def dump(backend: Backend, *, counters: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables memory's writes touch, the search index (SQLite's memory_fts
    rowids; PostgreSQL's generated ``search`` columns are in the rows) and, with
    ``counters``, the id counters (sqlite_sequence, PostgreSQL's sequences): equal dumps
    mean nothing was written. A rolled-back transaction leaves SQLite's counters as they
    were, but not PostgreSQL's (a sequence never gives a number back): compare a rolled-back
    write's dumps without ``counters`` there."""
    dumped = {
        name: backend.table(f"SELECT * FROM {name} ORDER BY {key}") for name, key in TABLES.items()
    }
    if not backend.postgres:
        dumped["memory_fts"] = backend.table("SELECT rowid FROM memory_fts ORDER BY rowid")
    if counters and backend.postgres:
        dumped["sequences"] = backend.table(
            "SELECT sequencename, last_value FROM pg_sequences"
            " WHERE schemaname = current_schema() ORDER BY sequencename"
        )
    elif counters:
        dumped["sequences"] = backend.table("SELECT * FROM sqlite_sequence ORDER BY name")
    return dumped


def execute(backend: Backend, sql: str, *params: Any) -> None:
    """Run one statement (``?`` parameters) outside memq and commit it, as another program
    writing to the store would."""
    if isinstance(backend, SqliteBackend):  # its ``table`` reads through a read-only connection
        conn = sqlite3.connect(backend.db_path)
        try:
            conn.execute(sql, params)
            conn.commit()
        finally:
            conn.close()
    else:
        backend.table(sql, *params)
