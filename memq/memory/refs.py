"""Record references: how people and models name one record of memory.

Each record type has its own table and ids, so a bare number would be ambiguous. A reference
is ``#`` plus a letter for the type plus the record's id in its table; observations, by far the
most common, need no letter::

    #1234   observation 1234
    #S56    summary 56
    #P78    prompt 78

The SessionStart context prints a reference on every line, and the MCP tools, ``memq show``
and ``GET /api/records`` take them back. Parsing accepts what a person or a model is likely to
type for the same record: with or without ``#``, either case, surrounding spaces, and a bare
integer for an observation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from memq.exceptions import InvalidRequestError
from memq.limits import MAX_INTEGER
from memq.memory.records import RecordType

# The letter of each record type; observations have none.
_LETTERS: Final = {RecordType.OBSERVATION: "", RecordType.SUMMARY: "S", RecordType.PROMPT: "P"}
_TYPES: Final = {letter: record_type for record_type, letter in _LETTERS.items()}
_PATTERN: Final = re.compile(r"#?([SsPp]?)([0-9]{1,19})")


@dataclass(frozen=True, slots=True, order=True)
class RecordRef:
    """One record of memory: its type and its id in that type's table."""

    record_type: RecordType
    id: int

    def __str__(self) -> str:
        return f"#{_LETTERS[self.record_type]}{self.id}"


def format_ref(record_type: RecordType, record_id: int) -> str:
    """The reference of a record, e.g. ``#1234`` or ``#S56``."""
    return str(RecordRef(record_type, record_id))


def parse_ref(value: str | int) -> RecordRef:
    """A reference as typed (``#1234``, ``1234``, ``S56``, ``#p78``, or the integer 1234);
    ``InvalidRequestError`` naming the value when it is none."""
    if isinstance(value, bool):  # a bool is an int to Python, never a record to a person
        raise InvalidRequestError(f"not a record reference: {value!r}")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise InvalidRequestError(f"not a record reference: {value!r}")
    match = _PATTERN.fullmatch(text)
    if match is None:
        raise InvalidRequestError(
            f"not a record reference: {value!r} (use #123 for an observation, "
            "#S12 for a summary, #P7 for a prompt)"
        )
    record_id = int(match.group(2))
    if not 1 <= record_id <= MAX_INTEGER:
        raise InvalidRequestError(f"no record can have the id in {value!r}")
    return RecordRef(_TYPES[match.group(1).upper()], record_id)


def parse_refs(values: list[str | int] | tuple[str | int, ...]) -> list[RecordRef]:
    """Each of ``values`` parsed, in order and without repeats; the first bad one raises."""
    seen: dict[RecordRef, None] = {}
    for value in values:
        seen.setdefault(parse_ref(value), None)
    return list(seen)
