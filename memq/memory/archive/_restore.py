"""Import: an export file's session and records into memory, in one transaction.

    result = await queue.run_in_transaction(import_effect(lines))   # InvalidArchiveError: bad file

``import_effect`` checks every line before it writes anything (``parse_export``: a problem
is an ``InvalidArchiveError`` naming the line and the problem). Then one transaction of the queue's
writer writes the session and its records, all or nothing:

* The session is created from line 1 when memory has none under its key. When it exists,
  what it says wins: the file only fills its empty project, cwd and title, widens its span of
  time (started_at, updated_at), and adds the imported prompts to its prompt count; its
  ended_at stays (NULL means the session is open).
* A record already in the session is skipped: one of the same type, time and fields (a
  prompt's number aside), or one of a message an earlier import of the session took in (its
  queue row, below, says so while the message's records are still there; a copy edited since
  adds nothing either). So a second import of a file imports nothing, even once retention
  pruned those queue rows, importing a session into the database it came from adds nothing,
  and a later export of a grown session adds only what is new. A session forgotten since
  imports again.
* Message ids: each imported message gets a settled queue row (status processed, no payload,
  dedupe key ``import:<original id>``) under the id its records then carry, so that the queue
  never hands that id out again. The original ids are kept when every one of them is free (no
  queue row, no memory record uses it); when any is taken, all the messages imported get new
  ids, in their original order, after every id used so far. Keeping some and renumbering others
  would reorder the session: lists, context and the timeline read message id order as time
  order. A kept id below the queue's highest may be one whose processed row retention pruned
  and that left no memory; nothing refers to it any more. The queue rows show up as processed
  messages of the session in ``memq status`` until retention prunes them.
* Prompt numbers are kept while they are free in the session and ascend, else the prompt is
  numbered after the session's highest, so numbers stay in time order.
* The search index follows by itself: the triggers of migration 0003 index every row
  inserted.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from memq.memory.archive._format import RECORD_FIELDS
from memq.memory.archive._parse import (
    ExportDocument,
    ExportedRecord,
    ExportedSession,
    ExportSource,
    parse_export,
)
from memq.memory.records import RecordType
from memq.memory.rows import first_column
from memq.memory.search import RECORD_ORDER, RECORD_TABLES
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("archive")
_MEMORY: Final = load_queries("memory")
# How each record type is written: a prompt keeps the number the import gives it; the others
# are written by the very statements the store uses for what a processor made.
_INSERTS: Final = {
    RecordType.PROMPT: QUERIES["import_prompt"],
    RecordType.OBSERVATION: _MEMORY["insert_observation"],
    RecordType.SUMMARY: _MEMORY["insert_summary"],
}

IMPORT_KEY_PREFIX: Final = "import:"  # dedupe key of an imported message's queue row

# The fields that make two records of a session the same, besides their time.
_IDENTITY: Final = {
    RecordType.PROMPT: ("text",),
    RecordType.OBSERVATION: tuple(RECORD_FIELDS[RecordType.OBSERVATION]),
    RecordType.SUMMARY: tuple(RECORD_FIELDS[RecordType.SUMMARY]),
}


@dataclass(frozen=True, slots=True)
class ImportResult:
    """What an import wrote."""

    session_key: str
    session_created: bool  # memory had no such session before
    prompts: int  # records imported, by type
    observations: int
    summaries: int
    skipped: int  # records already in memory (identical, or imported before)
    remapped: int  # messages imported under a new id (their own was taken here)
    renumbered: int  # prompts imported under a new number (theirs was taken in the session)

    @property
    def imported(self) -> int:
        """Records imported, all types."""
        return self.prompts + self.observations + self.summaries

    def to_dict(self) -> dict[str, Any]:
        """The result as JSON-ready values."""
        return {
            "session_key": self.session_key,
            "session_created": self.session_created,
            "imported": {
                RecordType.PROMPT.value: self.prompts,
                RecordType.OBSERVATION.value: self.observations,
                RecordType.SUMMARY.value: self.summaries,
            },
            "skipped": self.skipped,
            "remapped": self.remapped,
            "renumbered": self.renumbered,
        }


def import_effect(
    source: ExportDocument | ExportSource,
) -> Callable[[Transaction], Awaitable[ImportResult]]:
    """The write that imports an export file; run it with ``queue.run_in_transaction``.

    The file is checked here, before anything is written: ``InvalidArchiveError`` (see
    ``parse_export``). The write itself is all or nothing (see this module's docstring for what
    it keeps, skips and renumbers).
    """
    document = source if isinstance(source, ExportDocument) else parse_export(source)
    messages: dict[int, list[ExportedRecord]] = {}
    for record in sorted(document.records, key=lambda r: (r.message_id, RECORD_ORDER[r.type])):
        messages.setdefault(record.message_id, []).append(record)
    session = document.session

    async def write(tx: Transaction) -> ImportResult:
        return await _import(tx, session, messages)

    return write


async def _import(
    tx: Transaction, session: ExportedSession, messages: Mapping[int, list[ExportedRecord]]
) -> ImportResult:
    # A few statements over whole arrays, not a few per record: the writer is shared, and
    # each statement costs a trip to aiosqlite's thread.
    key = session.key
    exists = bool(await tx.fetchall(QUERIES["import_session_exists"], {"key": key}))
    plan, skipped = await _plan(tx, key, messages, exists=exists)
    records = [record for _, group in plan for record in group]
    prompts = [record for record in records if record.type is RecordType.PROMPT]
    # Session first: the records reference it.
    await _write_session(tx, session, exists=exists, new_prompts=len(prompts))
    ids = await _reserve_ids(tx, key, plan)
    taken = await tx.fetchall(QUERIES["import_prompt_numbers"], {"session_key": key})
    wanted = [int(record.fields["number"]) for record in prompts]
    numbers = number_prompts([int(row["number"]) for row in taken], wanted)
    next_number = iter(numbers)
    params: dict[RecordType, list[dict[str, Any]]] = {kind: [] for kind in RECORD_ORDER}
    for record in records:
        row = {
            **record.fields,
            "message_id": ids[record.message_id],
            "session_key": key,
            "created_at": record.created_at,
            "author": record.author,
            "machine": record.machine,
        }
        if record.type is RecordType.PROMPT:
            row["number"] = next(next_number)
        params[record.type].append(row)
    for record_type, rows in params.items():
        if rows:  # each with who made it (RECORD_ORIGIN), as the store writes its own
            await tx.executemany(_INSERTS[record_type], rows)
    return ImportResult(
        session_key=key,
        session_created=not exists,
        prompts=len(params[RecordType.PROMPT]),
        observations=len(params[RecordType.OBSERVATION]),
        summaries=len(params[RecordType.SUMMARY]),
        skipped=skipped,
        remapped=sum(new != old for old, new in ids.items()),
        renumbered=sum(new != old for old, new in zip(wanted, numbers, strict=True)),
    )


async def _plan(
    tx: Transaction,
    session_key: str,
    messages: Mapping[int, list[ExportedRecord]],
    *,
    exists: bool,
) -> tuple[list[tuple[int, list[ExportedRecord]]], int]:
    """The records of each message that memory does not hold yet, and how many it does."""
    keys = {"session_key": session_key, "keys": json.dumps([_import_key(m) for m in messages])}
    # Asked even for a session memory lacks: its queue rows outlive a forget of memory alone.
    await tx.execute(QUERIES["import_forget_stale_keys"], keys)
    rows = await tx.fetchall(QUERIES["import_reserved_keys"], keys)
    reserved = {str(row["dedupe_key"]) for row in rows}
    skipped = sum(len(records) for m, records in messages.items() if _import_key(m) in reserved)
    candidates = [(m, records) for m, records in messages.items() if _import_key(m) not in reserved]
    # Compared here, not in SQL: SQLite's JSON functions would cut a text at a NUL.
    present: set[tuple[Any, ...]] = set()
    if exists:  # else nothing of the session can be there
        for record_type, table in RECORD_TABLES.items():
            times = {
                r.created_at for _, records in candidates for r in records if r.type is record_type
            }
            if times:
                rows = await tx.fetchall(
                    QUERIES[f"import_{table}_at"],
                    {"session_key": session_key, "times": json.dumps(sorted(times))},
                )
                present.update(_row_identity(record_type, row) for row in rows)
    plan: list[tuple[int, list[ExportedRecord]]] = []
    for message_id, records in candidates:
        fresh = [r for r in records if _identity(r) not in present]
        skipped += len(records) - len(fresh)
        if fresh:
            plan.append((message_id, fresh))
    return plan, skipped


def _identity(record: ExportedRecord) -> tuple[Any, ...]:
    """What makes two records of a session the same: type, time and fields (a prompt's
    number aside)."""
    names = _IDENTITY[record.type]
    return (record.type, record.created_at, *(record.fields[name] for name in names))


def _row_identity(record_type: RecordType, row: sqlite3.Row) -> tuple[Any, ...]:
    """``_identity`` of a row of ``import_<table>_at``."""
    names = _IDENTITY[record_type]
    return (record_type, row["created_at"], *(row[name] for name in names))


async def _write_session(
    tx: Transaction, session: ExportedSession, *, exists: bool, new_prompts: int
) -> None:
    """Create the session from the file, or merge the file into the session memory has."""
    params = {
        "key": session.key,
        "project": session.project,
        "cwd": session.cwd,
        "title": session.title,
        "started_at": session.started_at,
        "updated_at": session.updated_at,
    }
    if exists:
        await tx.execute(
            QUERIES["import_merge_session"], {**params, "imported_prompts": new_prompts}
        )
        return
    await tx.execute(
        QUERIES["import_insert_session"],
        {
            **params,
            "assistant": session.assistant,
            "external_id": session.external_id,
            # The file's count stands (its prompts may have been fewer), never below the
            # prompts it brings.
            "prompt_count": max(session.prompt_count, new_prompts),
            "ended_at": session.ended_at,
            "now": tx.now_ms,
        },
    )


async def _reserve_ids(
    tx: Transaction, session_key: str, plan: list[tuple[int, list[ExportedRecord]]]
) -> dict[int, int]:
    """A queue row for each message of ``plan``; its id by the original one."""
    if not plan:
        return {}
    originals = [message_id for message_id, _ in plan]
    taken = await tx.fetchall(QUERIES["import_ids_taken"], {"ids": json.dumps(originals)})
    keep = int(first_column(taken[0])) == 0  # all of them or none: see the module docstring
    messages = [
        [message_id if keep else None, _import_key(message_id), records[0].created_at]
        for message_id, records in plan
    ]
    rows = await tx.fetchall(
        QUERIES["import_reserve_ids"],
        {"session_key": session_key, "messages": json.dumps(messages), "now": tx.now_ms},
    )
    by_key = {str(row["dedupe_key"]): int(row["id"]) for row in rows}
    return {message_id: by_key[_import_key(message_id)] for message_id in originals}


def number_prompts(taken: Iterable[int], wanted: Iterable[int]) -> list[int]:
    """The numbers imported prompts get, in order, in a session whose prompts have ``taken``.

    Each keeps its own number while that is free and above the number given before it;
    otherwise it is numbered after the highest so far. Numbers so stay in time order.
    """
    used = set(taken)
    highest = max(used, default=0)
    numbers: list[int] = []
    for number in wanted:
        previous = numbers[-1] if numbers else 0
        given = highest + 1 if number in used or number <= previous else number
        used.add(given)
        highest = max(highest, given)
        numbers.append(given)
    return numbers


def _import_key(message_id: int) -> str:
    return f"{IMPORT_KEY_PREFIX}{message_id}"
