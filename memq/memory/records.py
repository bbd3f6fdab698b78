"""The value types of memory: what processors produce and what the store gives back.

A processor builds ``ObservationRecord`` and ``SummaryRecord`` values without the four origin
fields (``id``, ``message_id``, ``session_key``, ``created_at``); the store fills them from the
message when it writes the record, and every record read back has them set. ``author`` and
``machine`` are set only on records a team server took in (``memq.memory.origin``).

``SessionContext`` and ``ProcessResult`` live here rather than in ``memq.processors`` (which
re-exports them) so that the store and the processors both depend on this module and never on
each other.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum, StrEnum
from typing import Any, Generic, Protocol, TypeVar

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MILLISECOND = timedelta(milliseconds=1)


class ObservationKind(StrEnum):
    """What a tool call did. Stored as text in ``observations.kind``."""

    CHANGE = "change"  # files written or edited
    DISCOVERY = "discovery"  # files or directories read, an agent's investigation
    COMMAND = "command"  # a shell command
    SEARCH = "search"  # a search of the code base (grep, glob)
    WEB = "web"  # a web fetch or search
    DECISION = "decision"  # a choice made and why (from model-based processors)
    BUGFIX = "bugfix"  # a change that fixed a bug (from model-based processors)
    FEATURE = "feature"  # a change that added a feature (from model-based processors)
    REFACTOR = "refactor"  # a change that kept behaviour (from model-based processors)
    OTHER = "other"  # anything else: task lists, unknown tools


class RecordType(StrEnum):
    """The kinds of record memory holds, as the API names them (a search hit's, a history
    entry's, an export line's ``type``)."""

    OBSERVATION = "observation"  # a tool call (memory table observations)
    SUMMARY = "summary"  # what a stretch of a session asked for and achieved
    PROMPT = "prompt"  # a user's prompt


def to_epoch_ms(value: datetime) -> int:
    """``value`` (an aware datetime) in the integer milliseconds stored in the database."""
    return (value - _EPOCH) // _MILLISECOND


def from_epoch_ms(value: int) -> datetime:
    """A stored millisecond timestamp as an aware UTC datetime (exact, no float rounding)."""
    return _EPOCH + value * _MILLISECOND


def isoformat_utc(value: datetime) -> str:
    """``value`` as ISO-8601 in UTC with millisecond precision, e.g.
    ``2025-01-31T12:00:00.250Z`` (stored times have no finer precision)."""
    text = value.astimezone(UTC).isoformat(timespec="milliseconds")
    return text.removesuffix("+00:00") + "Z"


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return isoformat_utc(value)
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, tuple | list):
        return [_json_value(item) for item in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _record_dict(value)
    return value


def _record_dict(record: Any) -> dict[str, Any]:
    return {f.name: _json_value(getattr(record, f.name)) for f in dataclasses.fields(record)}


class _Record:
    """Gives a dataclass ``to_dict``."""

    __slots__ = ()

    def to_dict(self) -> dict[str, Any]:
        """The record as JSON-ready values: times as ISO-8601 UTC text, tuples as lists."""
        return _record_dict(self)


@dataclass(frozen=True, slots=True)
class ObservationRecord(_Record):
    """One tool call as memory: what kind of work it was, on which files, with what outcome."""

    kind: ObservationKind
    title: str  # one short line, e.g. "Ran `pytest -q` (exit 3)"
    subtitle: str = ""
    narrative: str = ""
    facts: tuple[str, ...] = ()
    concepts: tuple[str, ...] = ()
    files_read: tuple[str, ...] = ()
    files_modified: tuple[str, ...] = ()
    tool_name: str | None = None
    command: str | None = None
    exit_code: int | None = None
    excerpt: str = ""  # the output's head and tail, or an edit's compact diff
    # Set by the store:
    id: int | None = None
    message_id: int | None = None
    session_key: str | None = None
    created_at: datetime | None = None  # when the event happened, not when it was processed
    # Who produced it (a team key's name) and on which machine; None: this machine's user.
    author: str | None = None
    machine: str | None = None


@dataclass(frozen=True, slots=True)
class SummaryRecord(_Record):
    """What a stretch of a session (one batch, up to a Stop) asked for and achieved."""

    request: str = ""
    investigated: str = ""
    learned: str = ""
    completed: str = ""
    next_steps: str = ""
    files_read: tuple[str, ...] = ()
    files_edited: tuple[str, ...] = ()
    notes: str = ""
    # Set by the store:
    id: int | None = None
    message_id: int | None = None
    session_key: str | None = None
    created_at: datetime | None = None
    author: str | None = None  # as ObservationRecord's
    machine: str | None = None


@dataclass(frozen=True, slots=True)
class PromptRecord(_Record):
    """A user's prompt, numbered from 1 within its session. Only the store makes these."""

    number: int
    text: str
    id: int
    message_id: int
    session_key: str
    created_at: datetime
    author: str | None = None  # as ObservationRecord's
    machine: str | None = None


