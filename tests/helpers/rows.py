"""Reading the database directly, as an outside tool would."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any


def table(db_path: Path, sql: str, *params: Any) -> list[dict[str, Any]]:
    """The rows of one query, as dicts, through a read-only connection."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(sql, params)]
    finally:
        conn.close()


def all_rows(db_path: Path) -> list[dict[str, Any]]:
    """Every row of ``pending_messages`` in id order, as dicts."""
    return table(db_path, "SELECT * FROM pending_messages ORDER BY id")


def row(db_path: Path, message_id: int) -> dict[str, Any]:
    """One row of ``pending_messages``."""
    (found,) = [r for r in all_rows(db_path) if r["id"] == message_id]
    return found
