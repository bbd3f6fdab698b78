"""Reading an export file: every line checked against the format before anything is written."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, NoReturn

from memq.events import json_type
from memq.exceptions import InvalidArchiveError
from memq.memory.archive._format import (
    EXPORT_TYPE,
    FORMAT,
    METADATA,
    RECORD_FIELDS,
    RECORD_HEAD,
    RECORD_ORIGIN,
    TEXT,
    read_field,
    read_fields,
)
from memq.memory.records import RecordType, from_epoch_ms
from memq.memory.search import RECORD_ORDER


@dataclass(frozen=True, slots=True)
class ExportedSession:
    """Line 1's session (``_format.SESSION``), times in stored milliseconds."""

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
    # Who produced it and on which machine (RECORD_ORIGIN); None: not in the file.
    author: str | None = None
    machine: str | None = None


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

    Raises ``InvalidArchiveError`` naming the line and the problem: bytes that are not UTF-8, a line
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
            raise InvalidArchiveError(
                f"line {number}: a second {record.type.value} of message_id "
                f"{record.message_id} (line {earlier} has the first)"
            )
        records.append(record)
    if head is None:
        raise InvalidArchiveError(
            f"line 1: the file is empty; a memq export starts with {_HEAD_HINT}"
        )
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
                raise InvalidArchiveError(
                    f"line {number}: not UTF-8 (byte {exc.start + 1})"
                ) from None
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
        raise InvalidArchiveError(f"line {number}: not JSON: nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise InvalidArchiveError(
            f"line {number}: not JSON: {exc.msg}: column {exc.colno}"
        ) from None
    except (InvalidArchiveError, ValueError) as exc:  # NaN, Infinity; an integer too long
        raise InvalidArchiveError(f"line {number}: not JSON: {exc}") from None
    if isinstance(data, dict):
        return data
    raise InvalidArchiveError(f"line {number}: not a JSON object but {json_type(data)}")


def _refuse_constant(name: str) -> NoReturn:
    raise InvalidArchiveError(f"{name} is not a JSON value")


def _metadata(number: int, data: dict[str, Any]) -> ExportDocument:
    # type and format first: they say whether the rest is this format at all.
    if data.get("type") != EXPORT_TYPE:
        raise InvalidArchiveError(
            f"line {number}: not a memq export: the first line must be {_HEAD_HINT}"
        )
    if "format" not in data:
        raise InvalidArchiveError(f"line {number}: missing field 'format'")
    version = data["format"]
    if version != FORMAT or isinstance(version, bool) or not isinstance(version, int):
        raise InvalidArchiveError(
            f"line {number}: unknown format version {json.dumps(version, ensure_ascii=False)} "
            f"(this memq reads format {FORMAT})"
        )
    values = read_fields(number, data, METADATA)
    return ExportDocument(
        memq_version=values["memq_version"],
        exported_at=from_epoch_ms(values["exported_at"]),
        session=ExportedSession(**values["session"]),
        records=(),
    )


def _record(number: int, data: dict[str, Any], session_key: str) -> ExportedRecord:
    raw_type = read_field(number, data, "type", TEXT)
    try:
        record_type = RecordType(raw_type)
    except ValueError:
        known = ", ".join(t.value for t in RECORD_ORDER)
        raise InvalidArchiveError(
            f"line {number}: unknown type {raw_type!r} (a record is one of {known})"
        ) from None
    # Not a field of the format (line 1 names the session), but one that names another
    # session is a file put together from two.
    own_key = data.get("session_key", session_key)
    if own_key != session_key:
        raise InvalidArchiveError(
            f"line {number}: field 'session_key' is {json.dumps(own_key, ensure_ascii=False)}, "
            f"not the session of line 1 ({session_key!r})"
        )
    head = read_fields(number, data, RECORD_HEAD)
    fields = read_fields(number, data, RECORD_FIELDS[record_type])
    origin = read_fields(number, data, RECORD_ORIGIN)
    return ExportedRecord(
        line=number,
        type=record_type,
        message_id=head["message_id"],
        created_at=head["created_at"],
        fields=fields,
        author=origin["author"],
        machine=origin["machine"],
    )
