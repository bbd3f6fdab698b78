"""One session's memory to a file and back: export to JSON Lines, import from it.

    async with await SessionExporter.open(path) as exporter:    # after Queue.open(path)
        lines = await exporter.export(session_key)              # None: no such session
    result = await queue.run_in_transaction(import_effect(lines))   # ValueError: bad file

The format (version 1) is JSON Lines in UTF-8: one JSON object per line, each line ending in
``\\n`` (text may hold U+2028 and other characters that ``str.splitlines`` would split on; only
``\\n`` ends a line). Times are ISO-8601 UTC with milliseconds (``2025-01-31T12:00:00.250Z``).

* Line 1, the metadata: ``{"type": "memq-export", "format": 1, "memq_version": ...,
  "exported_at": ..., "session": {"key", "assistant", "external_id", "project", "cwd",
  "title", "prompt_count", "started_at", "ended_at", "updated_at"}}``.
* Then one line per record, in time order: message id order (the order the queue accepted the
  events) and, for the records of one message, prompt, observation, summary (as a timeline
  lists them). ``{"type": "prompt" | "observation" | "summary", "message_id": N,
  "created_at": ..., <every other field of PromptRecord, ObservationRecord or
  SummaryRecord>}``. The row's ``id`` and ``session_key`` are left out: the id is local to a
  database and the session is line 1's.

An import checks every line before it writes anything (``parse_export``): a problem is a
``ValueError`` naming the line and the problem. Every field of a line is required (null where
the field may be null); fields this version does not know are ignored. Then one transaction of
the queue's writer writes the session and its records, all or nothing:

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
from datetime import UTC, datetime
from typing import Any, Final, NoReturn

from memq import __version__
from memq.memory.reader import ReadsMemory
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    PromptRecord,
    SummaryRecord,
    from_epoch_ms,
    isoformat_utc,
    to_epoch_ms,
)
from memq.memory.rows import observation_from_row, prompt_from_row, summary_from_row
from memq.memory.search import RECORD_ORDER, RECORD_TABLES, RecordType
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("transfer")

EXPORT_TYPE: Final = "memq-export"  # the "type" of the metadata line
FORMAT: Final = 1  # the version of the format this module writes and reads
IMPORT_KEY_PREFIX: Final = "import:"  # dedupe key of an imported message's queue row
# The largest message id a file may carry: integers past 2**53 are not exact in many JSON
# readers, and a kept id moves the queue's AUTOINCREMENT past it (the search index's rowid is
# message_id * 4 + 3, so ids must stay far below 2**61).
MAX_MESSAGE_ID: Final = 2**53 - 1
MAX_INTEGER: Final = 2**63 - 1  # SQLite's INTEGER
MAX_KEY_CHARS: Final = 512  # as the queue's session ids

MemoryRecord = PromptRecord | ObservationRecord | SummaryRecord


# -- export ----------------------------------------------------------------------------------


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
        async with self._reader.snapshot() as conn:
            heads = list(await conn.execute_fetchall(QUERIES["export_session"], params))
            if not heads:
                return None
            prompts = await conn.execute_fetchall(QUERIES["export_prompts"], params)
            observations = await conn.execute_fetchall(QUERIES["export_observations"], params)
            summaries = await conn.execute_fetchall(QUERIES["export_summaries"], params)
        records: list[tuple[RecordType, MemoryRecord]] = [
            *((RecordType.PROMPT, prompt_from_row(row)) for row in prompts),
            *((RecordType.OBSERVATION, observation_from_row(row)) for row in observations),
            *((RecordType.SUMMARY, summary_from_row(row)) for row in summaries),
        ]
        # message_id is set on every record read back.
        records.sort(key=lambda item: (item[1].message_id or 0, RECORD_ORDER[item[0]]))
        head = heads[0]
        session = {
            "key": head["key"],
            "assistant": head["assistant"],
            "external_id": head["external_id"],
            "project": head["project"],
            "cwd": head["cwd"],
            "title": head["title"],
            "prompt_count": int(head["prompt_count"]),
            "started_at": _iso(head["started_at"]),
            "ended_at": None if head["ended_at"] is None else _iso(head["ended_at"]),
            "updated_at": _iso(head["updated_at"]),
        }
        metadata = {
            "type": EXPORT_TYPE,
            "format": FORMAT,
            "memq_version": __version__,
            "exported_at": isoformat_utc(now or datetime.now(UTC)),
            "session": session,
        }
        lines = (_line(_record_line(kind, record)) for kind, record in records)
        return [_line(metadata), *lines]


def _record_line(record_type: RecordType, record: MemoryRecord) -> dict[str, Any]:
    fields = record.to_dict()
    del fields["id"], fields["session_key"]
    return {
        "type": record_type.value,
        "message_id": fields.pop("message_id"),
        "created_at": fields.pop("created_at"),
        **fields,
    }


def _iso(ms: int) -> str:
    return isoformat_utc(from_epoch_ms(ms))


def _line(data: Mapping[str, Any]) -> str:
    # ensure_ascii=False: UTF-8 text as written. json.dumps escapes every control character,
    # so a line never holds a raw "\n".
    return json.dumps(data, ensure_ascii=False) + "\n"


# -- the parsed file -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ExportedSession:
    """Line 1's session, times in stored milliseconds."""

    key: str
    assistant: str
    external_id: str
    project: str | None
    cwd: str | None
    title: str | None
    prompt_count: int
    started_at: int
    ended_at: int | None
    updated_at: int


