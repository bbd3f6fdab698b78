"""Export: one session's memory as the lines of an export file (``_format``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final

from memq import __version__
from memq.memory.archive._format import (
    EXPORT_TYPE,
    FORMAT,
    METADATA,
    RECORD_FIELDS,
    RECORD_HEAD,
    RECORD_ORIGIN,
    write_fields,
)
from memq.memory.reader import ReadsMemory
from memq.memory.records import RecordType, to_epoch_ms
from memq.memory.search import RECORD_ORDER, RECORD_TABLES
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("archive")


class SessionExporter(ReadsMemory):
    """Exports sessions on its own read connection.

    Open it with ``await SessionExporter.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("pending_messages", "sessions", "prompts", "observations", "summaries")

    async def export(self, session_key: str, *, now: datetime | None = None) -> list[str] | None:
        """The session's export: the metadata line, then one line per record in time order,
        each line ending in ``\\n`` (``"".join(lines)`` is the file). None when memory has
        no such session.

        Everything is read in one snapshot, so the file is one consistent view even while
        the worker writes; the lines are built after the snapshot ends, and a slow client
        never holds the read connection. ``now`` stamps ``exported_at`` (default: the clock).
        """
        params = {"session_key": session_key}
        records: list[tuple[RecordType, sqlite3.Row]] = []
        async with self._reader.snapshot() as conn:
            heads = list(await conn.execute_fetchall(QUERIES["export_session"], params))
            if not heads:
                return None
            for record_type, table in RECORD_TABLES.items():
                rows = await conn.execute_fetchall(QUERIES[f"export_{table}"], params)
                records.extend((record_type, row) for row in rows)
        records.sort(key=lambda item: (item[1]["message_id"], RECORD_ORDER[item[0]]))
        metadata = {
            "type": EXPORT_TYPE,
            "format": FORMAT,
            **write_fields(
                METADATA,
                {
                    "memq_version": __version__,
                    "exported_at": to_epoch_ms(now or datetime.now(UTC)),
                    "session": heads[0],
                },
            ),
        }
        lines = (
            _line(
                {
                    "type": record_type.value,
                    **write_fields(RECORD_HEAD, row),
                    **write_fields(RECORD_FIELDS[record_type], row),
                    **write_fields(RECORD_ORIGIN, row),
                }
            )
            for record_type, row in records
        )
        return [_line(metadata), *lines]


def _line(data: Mapping[str, Any]) -> str:
    # ensure_ascii=False: UTF-8 text as written. json.dumps escapes every control character,
    # so a line never holds a raw "\n".
    return json.dumps(data, ensure_ascii=False) + "\n"
