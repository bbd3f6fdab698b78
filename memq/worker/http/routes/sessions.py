"""Sessions: list and read them, and the operations on a whole session (delete, revert,
transfer, fork, title), each a call to ``memq.worker.session_operations``."""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.events import normalize_session_key
from memq.exceptions import InvalidRequestError, InvalidSettingValueError, SessionNotFoundError
from memq.limits import MAX_SESSION_ID_CHARS
from memq.worker import session_operations
from memq.worker.http.params import (
    assistants_param,
    authors_param,
    page_params,
    path_session_key,
)
from memq.worker.http.request import get_services, is_id, parse_json, read_body, read_json


async def list_sessions(request: Request) -> Response:
    """A page of the sessions memory holds (``limit``, ``offset``; ``assistant``: only
    theirs, ``author``: only those holding these people's records, each repeatable or
    comma-separated)."""
    limit, offset = page_params(request)
    page = await get_services(request).store.list_sessions(
        limit=limit,
        offset=offset,
        assistants=assistants_param(request),
        authors=authors_param(request),
    )
    return JSONResponse(page.to_dict())


async def get_session(request: Request) -> Response:
    """One session; reading it counts as using it."""
    services = get_services(request)
    key = path_session_key(request)
    detail = await services.store.get_session(key)
    if detail is None:
        raise SessionNotFoundError(f"no session {key}")
    services.activity.touch(key)
    return JSONResponse(detail.to_dict())


async def delete_session(request: Request) -> Response:
    """Forget the session: its queue rows, memory, settings and activity."""
    deleted = await session_operations.delete_session(
        get_services(request), path_session_key(request)
    )
    return JSONResponse(deleted.to_dict())


async def revert_session(request: Request) -> Response:
    """Forget what the session learned after a point, as after rewinding a conversation:
    body ``{"after": MESSAGE_ID}`` (that message and everything before it stay) or
    ``{"last": N}`` (its N newest messages that left memory go)."""
    key = path_session_key(request)
    after, last = _revert_cut(await read_json(request))
    reverted = await session_operations.revert_session(
        get_services(request), key, after=after, last=last
    )
    return JSONResponse(reverted.to_dict())


def _revert_cut(body: dict[str, Any]) -> tuple[int | None, int | None]:
    """The cut a revert body asks for, ``(after, last)`` with one of the two given;
    ``InvalidRequestError`` (422) naming what is wrong otherwise."""
    given = [name for name in ("after", "last") if body.get(name) is not None]
    if not given:
        raise InvalidRequestError(
            'give "after" (a message id: it and everything before it stay) or "last" '
            "(how many of the newest messages that left memory to forget)"
        )
    if len(given) > 1:
        raise InvalidRequestError('give "after" or "last", not both')
    name = given[0]
    value = body[name]
    if not is_id(value):
        what = "a message id" if name == "after" else "a number of messages"
        shown = json.dumps(value)[:40]
        raise InvalidRequestError(
            f'"{name}" must be {what}, a whole number of at least 1, not {shown}'
        )
    return (value, None) if name == "after" else (None, value)


async def transfer_session(request: Request) -> Response:
    """Move the session's memory and queue rows to another session: body ``{"to": ID}``
    (a bare id or ``claude-code:<id>``); an existing target is merged into. ``records``
    moved; ``merged`` were the source's copies of records the target held already."""
    key = path_session_key(request)
    target = (await read_json(request)).get("to")
    if not isinstance(target, str) or not target.strip():
        raise InvalidRequestError('give {"to": SESSION_ID}')
    transferred = await session_operations.transfer_session(
        get_services(request), key, normalize_session_key(target.strip())
    )
    return JSONResponse(transferred.to_dict())


async def fork_session(request: Request) -> Response:
    """Body ``{"to": ID}`` (a bare id or ``claude-code:<id>``), or none for a new random id:
    201 with the fork (the two sessions and how many records the child inherited); 404 when
    memory has no such session, 409 when the target exists (in memory or in the queue)."""
    key = path_session_key(request)
    raw = await read_body(request)
    target = (parse_json(raw) if raw.strip() else {}).get("to")
    if target is None:
        to_key = None
    elif isinstance(target, str) and target.strip() and len(target.strip()) <= MAX_SESSION_ID_CHARS:
        to_key = normalize_session_key(target.strip())
    else:
        raise InvalidRequestError(
            f'give {{"to": SESSION_ID}}, at most {MAX_SESSION_ID_CHARS} characters'
        )
    result = await session_operations.fork_session(get_services(request), key, to_key)
    return JSONResponse(result.to_dict(), status_code=201)


async def set_title(request: Request) -> Response:
    """Body ``{"title": "..."}`` sets the title (a revert keeps it); ``{"title": null}``
    gives back the one from the first prompt."""
    key = path_session_key(request)
    body = await read_json(request)
    if "title" not in body:
        raise InvalidSettingValueError('give {"title": "..."} or {"title": null}')
    titled = await session_operations.set_title(get_services(request), key, body["title"])
    return JSONResponse(titled.to_dict())
