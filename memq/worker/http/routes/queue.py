"""The queue's failed messages and pauses: list and retry the failed, resume processing."""

from __future__ import annotations

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.events import normalize_session_key
from memq.exceptions import InvalidRequestError, MessageNotFailedError, MessageNotFoundError
from memq.queue import MessageStatus, QueueBase
from memq.worker.http.params import page_params
from memq.worker.http.request import get_services, is_id, read_json

log = structlog.get_logger("memq.api")

MAX_RETRY_IDS = 1000


async def failed(request: Request) -> Response:
    """The failed messages, newest first: ``?session=`` and ``limit`` optional."""
    services = get_services(request)
    limit, _ = page_params(request)
    session = request.query_params.get("session")
    items = await services.queue.failed(
        session_id=normalize_session_key(session) if session else None, limit=limit
    )
    return JSONResponse(
        {
            "items": [
                {
                    "message_id": m.id,
                    "session_id": m.session_id,
                    "kind": m.kind.value,
                    "attempts": m.attempts,
                    "created_at": m.created_at.isoformat(),
                    "failed_at": m.failed_at.isoformat(),
                    "last_error": m.last_error,
                }
                for m in items
            ],
            "total": len(items),
        }
    )


async def retry_failed(request: Request) -> Response:
    """Body ``{"id": N}``, ``{"ids": [...]}`` or ``{"all": true}``."""
    services = get_services(request)
    body = await read_json(request)
    if body.get("all") is True:
        retried = await services.queue.retry(None)
    else:
        ids = body.get("ids", [body["id"]] if "id" in body else None)
        if not isinstance(ids, list) or not ids or not all(is_id(i) for i in ids):
            raise InvalidRequestError(
                'give {"id": N}, {"ids": [N, ...]} or {"all": true}; '
                "a message id is a whole number of at least 1"
            )
        if len(ids) > MAX_RETRY_IDS:
            raise InvalidRequestError(f'at most {MAX_RETRY_IDS} ids at once, or {{"all": true}}')
        await _require_failed(services.queue, ids)
        retried = await services.queue.retry(ids)
    for item in await services.queue.sessions_with_backlog():
        services.sessions.notify(item)
    log.info("failed.retried", message_ids=retried)
    return JSONResponse({"retried": retried})


async def _require_failed(queue: QueueBase, ids: list[int]) -> None:
    """Refuse a retry that names a message that does not exist (404) or is not failed (409):
    it would do nothing, and saying "retried" would hide the wrong id."""
    statuses = {message_id: await queue.status_of(message_id) for message_id in dict.fromkeys(ids)}
    missing = [str(message_id) for message_id, status in statuses.items() if status is None]
    if missing:
        noun = "message" if len(missing) == 1 else "messages"
        raise MessageNotFoundError(f"no {noun} {', '.join(missing)} (memq failed lists the failed)")
    not_failed = [
        f"{message_id} is {status}"
        for message_id, status in statuses.items()
        if status is not None and status is not MessageStatus.FAILED
    ]
    if not_failed:
        raise MessageNotFailedError(
            f"only failed messages can be retried: message {', '.join(not_failed)}"
        )


async def resume(request: Request) -> Response:
    """Resume processing after a pause (e.g. once the model API key is fixed)."""
    resumed = await get_services(request).sessions.resume()
    return JSONResponse({"resumed": resumed})