@dataclass(frozen=True, slots=True)
class ExportedRecord:
    """One record line, checked: ``fields`` are its table's columns other than message_id,
    session_key and created_at, as stored (lists as JSON text)."""

    line: int  # its line number in the file, from 1
    type: RecordType
    message_id: int  # in the database it was exported from
    created_at: int  # stored milliseconds
    fields: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class ExportDocument:
    """A whole export file, checked."""

    memq_version: str
    exported_at: datetime
    session: ExportedSession
    records: tuple[ExportedRecord, ...]


ExportSource = str | bytes | Iterable[str | bytes]
"""A whole file (text or UTF-8 bytes), or its lines (e.g. an open file)."""


def parse_export(source: ExportSource) -> ExportDocument:
    """Check an export file and return what it holds.

    Raises ``ValueError`` naming the line and the problem: bytes that are not UTF-8, a line
    that is not a JSON object, a first line that is not the metadata line, an unknown format
    version, an unknown record type, a missing field, a field of the wrong type or out of
    range, two records of one type for one message. Blank lines are ignored.
    """
    head: ExportDocument | None = None
    records: list[ExportedRecord] = []
    first_of: dict[tuple[int, RecordType], int] = {}
    for number, raw in _numbered_lines(source):
        data = _json_object(number, raw)
        if head is None:
            head = _metadata(number, data)
            continue
        record = _record(number, data, head.session.key)
        earlier = first_of.setdefault((record.message_id, record.type), number)
        if earlier != number:
            raise ValueError(
                f"line {number}: a second {record.type.value} of message_id "
                f"{record.message_id} (line {earlier} has the first)"
            )
        records.append(record)
    if head is None:
        raise ValueError(f"line 1: the file is empty; a memq export starts with {_HEAD_HINT}")
    return ExportDocument(head.memq_version, head.exported_at, head.session, tuple(records))


_HEAD_HINT: Final = f'the metadata line {{"type": "{EXPORT_TYPE}", "format": {FORMAT}, ...}}'


def _numbered_lines(source: ExportSource) -> Iterable[tuple[int, str]]:
    """The non-blank lines of ``source`` with their numbers, split on ``\\n`` only."""
    if isinstance(source, str):
        pieces: Iterable[str | bytes] = source.split("\n")
    elif isinstance(source, bytes):
        pieces = source.split(b"\n")
    else:
        pieces = source
    for number, piece in enumerate(pieces, start=1):
        if isinstance(piece, bytes):
            try:
                text = piece.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise ValueError(f"line {number}: not UTF-8 (byte {exc.start + 1})") from None
        else:
            text = piece
        if number == 1:
            text = text.removeprefix("\ufeff")  # a byte order mark some editors add
        if text.strip():
            yield number, text


