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

A laptop with a team server (``memq.team``) also shows the server's records, whose ids are
the server's: ``team#1234``, ``team#S56`` (``TeamRef``). ``parse_any_ref`` tells them from
local ones; ``parse_ref`` refuses them, saying how to read them, so that no team reference is
ever read as the local record of the same number.
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
# What starts a team reference (``team#12``, ``TEAM #S5``): ``TEAM_PREFIX``, any case.
_TEAM_PATTERN: Final = re.compile(r"team\s*", re.IGNORECASE)


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
    team = _TEAM_PATTERN.match(text)
    if match is None and team is not None and _PATTERN.fullmatch(text[team.end() :]):
        # Read as a local record, the team server's id would name the wrong one.
        raise InvalidRequestError(
            f"{text!r} names a record of the team server, not of this machine's memory: "
            f"read it through the memq daemon (memq show {text}, or the MCP tool "
            "get_observations)"
        )
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


# A record of the team server's memory, shown on a laptop (``memq.team.team_reads``): its id
# is the server's, so it is named ``team#1234`` / ``team#S56``, never confused with a local one.
TEAM_PREFIX: Final = "team"


def format_team_ref(ref: str) -> str:
    """The laptop's name of the team server's record ``ref`` (``#12`` -> ``team#12``)."""
    return f"{TEAM_PREFIX}{ref}"


@dataclass(frozen=True, slots=True, order=True)
class TeamRef:
    """A record of the team server's memory: ``ref`` is its reference there."""

    ref: RecordRef

    def __str__(self) -> str:
        return format_team_ref(str(self.ref))


def is_team_ref(value: str | int) -> bool:
    """Whether ``value`` is written as a team reference (``team`` first, any case), good
    or not: such a value never names a local record."""
    return isinstance(value, str) and _TEAM_PATTERN.match(value.strip()) is not None


def parse_any_ref(value: str | int) -> RecordRef | TeamRef:
    """A local reference (as ``parse_ref``) or a team one: ``team#12``, ``team#S5``,
    ``TEAM #p7``, ``team12``; ``InvalidRequestError`` naming the value for anything else."""
    team = _TEAM_PATTERN.match(value.strip()) if isinstance(value, str) else None
    if team is None:
        return parse_ref(value)
    rest = team.string[team.end() :]
    if _PATTERN.fullmatch(rest) is None:
        raise InvalidRequestError(
            f"not a team record reference: {value!r} (use team#123 for an observation, "
            "team#S12 for a summary, team#P7 for a prompt)"
        )
    try:
        return TeamRef(parse_ref(rest))
    except InvalidRequestError:  # only the id can be wrong here
        raise InvalidRequestError(f"no record can have the id in {value!r}") from None


def parse_any_refs(values: list[str | int] | tuple[str | int, ...]) -> list[RecordRef | TeamRef]:
    """Each of ``values`` parsed by ``parse_any_ref``, in order and without repeats; the
    first bad one raises."""
    seen: dict[RecordRef | TeamRef, None] = {}
    for value in values:
        seen.setdefault(parse_any_ref(value), None)
    return list(seen)