@dataclass(frozen=True, slots=True)
class SessionInfo(_Record):
    """One assistant session as the memory store knows it."""

    key: str  # "<assistant>:<assistant's session id>"
    assistant: str
    external_id: str
    project: str | None
    cwd: str | None
    title: str | None  # from the first prompt, unless the user set one
    title_edited: bool  # the user set the title (a revert keeps it)
    prompt_count: int
    observation_count: int
    summary_count: int
    parent_key: str | None  # the session this one was forked from
    forked_at: datetime | None
    started_at: datetime
    ended_at: datetime | None  # None while the session is open
    updated_at: datetime  # its latest change: an event, a title, a revert, a transfer in
    last_access_at: datetime | None  # last used (events, reads); written in batches


@dataclass(frozen=True, slots=True)
class SessionDetail(SessionInfo):
    """A session with its prompts, oldest first."""

    prompts: tuple[PromptRecord, ...]


class _Serializable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


T = TypeVar("T", bound=_Serializable)


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a longer list, and how long the whole list is."""

    items: tuple[T, ...]
    total: int

    def to_dict(self) -> dict[str, Any]:
        """``{"items": [...], "total": N}`` with JSON-ready items."""
        return {"items": [item.to_dict() for item in self.items], "total": self.total}


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What a processor may know about a session besides the message it processes."""

    session_key: str
    project: str | None
    prompts: tuple[PromptRecord, ...] = ()  # since the session's last summary, oldest first
    observations: tuple[ObservationRecord, ...] = ()  # since the last summary, oldest first
    # Earlier prompts and observations since the last summary that were left out (the
    # store gives a processor a bounded history: memq.memory.history).
    omitted: int = 0
    # Tool calls of the last prompt's turn that a processor found not worth a record (a
    # repeated read, a no-op command): a summary may count them.
    left_out: int = 0


@dataclass(frozen=True, slots=True)
class ModelUsage:
    """What processing one message cost in model tokens (``memq.memory.model_usage``), as the
    API's ``usage`` reported it; stored with the message's ack."""

    processor: str  # the processor that made the records: "extract" after a fallback
    model: str  # the model asked (after a fallback: the one that would have been)
    calls: int = 1
    input_tokens: int = 0  # not counting the cache's, which are apart
    output_tokens: int = 0
    cache_read_tokens: int = 0
    cache_write_tokens: int = 0
    fallback: str | None = None  # "budget": the daily budget was spent, extract made it

    @property
    def tokens(self) -> int:
        """Every token, as the daily budget counts them."""
        return (
            self.input_tokens
            + self.output_tokens
            + self.cache_read_tokens
            + self.cache_write_tokens
        )


@dataclass(frozen=True, slots=True)
class ProcessResult:
    """What one message adds to memory: at most one observation and one summary, and what
    the model calls that made them used (None: no model was asked)."""

    observation: ObservationRecord | None = None
    summary: SummaryRecord | None = None
    usage: ModelUsage | None = None
    # Stored observations of the turn a summary closes, as the model rewrote them (their
    # ``id`` set): written with the summary (memq.memory.rewrites).
    rewritten: tuple[ObservationRecord, ...] = ()
