"""Forking a session over HTTP: ``POST /api/sessions/{id}/fork``."""

from __future__ import annotations

import uuid

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.events import MAX_ID_CHARS, normalize_session_key, parse_event_body
from memq.exceptions import ForkParentNotFoundError, ForkTargetExistsError, InvalidEventError
from memq.memory.fork import fork_effect
from memq.worker.forks import log_fork
from memq.worker.routes.common import get_services, path_session_key, read_body


async def fork_session(request: Request) -> Response:
    """Body ``{"to": ID}`` (a bare id or ``claude-code:<id>``), or none for a new random id:
    201 with the fork (the two sessions and how many records the child inherited); 404 when
    memory has no such session, 409 when the target exists (in memory or in the queue)."""
    services = get_services(request)
    key = path_session_key(request)
    raw = await read_body(request)
    body = parse_event_body(raw) if raw.strip() else {}
    target = body.get("to")
    if target is None:
        to_key = normalize_session_key(str(uuid.uuid4()))
    elif isinstance(target, str) and target.strip() and len(target.strip()) <= MAX_ID_CHARS:
        to_key = normalize_session_key(target.strip())
    else:
        raise InvalidEventError(f'give {{"to": SESSION_ID}}, at most {MAX_ID_CHARS} characters')
    if to_key == key:
        raise InvalidEventError("a session cannot be forked into itself")
    try:
        result = await services.queue.run_in_transaction(fork_effect(key, to_key))
    except ForkParentNotFoundError:
        raise HTTPException(404, f"no session {key}") from None
    except ForkTargetExistsError:
        raise HTTPException(409, f"session {to_key} already exists") from None
    services.forks.mark_seen(to_key)  # its events must not be linked again
    log_fork(result)
    return JSONResponse(result.to_dict(), status_code=201)


ROUTES: list[Route] = [
    Route("/api/sessions/{session_id:path}/fork", fork_session, methods=["POST"]),
]
