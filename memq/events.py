"""The hook event contract: which session, kind and dedupe key a hook payload becomes.

Standard library only. The daemon uses it for ``POST /api/events`` and the hook's fallback
uses it to write the very same row straight into the pending table, so that an event written
by the fallback and later resent over HTTP is recognised as one event. ``HookEvent`` names
the events memq subscribes to, the only place memq spells them out.
"""

from __future__ import annotations

import json

from memq.assistants import CLAUDE_CODE, NAMES
from memq.assistants.base import ASSISTANT_FIELD
from memq.exceptions import InvalidEventError, MalformedEventError
from memq.kinds import MessageKind
from memq.limits import MAX_INTEGER, MAX_SESSION_ID_CHARS, MIN_INTEGER

# typing and dataclasses stay out of the hook's start-up: names for the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

ASSISTANT: Final = CLAUDE_CODE  # the assistant of a payload that names none
KNOWN_ASSISTANTS: Final = frozenset(NAMES)
MAX_DEPTH: Final = 100


class HookEvent:
    """The hook events memq subscribes to, by the name the assistant gives them
    (``hook_event_name``)."""

    SESSION_START: Final = "SessionStart"
    USER_PROMPT_SUBMIT: Final = "UserPromptSubmit"
    POST_TOOL_USE: Final = "PostToolUse"
    POST_TOOL_USE_FAILURE: Final = "PostToolUseFailure"
    STOP: Final = "Stop"
    SESSION_END: Final = "SessionEnd"


# The message kind of each event memq subscribes to, in the order ``memq install`` writes them
# into the assistant's settings. Claude Code also sends memq the others (InstructionsLoaded,
# PreToolUse, ...) when another hook or a plugin routes every event to ``memq hook``, some with
# throw-away session ids. Those are kept in the queue as they came (kind "unsubscribed"), but
# never become memory, a session, or a fork's link.
_KIND_BY_EVENT: Final = {
    HookEvent.SESSION_START: MessageKind.EVENT.value,
    HookEvent.USER_PROMPT_SUBMIT: MessageKind.PROMPT.value,
    HookEvent.POST_TOOL_USE: MessageKind.OBSERVATION.value,
    HookEvent.POST_TOOL_USE_FAILURE: MessageKind.OBSERVATION.value,
    HookEvent.STOP: MessageKind.SUMMARIZE.value,
    HookEvent.SESSION_END: MessageKind.SESSION_END.value,
}
SUBSCRIBED_EVENTS: Final = tuple(_KIND_BY_EVENT)
# The events that report a tool call's result (the matcher of ``memq install`` matches every
# tool for them).
TOOL_RESULT_EVENTS: Final = frozenset({HookEvent.POST_TOOL_USE, HookEvent.POST_TOOL_USE_FAILURE})
# Fields whose type the processors rely on when present.
_STRING_FIELDS: Final = (
    "cwd",
    "transcript_path",
    "tool_name",
    "tool_use_id",
    "prompt",
    "prompt_id",
    "last_assistant_message",
    "memq_event_id",
    "memq_redacted",
    ASSISTANT_FIELD,
)


class Route:
    """Where one hook event goes in the queue."""

    __slots__ = ("dedupe_key", "event", "kind", "session_key")

    def __init__(self, event: str, session_key: str, kind: str, dedupe_key: str | None) -> None:
        self.event = event  # hook_event_name, e.g. "PostToolUse"
        self.session_key = session_key  # "<assistant>:<session_id>", e.g. "codex:0199..."
        self.kind = kind  # a memq.kinds.MessageKind value
        self.dedupe_key = dedupe_key

    @property
    def subscribed(self) -> bool:
        """Whether memq's hooks subscribe to the event (see ``SUBSCRIBED_EVENTS``)."""
        return self.kind != MessageKind.UNSUBSCRIBED

    @property
    def may_link_fork(self) -> bool:
        """Whether the event may be a fork's first, linking its session to the one it was
        forked from (``memq.worker.forks``, ``memq.hooks.fork_link``)."""
        return may_link_fork(self.event, self.session_key)

    def __repr__(self) -> str:
        return (
            f"Route(event={self.event!r}, session_key={self.session_key!r}, "
            f"kind={self.kind!r}, dedupe_key={self.dedupe_key!r})"
        )


