"""The one place query and path parameters are read: each checked as it is read, a bad one a
422 that names it."""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import datetime

from starlette.requests import Request

from memq.assistants import canonical_name
from memq.events import normalize_session_key
from memq.exceptions import InvalidRequestError
from memq.limits import MAX_PAGE
from memq.memory.answers import parse_time


def path_session_key(request: Request) -> str:
    """The session the path names (``claude-code:<id>`` or a bare Claude Code id)."""
    return normalize_session_key(str(request.path_params["session_id"]))


def page_params(request: Request) -> tuple[int, int]:
    """``limit`` (1..10000, default 100) and ``offset`` query parameters."""
    return (
        int_param(request, "limit", 100, low=1, high=MAX_PAGE),
        int_param(request, "offset", 0, low=0, high=2**62),
    )


def int_param(request: Request, name: str, default: int, *, low: int, high: int) -> int:
    """A whole-number query parameter within ``low..high``, else 422 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise InvalidRequestError(f"query parameter {name!r} must be a whole number {low}..{high}")
    return int(raw)


def float_param(request: Request, name: str) -> float | None:
    """A finite number; None when absent."""
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise InvalidRequestError(f"query parameter {name!r} must be a number")
    return value


def time_param(request: Request, name: str) -> datetime | None:
    """An ISO-8601 time (``2025-01-31``, ``2025-01-31T12:00:00Z``, ...); UTC when it names
    no zone; None when absent or empty."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise InvalidRequestError(f"query parameter {name!r} must be an ISO-8601 time") from None


def choices(request: Request, name: str, allowed: Iterable[str]) -> list[str] | None:
    """Every value of a repeatable parameter (``?type=a&type=b`` or ``?type=a,b``), each one
    of ``allowed``; None when absent."""
    values = [
        part.strip()
        for value in request.query_params.getlist(name)
        for part in value.split(",")
        if part.strip()
    ]
    if not values:
        return None
    allowed_values = list(allowed)
    unknown = [value for value in values if value not in allowed_values]
    if unknown:
        raise InvalidRequestError(
            f"query parameter {name!r} must be one of {', '.join(allowed_values)}, "
            f"not {unknown[0]!r}",
        )
    return values


def assistants_param(request: Request) -> list[str] | None:
    """``?assistant=codex&assistant=claude`` or ``?assistant=codex,claude``: the assistants
    named, as memq keys sessions by them (``memq.assistants.canonical_name``: ``claude`` is
    ``claude-code``); None when absent. An unknown name is ``UnknownAssistantError`` (422)."""
    values = [
        part.strip()
        for value in request.query_params.getlist("assistant")
        for part in value.split(",")
        if part.strip()
    ]
    if not values:
        return None
    return list(dict.fromkeys(canonical_name(value) for value in values))


def authors_param(request: Request) -> list[str] | None:
    """``?author=alice&author=bob`` or ``?author=alice,bob``: the people whose records to
    keep (a team key's name, ``memq.memory.origin``); None when absent."""
    values = [
        part.strip()
        for value in request.query_params.getlist("author")
        for part in value.split(",")
        if part.strip()
    ]
    return list(dict.fromkeys(values)) or None
