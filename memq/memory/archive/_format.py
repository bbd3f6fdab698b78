"""The export file's format (version 1), described once: each kind of line and its fields.

JSON Lines in UTF-8: one JSON object per line, each line ending in ``\\n`` (text may hold
U+2028 and other characters that ``str.splitlines`` would split on; only ``\\n`` ends a line).
Times are ISO-8601 UTC with milliseconds (``2025-01-31T12:00:00.250Z``).

* Line 1, the metadata: ``{"type": "memq-export", "format": 1, ...METADATA}``, its
  ``session`` the fields of ``SESSION``.
* Then one line per record, in time order: message id order (the order the queue accepted the
  events) and, for the records of one message, prompt, observation, summary (as a timeline
  lists them): ``{"type": "prompt" | "observation" | "summary", ...RECORD_HEAD,
  ...RECORD_FIELDS[type]}``. The row's ``id`` and ``session_key`` are left out: the id is
  local to a database and the session is line 1's.

Every field is required (null where its type is ``Nullable``) but those of ``Omittable`` type,
added since: ``RECORD_ORIGIN``'s, written only when set, so a file without them (an older
export, or a record of this machine's user) reads as before; fields this version does not
know are ignored. A field's type works both ways: ``load`` checks a value of the file and
gives what the database stores (a time as milliseconds, a list as JSON text), and ``dump``
gives the file's value of a stored one. The reader checks lines with ``read_fields`` and the
exporter writes them with ``write_fields``, so what is written and what is accepted cannot
drift apart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from memq.events import json_type
from memq.exceptions import InvalidArchiveError
from memq.limits import MAX_INTEGER, MAX_KEY_CHARS, MIN_INTEGER
from memq.memory.origin import MAX_ORIGIN_CHARS
from memq.memory.records import (
    ObservationKind,
    RecordType,
    from_epoch_ms,
    isoformat_utc,
    to_epoch_ms,
)
from memq.memory.rows import strings_from_json

EXPORT_TYPE: Final = "memq-export"  # the "type" of the metadata line
FORMAT: Final = 1  # the version of the format this package writes and reads
# The largest message id a file may carry: integers past 2**53 are not exact in many JSON
# readers, and a kept id moves the queue's AUTOINCREMENT past it (the search index's rowid is
# message_id * 4 + 3, so ids must stay far below 2**61).
MAX_MESSAGE_ID: Final = 2**53 - 1


class Mismatch(Exception):
    """A value is not what its field's type says: "must be <expected>, not <found>"."""

    def __init__(self, expected: str, found: str) -> None:
        super().__init__(f"must be {expected}, not {found}")
        self.expected = expected
        self.found = found


class FieldType(Protocol):
    """What a field holds in the file, and in the database."""

    def load(self, value: object) -> Any:
        """The stored form of the file's ``value``; ``Mismatch`` when it is not of this type."""

    def dump(self, stored: Any) -> Any:
        """The file's form of a ``stored`` value."""


Fields = Mapping[str, FieldType]
"""A line's (or object's) fields by name, in the order they are written and checked."""

Stored = Mapping[str, Any] | sqlite3.Row
"""Stored values by column name: a database row, or the values ``read_fields`` gave."""


@dataclass(frozen=True, slots=True)
class Text:
    """A string of valid Unicode (no lone surrogate: UTF-8 cannot hold one)."""

    min_chars: int = 0
    max_chars: int | None = None  # None: any length
    nul: bool = True  # whether it may hold NUL
    choices: tuple[str, ...] = ()  # when set, the only values allowed

    def load(self, value: object) -> str:
        if not isinstance(value, str):
            raise Mismatch("a string", json_type(value))
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise Mismatch("valid Unicode text", "a string with a lone surrogate") from None
        if not self.nul and "\x00" in value:
            raise Mismatch("text without NUL", "a string with NUL")
        if self.max_chars is not None and not self.min_chars <= len(value) <= self.max_chars:
            raise Mismatch(f"{self.min_chars} to {self.max_chars} characters", f"{len(value)}")
        if self.choices and value not in self.choices:
            raise Mismatch(f"one of {', '.join(self.choices)}", repr(value))
        return value

    def dump(self, stored: Any) -> str:
        return str(stored)


