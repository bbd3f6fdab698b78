"""What a route reads from a request besides its parameters: the daemon's services and the
body, within its limit."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeGuard

from starlette.requests import Request

from memq.events import parse_event_body
from memq.exceptions import (
    BodyTooLargeError,
    InvalidEventError,
    InvalidRequestError,
    MalformedEventError,
    MalformedRequestError,
)

if TYPE_CHECKING:
    from memq.worker.services import Services


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
            raise BodyTooLargeError(f"body larger than the limit of {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def json_body(request: Request) -> dict[str, Any]:
    """A hook event's body as a JSON object: ``MalformedEventError`` (400) when it is not
    JSON, ``InvalidEventError`` (422) when it is not an object."""
    return parse_event_body(await read_body(request))


async def read_json(request: Request) -> dict[str, Any]:
    """The body of a request that is not a hook event, as a JSON object (``parse_json``)."""
    return parse_json(await read_body(request))


def parse_json(raw: bytes) -> dict[str, Any]:
    """``raw`` as a JSON object, read as strictly as a hook event: ``MalformedRequestError``
    (400) when it is not JSON, ``InvalidRequestError`` (422) when it is not an object."""
    try:
        return parse_event_body(raw)
    except MalformedEventError as exc:
        raise MalformedRequestError(str(exc)) from None
    except InvalidEventError as exc:
        raise InvalidRequestError(str(exc)) from None


def is_id(value: object) -> TypeGuard[int]:
    """Whether ``value`` is a JSON whole number > 0 (a message id, a count)."""
    return isinstance(value, int) and not isinstance(value, bool) and value > 0