def _json_object(number: int, text: str) -> dict[str, Any]:
    try:
        data = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise ValueError(f"line {number}: not JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not JSON: {exc.msg}: column {exc.colno}") from None
    except ValueError as exc:
        raise ValueError(f"line {number}: not JSON: {exc}") from None
    if isinstance(data, dict):
        return data
    raise ValueError(f"line {number}: not a JSON object but {_json_type(data)}")


def _refuse_constant(name: str) -> NoReturn:
    raise ValueError(f"{name} is not a JSON value")


def _metadata(number: int, data: dict[str, Any]) -> ExportDocument:
    if data.get("type") != EXPORT_TYPE:
        raise ValueError(f"line {number}: not a memq export: the first line must be {_HEAD_HINT}")
    if "format" not in data:
        raise ValueError(f"line {number}: missing field 'format'")
    version = data["format"]
    if version != FORMAT or not _is_int(version):
        raise ValueError(
            f"line {number}: unknown format version {json.dumps(version, ensure_ascii=False)} "
            f"(this memq reads format {FORMAT})"
        )
    top = _Fields(number, data)
    memq_version = top.get("memq_version", _text)
    exported_at = from_epoch_ms(top.get("exported_at", _time))
    session = _Fields(number, top.get("session", _object), prefix="session.")
    return ExportDocument(
        memq_version=memq_version,
        exported_at=exported_at,
        session=ExportedSession(
            key=session.get("key", _session_key),
            assistant=session.get("assistant", _text),
            external_id=session.get("external_id", _text),
            project=session.get("project", _optional(_text)),
            cwd=session.get("cwd", _optional(_text)),
            title=session.get("title", _optional(_text)),
            prompt_count=session.get("prompt_count", _count),
            started_at=session.get("started_at", _time),
            ended_at=session.get("ended_at", _optional(_time)),
            updated_at=session.get("updated_at", _time),
        ),
        records=(),
    )


def _record(number: int, data: dict[str, Any], session_key: str) -> ExportedRecord:
    line = _Fields(number, data)
    raw_type = line.get("type", _text)
    try:
        record_type = RecordType(raw_type)
    except ValueError:
        known = ", ".join(t.value for t in RECORD_ORDER)
        raise ValueError(
            f"line {number}: unknown type {raw_type!r} (a record is one of {known})"
        ) from None
    own_key = data.get("session_key", session_key)
    if own_key != session_key:
        raise ValueError(
            f"line {number}: field 'session_key' is {json.dumps(own_key, ensure_ascii=False)}, "
            f"not the session of line 1 ({session_key!r})"
        )
    return ExportedRecord(
        line=number,
        type=record_type,
        message_id=line.get("message_id", _message_id_value),
        created_at=line.get("created_at", _time),
        fields={name: line.get(name, check) for name, check in _FIELDS[record_type].items()},
    )


class _Problem(Exception):
    """A field's value is not what the format says: "must be <expected>, not <found>"."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"must be {expected}, not {found}")
        self.expected = expected
        self.found = found


_Check = Callable[[object], Any]


class _Fields:
    """Reads the fields of one line's object, each through its check."""

    def __init__(self, number: int, data: Mapping[str, Any], *, prefix: str = "") -> None:
        self._number = number
        self._data = data
        self._prefix = prefix

    def get(self, name: str, check: _Check) -> Any:
        if name not in self._data:
            raise ValueError(f"line {self._number}: missing field '{self._prefix}{name}'")
        try:
            return check(self._data[name])
        except _Problem as problem:
            raise ValueError(
                f"line {self._number}: field '{self._prefix}{name}' {problem}"
            ) from None


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _text(value: object) -> str:
    if not isinstance(value, str):
        raise _Problem("a string", _json_type(value))
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise _Problem("valid Unicode text", "a string with a lone surrogate") from None
    return value


