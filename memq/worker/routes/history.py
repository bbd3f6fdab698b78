"""A session's history for prompting over HTTP: ``GET /api/sessions/{id}/history``."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.memory.history import DEFAULT_HISTORY_ITEMS, MAX_HISTORY_ITEMS
from memq.worker.routes.common import get_services, int_param, path_session_key


async def get_history(request: Request) -> Response:
    """``?max=N`` (1..1000, default 50): the session's newest prompts and observations since
    its last summary, oldest first and starting at a prompt, with how many were left out and
    the message id of the summary they follow (null when it has none)."""
    key = path_session_key(request)
    max_items = int_param(request, "max", DEFAULT_HISTORY_ITEMS, low=1, high=MAX_HISTORY_ITEMS)
    history = await get_services(request).store.history(key, max_items)
    if history is None:
        raise HTTPException(404, f"no session {key}")
    return JSONResponse({"session_id": key, **history.to_dict()})


ROUTES: list[Route] = [
    Route("/api/sessions/{session_id:path}/history", get_history, methods=["GET"]),
]
