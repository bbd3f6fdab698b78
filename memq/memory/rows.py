"""Memory records from database rows: the one place that knows how a stored row reads back."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from typing import Any

from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    PromptRecord,
    SummaryRecord,
    from_epoch_ms,
)


def first_column(row: sqlite3.Row | Mapping[str, Any]) -> Any:
    """The value of a row's first column, for a statement whose one column has no name
    (``SELECT count(*)``): by position on a sqlite3.Row, the first value of a dict row
    (psycopg's ``dict_row``, whose keys are the column names)."""
    if isinstance(row, Mapping):
        return next(iter(row.values()))
    return row[0]


def strings_from_json(text: str) -> tuple[str, ...]:
    """A stored JSON list of strings."""
    return tuple(str(item) for item in json.loads(text))


def optional_column(row: sqlite3.Row | Mapping[str, Any], name: str) -> Any:
    """The row's column ``name``, None when the statement did not select it (``author`` and
    ``machine``, migration 0018: a statement reading only what it shows leaves them out)."""
    # keys(): ``in`` on a sqlite3.Row looks among its values.
    return row[name] if name in row.keys() else None  # noqa: SIM118


def prompt_from_row(row: sqlite3.Row) -> PromptRecord:
    """A ``prompts`` row."""
    return PromptRecord(
        number=int(row["number"]),
        text=row["text"],
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        session_key=row["session_key"],
        created_at=from_epoch_ms(row["created_at"]),
        author=optional_column(row, "author"),
        machine=optional_column(row, "machine"),
    )


def observation_from_row(row: sqlite3.Row) -> ObservationRecord:
    """An ``observations`` row with every column."""
    return ObservationRecord(
        kind=ObservationKind(row["kind"]),
        title=row["title"],
        subtitle=row["subtitle"],
        narrative=row["narrative"],
        facts=strings_from_json(row["facts"]),
        concepts=strings_from_json(row["concepts"]),
        files_read=strings_from_json(row["files_read"]),
        files_modified=strings_from_json(row["files_modified"]),
        tool_name=row["tool_name"],
        command=row["command"],
        exit_code=row["exit_code"],
        excerpt=row["excerpt"],
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        session_key=row["session_key"],
        created_at=from_epoch_ms(row["created_at"]),
        author=optional_column(row, "author"),
        machine=optional_column(row, "machine"),
    )


def summary_from_row(row: sqlite3.Row) -> SummaryRecord:
    """A ``summaries`` row."""
    return SummaryRecord(
        request=row["request"],
        investigated=row["investigated"],
        learned=row["learned"],
        completed=row["completed"],
        next_steps=row["next_steps"],
        files_read=strings_from_json(row["files_read"]),
        files_edited=strings_from_json(row["files_edited"]),
        notes=row["notes"],
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        session_key=row["session_key"],
        created_at=from_epoch_ms(row["created_at"]),
        author=optional_column(row, "author"),
        machine=optional_column(row, "machine"),
    )
