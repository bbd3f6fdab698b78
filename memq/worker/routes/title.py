"""A session's title over HTTP: ``PUT /api/sessions/{id}/title``."""

from __future__ import annotations

from typing import Any, Final

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.exceptions import InvalidSettingValueError
from memq.worker.routes.common import get_services, json_body, path_session_key

MAX_TITLE_CHARS: Final = 200


async def set_title(request: Request) -> Response:
    """Body ``{"title": "..."}`` sets the title (a revert keeps it); ``{"title": null}``
    gives back the one from the first prompt."""
    services = get_services(request)
    key = path_session_key(request)
    body = await json_body(request)
    if "title" not in body:
        raise InvalidSettingValueError('give {"title": "..."} or {"title": null}')
    title = _title(body["title"])
    try:
        stored = await services.queue.run_in_transaction(services.store.title_effect(key, title))
    except KeyError:
        raise HTTPException(404, f"no session {key}") from None
    return JSONResponse({"session_id": key, "title": stored, "title_edited": title is not None})


def _title(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise InvalidSettingValueError("'title' must be a non-empty string, or null")
    title = " ".join(value.split())
    if len(title) > MAX_TITLE_CHARS or not title.isprintable():
        raise InvalidSettingValueError(
            f"'title' must be printable and at most {MAX_TITLE_CHARS} characters"
        )
    return title


ROUTES: list[Route] = [
    Route("/api/sessions/{session_id:path}/title", set_title, methods=["PUT"]),
]
