"""The intake: ``POST /api/events``, one hook payload in, 202 once it is durable.

The hot path: every hook event passes here, so it does its few steps in line (no layers)."""

from __future__ import annotations

from typing import Any

import anyio
import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq import events
from memq.events import route_event
from memq.exceptions import DiskFullError, StorageError
from memq.memory.context import ContextBuilder
from memq.memory.projects import project_for
from memq.privacy import is_skipped, strip_private
from memq.queue import Enqueued
from memq.worker.http.request import get_services, json_body
from memq.worker.services import Services

log = structlog.get_logger("memq.api")


async def post_event(request: Request) -> Response:
    """Accept one hook payload: 202 once it is durable, 200 for a duplicate."""
    services = get_services(request)
    payload = await json_body(request)
    route = route_event(payload)
    services.activity.touch(route.session_key)  # in memory; written in batches
    if is_skipped(payload, services.skip_tools):
        return JSONResponse({"status": "skipped"}, status_code=200)
    payload = strip_private(payload)
    message_id, created = await _store_event(services, route, payload)
    if created:
        services.sessions.notify(route.session_key)
    # Debug level: at info, formatting and writing this line cost more than storing the
    # event. The queue row is the record of what was accepted.
    log.debug(
        "event.accepted" if created else "event.duplicate",
        session_id=route.session_key,
        message_id=message_id,
        hook_event=route.event,
    )
    body: dict[str, Any] = {
        "status": "queued" if created else "duplicate",
        "message_id": message_id,
    }
    if route.event == "SessionStart":
        cwd = payload.get("cwd")
        body["additionalContext"] = await _session_start_context(
            services.context, cwd if isinstance(cwd, str) else None
        )
        return JSONResponse(body, status_code=200)
    return JSONResponse(body, status_code=202 if created else 200)


async def _store_event(services: Services, route: events.Route, payload: Any) -> Enqueued:
    """Enqueue the event (a forked session's first one after its copy of the parent's
    memory). On a full disk the first out-of-space error releases the reserve, so the event
    is tried once more; with the reserve spent it is refused (``DiskFullError``: 503)."""
    disk = services.disk
    retried = False
    while True:
        if not disk.accepting:
            raise DiskFullError(disk.message())
        try:
            await services.forks.before_enqueue(route.session_key, route.event, payload)
            return await services.queue.enqueue(
                route.session_key, route.kind, payload, route.dedupe_key
            )
        except DiskFullError:
            if retried or not disk.accepting:
                raise
            retried = True  # this very error released the reserve: there is room now


async def _session_start_context(builder: ContextBuilder, cwd: str | None) -> str:
    """What a session starting in ``cwd`` is told memq remembers of its project ("" when
    nothing, or when memory cannot be read now: a SessionStart never fails for its context)."""
    project = await anyio.to_thread.run_sync(project_for, cwd)
    try:
        return await builder.build(project)
    except StorageError as exc:
        log.warning("context.unavailable", project=project, error=str(exc))
        return ""
