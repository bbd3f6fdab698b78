"""What every route needs from a request: the daemon's services, the body within its limit,
query parameters checked, and the session the path names."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

from starlette.exceptions import HTTPException
from starlette.requests import Request

from memq.events import normalize_session_key, parse_event_body

if TYPE_CHECKING:
    from memq.worker.services import Services

MAX_PAGE = 10_000


def get_services(request: Request) -> Services:
    """The daemon's services, set on the app by ``create_app``."""
    found: Services = request.app.state.services
    return found


async def read_body(request: Request) -> bytes:
    """The body, refusing it (413) as soon as it passes the limit, whatever the headers say."""
    limit: int = request.app.state.body_limit
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HTTPException(413, f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    """The body as a JSON object: 400 when it is not JSON, 422 when it is not an object."""
    return parse_event_body(await read_body(request))


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
        raise HTTPException(422, f"query parameter {name!r} must be a whole number {low}..{high}")
    return int(raw)


def path_session_key(request: Request) -> str:
    """The session the path names (``claude-code:<id>`` or a bare Claude Code id)."""
    return normalize_session_key(str(request.path_params["session_id"]))


def is_id(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON whole number > 0 (a message id, a count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