def kind_of(event: str) -> str:
    """The queue's message kind (a ``MessageKind`` value) for a hook event name."""
    return _KIND_BY_EVENT.get(event, MessageKind.UNSUBSCRIBED.value)


def may_link_fork(event: str, session_key: str) -> bool:
    """Whether an event of a session memq does not know may make it a fork.

    Claude Code's ``--fork-session`` sends SessionStart with the parent's id and every later
    event with the fork's. A SessionStart with a new id starts a session of its own; an event
    memq does not subscribe to says nothing either way: InstructionsLoaded comes with
    throw-away ids, and with the fork's own id before its first prompt. Only Claude Code's
    sessions fork this way: the other assistants resume a session under its own id, and a
    new session of theirs beside a resumed Claude Code session is no fork of it.
    """
    if not session_key.startswith(f"{ASSISTANT}:"):
        return False
    return event in SUBSCRIBED_EVENTS and event != HookEvent.SESSION_START


def session_key(session_id: str, assistant: str = ASSISTANT) -> str:
    """The queue's session id for an assistant's session."""
    return f"{assistant}:{session_id}"


def normalize_session_key(text: str) -> str:
    """Accept ``<assistant>:<id>`` (``codex:<id>``) or a bare Claude Code session id."""
    assistant, sep, rest = text.partition(":")
    if sep and assistant in KNOWN_ASSISTANTS and rest:
        return text
    return session_key(text)


def parse_event_body(body: bytes) -> dict[str, Any]:
    """The hook payload in ``body``, checked so that storing it cannot fail or lie.

    Raises ``MalformedEventError`` for bytes that are not strict JSON in UTF-8 (including
    NaN/Infinity, lone surrogates and absurd nesting), ``InvalidEventError`` for JSON that is
    not an object or holds values memq refuses (NUL characters, integers beyond 64 bits).
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedEventError(f"body is not valid UTF-8 (byte {exc.start})") from None
    try:
        payload = json.loads(text, parse_constant=_refuse_constant)
    except RecursionError:
        raise MalformedEventError("body nests too deeply") from None
    except ValueError as exc:
        raise MalformedEventError(f"body is not valid JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise InvalidEventError(f"body must be a JSON object, not {type(payload).__name__}")
    if _may_hold_refused_values(body):
        check_json_values(payload)
    return payload


# What the walk refuses can only come from these bytes of strict JSON in UTF-8: a NUL or a
# lone surrogate only as a \u escape (raw control characters are not JSON, and UTF-8 has no
# surrogates), an integer beyond 64 bits only as 19 or more digits in a row. Nesting deeper
# than MAX_DEPTH needs more opening brackets than that. The digits are found by mapping every
# digit to "0" and every other byte to " ": a tenth of what a regular expression costs.
_ESCAPE: Final = b"\\u"
_DIGITS_AS_ZEROS: Final = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER: Final = b"0" * 19


def _may_hold_refused_values(body: bytes) -> bool:
    """False when ``body`` (strict JSON) cannot hold a value ``check_json_values`` refuses:
    nearly every hook event, which then costs no walk over its values."""
    if _ESCAPE in body or _LONG_NUMBER in body.translate(_DIGITS_AS_ZEROS):
        return True
    return body.count(b"{") + body.count(b"[") > MAX_DEPTH


def check_json_values(value: Any) -> None:
    """Refuse values that SQLite's JSON or UTF-8 text cannot hold faithfully."""
    stack: list[tuple[Any, int, str]] = [(value, 0, "$")]
    while stack:
        item, depth, where = stack.pop()
        if depth > MAX_DEPTH:
            raise MalformedEventError(f"body nests deeper than {MAX_DEPTH} levels at {where}")
        if isinstance(item, str):
            _check_text(item, where)
        elif isinstance(item, bool) or item is None or isinstance(item, float):
            continue
        elif isinstance(item, int):
            if not MIN_INTEGER <= item <= MAX_INTEGER:
                raise InvalidEventError(f"integer at {where} does not fit in 64 bits")
        elif isinstance(item, dict):
            for key, child in item.items():
                _check_text(key, where)
                stack.append((child, depth + 1, f"{where}.{key}"))
        elif isinstance(item, list):
            stack.extend((child, depth + 1, f"{where}[{i}]") for i, child in enumerate(item))


