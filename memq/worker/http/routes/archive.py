"""A session's memory to a file and back: ``GET /api/sessions/{id}/export`` and
``POST /api/import``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.exceptions import SessionNotFoundError
from memq.worker import session_operations
from memq.worker.http.params import path_session_key
from memq.worker.http.request import get_services, read_body


async def export_session(request: Request) -> Response:
    """The session's memory as JSON Lines (memq.memory.archive): a metadata line, then one
    line per prompt, observation and summary in time order."""
    key = path_session_key(request)
    services = get_services(request)
    lines = await services.exporter.export(key)
    if lines is None:
        raise SessionNotFoundError(f"no session {key}")
    services.activity.touch(key)
    return Response("".join(lines), media_type="application/x-ndjson")


async def import_session(request: Request) -> Response:
    """Import a ``memq export`` file (the body): 200 with what it added, 400 naming the first
    bad line (``InvalidArchiveError``: nothing is written then)."""
    services = get_services(request)
    body = await read_body(request)
    result = await session_operations.import_session(services, body)
    return JSONResponse(result.to_dict())
