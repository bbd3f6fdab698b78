"""Records read by reference: the full records behind ``#12``, ``#S3``, ``#P7``.

    from memq.memory.lookup import RecordLookup

    async with await RecordLookup.open(path) as lookup:   # after Queue.open(path) migrated it
        found = await lookup.records(parse_refs(["#12", "S3"]))
        timeline = await lookup.timeline(parse_ref("#12"), before=5, after=5)

The SessionStart context, search and the MCP tools name records by reference
(``memq.memory.refs``); this is where a reference becomes the record again: every field,
the session and its project, in the order asked, with the references nothing answers listed
apart (a record can be gone: its session deleted or reverted). Reading a record by
reference sees the records a fork inherited too: a reference names one row, whichever
session holds it.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from memq.exceptions import InvalidRequestError
from memq.limits import MAX_RECORD_REFS
from memq.memory.reader import ReadsMemory
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef
from memq.memory.rows import observation_from_row, prompt_from_row, summary_from_row
from memq.memory.search import MemoryRecord, MemorySearch, Timeline, TimelineItem
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("lookup")

_STATEMENTS: Final = {
    RecordType.OBSERVATION: "observations_by_id",
    RecordType.SUMMARY: "summaries_by_id",
    RecordType.PROMPT: "prompts_by_id",
}
_READERS: Final[dict[RecordType, Callable[[sqlite3.Row], MemoryRecord]]] = {
    RecordType.OBSERVATION: observation_from_row,
    RecordType.SUMMARY: summary_from_row,
    RecordType.PROMPT: prompt_from_row,
}


@dataclass(frozen=True, slots=True)
class FoundRecord:
    """One record read by its reference."""

    ref: RecordRef
    item: TimelineItem  # the record, its type, its one-line title and whether it was inherited
    project: str | None  # its session's project

    def to_dict(self) -> dict[str, Any]:
        """``ref`` and ``project`` plus the record as a timeline lists it: ``record_type``,
        ``title``, every field of the record and ``inherited``."""
        return {"ref": str(self.ref), "project": self.project, **self.item.to_dict()}


@dataclass(frozen=True, slots=True)
class Lookup:
    """The records asked for, in the order asked, and the references nothing answers."""

    found: tuple[FoundRecord, ...]
    missing: tuple[RecordRef, ...]

    def to_dict(self) -> dict[str, Any]:
        """``{"items": [...], "missing": ["#13", ...], "total": N}`` (N: records found)."""
        return {
            "items": [record.to_dict() for record in self.found],
            "missing": [str(ref) for ref in self.missing],
            "total": len(self.found),
        }


class RecordLookup(ReadsMemory):
    """Reads records by reference on its own read connection.

    Open it with ``await RecordLookup.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("sessions", "prompts", "observations", "summaries")

    async def records(self, refs: Sequence[RecordRef]) -> Lookup:
        """The records ``refs`` name, in that order (a reference given twice, once), and the
        references no record answers. ``InvalidRequestError`` for none at all or more than
        ``MAX_RECORD_REFS``."""
        wanted = list(dict.fromkeys(refs))
        if not wanted:
            raise InvalidRequestError("give at least one record reference (#12, #S3, #P7)")
        if len(wanted) > MAX_RECORD_REFS:
            raise InvalidRequestError(
                f"at most {MAX_RECORD_REFS} records at a time (got {len(wanted)})"
            )
        by_ref: dict[RecordRef, FoundRecord] = {}
        # One snapshot: a record deleted between two statements is either found or missing,
        # never half of a session's answer.
        async with self._reader.snapshot() as conn:
            for record_type, statement in _STATEMENTS.items():
                ids = [ref.id for ref in wanted if ref.record_type is record_type]
                if not ids:
                    continue
                rows = await conn.execute_fetchall(QUERIES[statement], {"ids": json.dumps(ids)})
                for row in rows:
                    item = TimelineItem(
                        record_type, _READERS[record_type](row), inherited=bool(row["inherited"])
                    )
                    ref = RecordRef(record_type, int(row["id"]))
                    by_ref[ref] = FoundRecord(ref, item, row["project"])
        return Lookup(
            found=tuple(by_ref[ref] for ref in wanted if ref in by_ref),
            missing=tuple(ref for ref in wanted if ref not in by_ref),
        )

    async def message_id(self, ref: RecordRef) -> int | None:
        """The id of the message that produced the record ``ref`` names; None when memory
        holds no such record."""
        found = (await self.records([ref])).found
        return found[0].item.message_id if found else None

    async def timeline(self, ref: RecordRef, *, before: int = 5, after: int = 5) -> Timeline | None:
        """The timeline around the record ``ref`` names (``MemorySearch.timeline`` of its
        message); None when memory holds no such record."""
        message_id = await self.message_id(ref)
        if message_id is None:
            return None
        # The timeline's statements on this lookup's own connection: they read only the
        # memory tables this reader requires.
        return await MemorySearch(self._reader).timeline(message_id, before=before, after=after)


def no_records(missing: Sequence[RecordRef]) -> str:
    """The error for references no record answers."""
    listed = ", ".join(str(ref) for ref in missing)
    return f"memory holds no record {listed} (deleted, or never there)"