def json_type(value: object) -> str:
    """What ``value`` is in JSON's words, e.g. "a string", "null"."""
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


# Who sent an event to a team server (memq.memory.origin): only the team intake
# (memq.team.intake) writes it, after authenticating the sender's key.
ORIGIN_FIELD: Final = "memq_origin"


def drop_origin(payload: dict[str, Any]) -> bool:
    """Take a ``memq_origin`` field out of a local event's payload (in place); True when
    there was one. A local event carrying its own would pass for another person's record
    (``memq.memory.origin``) on this machine and on the team server's loopback API."""
    if ORIGIN_FIELD not in payload:
        return False
    del payload[ORIGIN_FIELD]
    return True


def route_event(payload: dict[str, Any]) -> Route:
    """Map a hook payload (memq's shape: ``memq.assistants.base``) to its session, message
    kind and dedupe key. The session's assistant is ``memq_assistant``, Claude Code when absent.

    Raises ``InvalidEventError`` naming the missing or mistyped field, or an assistant memq
    does not know. (``memq hook EVENT`` writes EVENT into the payload's ``hook_event_name``,
    so the daemon routes it alike.)
    """
    name = payload.get("hook_event_name")
    _require_id(name, "hook_event_name")
    session_id = payload.get("session_id")
    _require_id(session_id, "session_id")
    for field in _STRING_FIELDS:
        if field in payload and payload[field] is not None and not isinstance(payload[field], str):
            kind = type(payload[field]).__name__
            raise InvalidEventError(f"field {field!r} must be a string, not {kind}")
    assert isinstance(name, str)
    assert isinstance(session_id, str)
    assistant = payload.get(ASSISTANT_FIELD) or ASSISTANT
    if assistant not in KNOWN_ASSISTANTS:
        raise InvalidEventError(f"field {ASSISTANT_FIELD!r} names no assistant memq knows")
    return Route(
        event=name,
        session_key=session_key(session_id, assistant),
        kind=kind_of(name),
        dedupe_key=_dedupe_key(name, payload),
    )


def _dedupe_key(event: str, payload: dict[str, Any]) -> str | None:
    # A natural id wins: two hooks (or a retry) reporting one tool call agree on it.
    tool_use_id = payload.get("tool_use_id")
    if tool_use_id:
        prefix = "tool" if event in TOOL_RESULT_EVENTS else event
        return f"{prefix}:{tool_use_id}"
    if event == HookEvent.USER_PROMPT_SUBMIT and payload.get("prompt_id"):
        return f"prompt:{payload['prompt_id']}"
    hook_event_id = payload.get("memq_event_id")
    if hook_event_id:
        return f"{event}:{hook_event_id}"
    return None


def _require_id(value: object, field: str) -> None:
    if value is None:
        raise InvalidEventError(f"field {field!r} is missing")
    if not isinstance(value, str):
        raise InvalidEventError(f"field {field!r} must be a string, not {type(value).__name__}")
    if not value.strip():
        raise InvalidEventError(f"field {field!r} is empty")
    if len(value) > MAX_SESSION_ID_CHARS:
        raise InvalidEventError(f"field {field!r} is longer than {MAX_SESSION_ID_CHARS} characters")


def _check_text(text: str, where: str) -> None:
    if "\x00" in text:
        raise InvalidEventError(f"text at {where} contains a NUL character")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MalformedEventError(f"text at {where} holds a lone surrogate") from None


def _refuse_constant(name: str) -> Any:
    raise MalformedEventError(f"body is not valid JSON: {name} is not a JSON number")