def _optional(check: _Check) -> _Check:
    def optional(value: object) -> Any:
        if value is None:
            return None
        try:
            return check(value)
        except _Problem as problem:
            raise _Problem(f"{problem.expected} or null", problem.found) from None

    return optional


def _session_key(value: object) -> str:
    key = _text(value)
    if "\x00" in key:
        raise _Problem("text without NUL", "a string with NUL")  # as the queue's session ids
    if not 1 <= len(key) <= MAX_KEY_CHARS:
        raise _Problem(f"1 to {MAX_KEY_CHARS} characters", f"{len(key)}")
    return key


def _integer(value: object, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Problem("a whole number", _json_type(value))
    if not low <= value <= high:
        raise _Problem(f"from {low} to {high}", str(value))
    return value


def _count(value: object) -> int:
    return _integer(value, 0, MAX_INTEGER)


def _positive(value: object) -> int:
    return _integer(value, 1, MAX_INTEGER)


def _any_integer(value: object) -> int:
    return _integer(value, -MAX_INTEGER - 1, MAX_INTEGER)


def _message_id_value(value: object) -> int:
    return _integer(value, 1, MAX_MESSAGE_ID)


def _time(value: object) -> int:
    text = _text(value)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        expected = "an ISO-8601 time with a time zone (e.g. 2025-01-31T12:00:00.250Z)"
        raise _Problem(expected, repr(text))
    return to_epoch_ms(moment)


def _text_list(value: object) -> str:
    """A list of strings, as the JSON text the store writes."""
    if not isinstance(value, list):
        raise _Problem("an array of strings", _json_type(value))
    for item in value:
        try:
            _text(item)
        except _Problem as problem:
            raise _Problem("an array of strings", f"an array holding {problem.found}") from None
    return json.dumps(value, ensure_ascii=False)


def _kind(value: object) -> str:
    text = _text(value)
    if text not in _KINDS:
        raise _Problem(f"one of {', '.join(ObservationKind)}", repr(text))
    return text


def _object(value: object) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise _Problem("an object", _json_type(value))
    return value


_KINDS: Final = frozenset(kind.value for kind in ObservationKind)

# The fields of each record type besides type, message_id and created_at, with their checks.
_FIELDS: Final[dict[RecordType, dict[str, _Check]]] = {
    RecordType.PROMPT: {"number": _positive, "text": _text},
    RecordType.OBSERVATION: {
        "kind": _kind,
        "title": _text,
        "subtitle": _text,
        "narrative": _text,
        "facts": _text_list,
        "concepts": _text_list,
        "files_read": _text_list,
        "files_modified": _text_list,
        "tool_name": _optional(_text),
        "command": _optional(_text),
        "exit_code": _optional(_any_integer),
        "excerpt": _text,
    },
    RecordType.SUMMARY: {
        "request": _text,
        "investigated": _text,
        "learned": _text,
        "completed": _text,
        "next_steps": _text,
        "files_read": _text_list,
        "files_edited": _text_list,
        "notes": _text,
    },
}


# -- import ----------------------------------------------------------------------------------

# The fields that make two records of a session the same, besides their time.
_IDENTITY: Final = {
    RecordType.PROMPT: ("text",),
    RecordType.OBSERVATION: tuple(_FIELDS[RecordType.OBSERVATION]),
    RecordType.SUMMARY: tuple(_FIELDS[RecordType.SUMMARY]),
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

    The file is checked here, before anything is written: ``ValueError`` (see
    ``parse_export``). The write itself is all or nothing (see the module docstring for what
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
        }
        if record.type is RecordType.PROMPT:
            row["number"] = next(next_number)
        params[record.type].append(row)
    for record_type, rows in params.items():
        if rows:
            await tx.executemany(QUERIES[f"import_{record_type.value}"], rows)
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
    keep = int(taken[0][0]) == 0  # all of them or none: see the module docstring
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