@dataclass(frozen=True, slots=True)
class Whole:
    """A whole number from ``low`` to ``high`` (a JSON boolean is not one)."""

    low: int
    high: int

    def load(self, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise Mismatch("a whole number", json_type(value))
        if not self.low <= value <= self.high:
            raise Mismatch(f"from {self.low} to {self.high}", str(value))
        return value

    def dump(self, stored: Any) -> int:
        return int(stored)


@dataclass(frozen=True, slots=True)
class Time:
    """An ISO-8601 time with a time zone; stored as integer milliseconds since the epoch."""

    def load(self, value: object) -> int:
        text = Text().load(value)
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            moment = None
        if moment is None or moment.tzinfo is None:
            expected = "an ISO-8601 time with a time zone (e.g. 2025-01-31T12:00:00.250Z)"
            raise Mismatch(expected, repr(text))
        return to_epoch_ms(moment)

    def dump(self, stored: Any) -> str:
        return isoformat_utc(from_epoch_ms(int(stored)))


@dataclass(frozen=True, slots=True)
class TextList:
    """An array of strings; stored as the JSON text the store writes."""

    def load(self, value: object) -> str:
        if not isinstance(value, list):
            raise Mismatch("an array of strings", json_type(value))
        for item in value:
            try:
                Text().load(item)
            except Mismatch as problem:
                raise Mismatch("an array of strings", f"an array holding {problem.found}") from None
        return json.dumps(value, ensure_ascii=False)

    def dump(self, stored: Any) -> list[str]:
        return list(strings_from_json(stored))


@dataclass(frozen=True, slots=True)
class Nullable:
    """``inner``, or null."""

    inner: FieldType

    def load(self, value: object) -> Any:
        if value is None:
            return None
        try:
            return self.inner.load(value)
        except Mismatch as problem:
            raise Mismatch(f"{problem.expected} or null", problem.found) from None

    def dump(self, stored: Any) -> Any:
        return None if stored is None else self.inner.dump(stored)


@dataclass(frozen=True, slots=True)
class Omittable:
    """``inner``, or left out of the line: a field added to the format since, which a file
    without it (written before) must still pass. Read as None when absent; not written when
    its stored value is None."""

    inner: FieldType

    def load(self, value: object) -> Any:
        return self.inner.load(value)

    def dump(self, stored: Any) -> Any:
        return self.inner.dump(stored)


@dataclass(frozen=True, slots=True)
class Object:
    """A JSON object of ``fields`` (``read_fields`` reads them, named ``<field>.<name>``)."""

    fields: Fields

    def load(self, value: object) -> Mapping[str, Any]:
        if not isinstance(value, dict):
            raise Mismatch("an object", json_type(value))
        return value

    def dump(self, stored: Any) -> dict[str, Any]:
        return write_fields(self.fields, stored)


# -- the lines --------------------------------------------------------------------------------

TEXT: Final = Text()
TIME: Final = Time()
TEXT_LIST: Final = TextList()

# Line 1's "session": the columns of the sessions table a file carries.
SESSION: Final[Fields] = {
    "key": Text(min_chars=1, max_chars=MAX_KEY_CHARS, nul=False),
    "assistant": TEXT,
    "external_id": TEXT,
    "project": Nullable(TEXT),
    "cwd": Nullable(TEXT),
    "title": Nullable(TEXT),
    "prompt_count": Whole(0, MAX_INTEGER),
    "started_at": TIME,
    "ended_at": Nullable(TIME),
    "updated_at": TIME,
}

# Line 1 after its "type" (EXPORT_TYPE) and "format" (FORMAT): a reader checks those two
# first, on their own, since they say whether the rest is this format at all.
METADATA: Final[Fields] = {
    "memq_version": TEXT,
    "exported_at": TIME,
    "session": Object(SESSION),
}

# Every record line after its "type" (a RecordType): the message it came from, and when.
RECORD_HEAD: Final[Fields] = {
    "message_id": Whole(1, MAX_MESSAGE_ID),
    "created_at": TIME,
}

# Then the fields of each record type: its table's columns besides message_id, session_key
# and created_at.
RECORD_FIELDS: Final[Mapping[RecordType, Fields]] = {
    RecordType.PROMPT: {"number": Whole(1, MAX_INTEGER), "text": TEXT},
    RecordType.OBSERVATION: {
        "kind": Text(choices=tuple(kind.value for kind in ObservationKind)),
        "title": TEXT,
        "subtitle": TEXT,
        "narrative": TEXT,
        "facts": TEXT_LIST,
        "concepts": TEXT_LIST,
        "files_read": TEXT_LIST,
        "files_modified": TEXT_LIST,
        "tool_name": Nullable(TEXT),
        "command": Nullable(TEXT),
        "exit_code": Nullable(Whole(MIN_INTEGER, MAX_INTEGER)),
        "excerpt": TEXT,
    },
    RecordType.SUMMARY: {
        "request": TEXT,
        "investigated": TEXT,
        "learned": TEXT,
        "completed": TEXT,
        "next_steps": TEXT,
        "files_read": TEXT_LIST,
        "files_edited": TEXT_LIST,
        "notes": TEXT,
    },
}


# Then, on any record: who produced it and on which machine (memq.memory.origin), when a team
# server took it in; left out for a record of this machine's user.
RECORD_ORIGIN: Final[Fields] = {
    "author": Omittable(Text(min_chars=1, max_chars=MAX_ORIGIN_CHARS, nul=False)),
    "machine": Omittable(Text(min_chars=1, max_chars=MAX_ORIGIN_CHARS, nul=False)),
}


# -- reading and writing fields ---------------------------------------------------------------


def read_field(
    number: int, data: Mapping[str, Any], name: str, kind: FieldType, *, prefix: str = ""
) -> Any:
    """The stored value of field ``name`` of line ``number``'s object ``data``.

    Raises ``InvalidArchiveError`` naming the line and the field (``prefix``: the path of a nested
    object's, e.g. ``session.``) when it is missing or not of ``kind``.
    """
    if name not in data and isinstance(kind, Omittable):
        return None
    if name not in data:
        raise InvalidArchiveError(f"line {number}: missing field '{prefix}{name}'")
    try:
        value = kind.load(data[name])
    except Mismatch as problem:
        raise InvalidArchiveError(f"line {number}: field '{prefix}{name}' {problem}") from None
    if isinstance(kind, Object):
        return read_fields(number, value, kind.fields, prefix=f"{prefix}{name}.")
    return value


def read_fields(
    number: int, data: Mapping[str, Any], fields: Fields, *, prefix: str = ""
) -> dict[str, Any]:
    """The stored values of ``fields`` of line ``number``'s object ``data``, checked in order
    (``read_field``: the first problem is the error)."""
    return {
        name: read_field(number, data, name, kind, prefix=prefix) for name, kind in fields.items()
    }


def write_fields(fields: Fields, stored: Stored) -> dict[str, Any]:
    """The file's values of ``fields`` from their ``stored`` values (an ``Omittable`` one
    left out when None)."""
    return {
        name: kind.dump(stored[name])
        for name, kind in fields.items()
        if not (isinstance(kind, Omittable) and stored[name] is None)
    }
