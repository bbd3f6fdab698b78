"""The HTTP API (Starlette). Every answer is JSON; bad input is a 4xx naming the problem."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import Any

import anyio
import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq import __version__, events
from memq.events import normalize_session_key, route_event
from memq.exceptions import (
    DiskFullError,
    EventError,
    InvalidEventError,
    InvalidMessageError,
    InvalidQueryError,
    InvalidSettingValueError,
    QueueClosedError,
    StorageError,
)
from memq.memory.answers import MAX_CONTEXT_BUDGET, context_answer, parse_time, search_answer
from memq.memory.context import DEFAULT_BUDGET_TOKENS, ContextBuilder
from memq.memory.records import ObservationKind, Page
from memq.memory.search import QuerySyntax, RecordType
from memq.memory.transfer import import_effect
from memq.privacy import is_skipped, strip_private
from memq.queue import Enqueued, MessageStatus, Queue
from memq.worker.disk import DiskState
from memq.worker.projects import project_for
from memq.worker.routes import forks as fork_routes
from memq.worker.routes import history as history_routes
from memq.worker.routes import session_config as session_config_routes
from memq.worker.routes import title as title_routes
from memq.worker.routes.common import (
    get_services,
    int_param,
    is_id,
    json_body,
    page_params,
    path_session_key,
    read_body,
)
from memq.worker.security import RequestGuard
from memq.worker.services import Services
from memq.worker.session_pauses import paused_processors
from memq.worker.status import queue_status, spool_counts

log = structlog.get_logger("memq.api")

__all__ = ["Services", "create_app"]


def create_app(services: Services, *, token: str, body_limit: int) -> RequestGuard:
    """The ASGI application: routes behind the request guard."""
    app = Starlette(
        routes=[
            Route("/api/health", health, methods=["GET"]),
            Route("/api/events", post_event, methods=["POST"]),
            Route("/api/status", status, methods=["GET"]),
            Route("/api/sessions", list_sessions, methods=["GET"]),
            Route("/api/sessions/{session_id:path}/observations", observations, methods=["GET"]),
            Route("/api/sessions/{session_id:path}/summaries", summaries, methods=["GET"]),
            Route("/api/sessions/{session_id:path}/export", export_session, methods=["GET"]),
            Route("/api/sessions/{session_id:path}/revert", revert_session, methods=["POST"]),
            Route("/api/sessions/{session_id:path}/transfer", transfer_session, methods=["POST"]),
            *fork_routes.ROUTES,
            *session_config_routes.ROUTES,
            *title_routes.ROUTES,
            *history_routes.ROUTES,
            Route("/api/sessions/{session_id:path}", get_session, methods=["GET"]),
            Route("/api/sessions/{session_id:path}", delete_session, methods=["DELETE"]),
            Route("/api/context", get_context, methods=["GET"]),
            Route("/api/search", search, methods=["GET"]),
            Route("/api/timeline", timeline, methods=["GET"]),
            Route("/api/failed", failed, methods=["GET"]),
            Route("/api/failed/retry", retry_failed, methods=["POST"]),
            Route("/api/resume", resume, methods=["POST"]),
            Route("/api/import", import_session, methods=["POST"]),
        ],
        exception_handlers={
            HTTPException: _http_error,
            EventError: _event_error,
            InvalidMessageError: _unprocessable,
            InvalidQueryError: _bad_query,
            InvalidSettingValueError: _unprocessable,
            QueueClosedError: _unavailable,
            DiskFullError: _disk_full,
            StorageError: _unavailable,
            Exception: _internal_error,
        },
    )
    app.state.services = services
    app.state.body_limit = body_limit
    return RequestGuard(app, token=token, port=services.port, body_limit=body_limit)


# -- routes -------------------------------------------------------------------------------


async def health(request: Request) -> Response:
    """Whether the daemon runs (200 whenever it answers), and whether its disk is full
    (the details, paths included, are for ``/api/status``: this route needs no token)."""
    services = get_services(request)
    disk = services.disk
    return JSONResponse(
        {
            "status": "ok" if disk.state is DiskState.OK else "disk_full",
            "state": services.state(),
            "version": __version__,
            "pid": services.pid,
            "disk": {
                "state": disk.state.value,
                "full": disk.state is not DiskState.OK,
                "accepting": disk.accepting,
            },
        }
    )


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


async def status(request: Request) -> Response:
    services = get_services(request)
    stats = await services.queue.stats()
    active = services.sessions.active_sessions
    return JSONResponse(
        {
            "state": services.state(),
            "pid": services.pid,
            "port": services.port,
            "version": __version__,
            "processor": services.processors.default.name,
            "started_at": services.started_at,
            "uptime_seconds": round(time.time() - services.started_at, 3),
            **queue_status(
                stats.counts.as_dict(),
                {key: counts.as_dict() for key, counts in stats.sessions.items()},
            ),
            "active_session_count": len(active),
            "active_generators": len(active),
            "active_sessions": active,
            "processing": services.sessions.processing,
            "paused": services.sessions.paused,
            "pause_reason": services.sessions.pause_reason,
            "paused_sessions": services.configs.paused_sessions,
            "paused_processors": paused_processors(services.configs, services.processors),
            "ephemeral": services.ephemeral,
            "tracked_sessions": services.activity.tracked,
            "session_ttl": services.activity.ttl,
            "database_bytes": stats.database_bytes,
            "wal_bytes": stats.wal_bytes,
            "disk": services.disk.report(),
            "spool": services.spool.counts() if services.spool else spool_counts(None),
            "settings": services.settings_report,
        }
    )


async def list_sessions(request: Request) -> Response:
    limit, offset = page_params(request)
    page = await get_services(request).store.list_sessions(limit=limit, offset=offset)
    return JSONResponse(page.to_dict())


async def get_session(request: Request) -> Response:
    services = get_services(request)
    key = path_session_key(request)
    detail = await services.store.get_session(key)
    if detail is None:
        raise HTTPException(404, f"no session {key}")
    services.activity.touch(key)
    return JSONResponse(detail.to_dict())


async def observations(request: Request) -> Response:
    return await _record_page(request, get_services(request).store.observations)


async def summaries(request: Request) -> Response:
    return await _record_page(request, get_services(request).store.summaries)


async def _record_page(request: Request, read: Callable[..., Awaitable[Page[Any]]]) -> Response:
    """A page of the session's records (``limit``, ``offset``); reading a session that has
    some counts as using it."""
    key = path_session_key(request)
    limit, offset = page_params(request)
    page = await read(key, limit=limit, offset=offset)
    if page.total:
        get_services(request).activity.touch(key)
    return JSONResponse(page.to_dict())


async def delete_session(request: Request) -> Response:
    """Stop the session's generator, then forget its queue rows and its memory."""
    services = get_services(request)
    key = path_session_key(request)
    await services.sessions.forget(key)
    queue_rows = await services.queue.forget_session(key)
    memory_rows = await services.queue.run_in_transaction(services.store.forget_effect(key))
    await services.configs.forget(key)
    await services.activity.forget(key)
    if not queue_rows and not memory_rows:
        raise HTTPException(404, f"no session {key}")
    log.info("session.deleted", session_id=key, queue_rows=queue_rows, memory_rows=memory_rows)
    return JSONResponse({"deleted": key, "queue_rows": queue_rows, "memory_rows": memory_rows})


async def _session_start_context(builder: ContextBuilder, cwd: str | None) -> str:
    """What a session starting in ``cwd`` is told memq remembers of its project ("" when
    nothing, or when memory cannot be read now: a SessionStart never fails for its context)."""
    project = await anyio.to_thread.run_sync(project_for, cwd)
    try:
        return await builder.build(project)
    except StorageError as exc:
        log.warning("context.unavailable", project=project, error=str(exc))
        return ""


async def get_context(request: Request) -> Response:
    """The SessionStart context of a project: ``?cwd=DIR`` (the project is its git root) or
    ``?project=DIR``; optional ``budget`` (tokens, default 2000) and ``exclude_session``.
    ``has_memory`` in the answer tells an empty context of a project memory knows nothing of
    from one whose budget is too small for any of it."""
    params = request.query_params
    cwd, project = params.get("cwd"), params.get("project")
    if (cwd is None) == (project is None):
        raise HTTPException(422, "give exactly one of the query parameters 'cwd' and 'project'")
    if project is None:
        # lru-cached, but the first look-up of a directory stats its parents: off the loop.
        project = await anyio.to_thread.run_sync(project_for, cwd)
    budget = int_param(request, "budget", DEFAULT_BUDGET_TOKENS, low=1, high=MAX_CONTEXT_BUDGET)
    exclude = params.get("exclude_session")
    answer = await context_answer(
        get_services(request).context,
        project or None,
        budget_tokens=budget,
        exclude_session=normalize_session_key(exclude) if exclude else None,
    )
    return JSONResponse(answer)


async def revert_session(request: Request) -> Response:
    """Forget what the session learned after a point, as after rewinding a conversation:
    body ``{"after": MESSAGE_ID}`` (that message and everything before it stay) or
    ``{"last": N}`` (its N newest messages that left memory go)."""
    services = get_services(request)
    key = path_session_key(request)
    cut, value = _revert_cut(await json_body(request))
    if not await services.store.has_session(key):
        raise HTTPException(404, f"no session {key}")
    if cut == "after":
        # A cut after a message the session does not have would be a guess at what to keep.
        if not await services.store.has_message(key, value):
            raise HTTPException(
                404, f"{key} has no message {value} (memq history and memq search show its ids)"
            )
        from_id: int | None = value + 1
    else:
        from_id = await services.store.revert_cutoff(key, value)
    queue_rows = memory_rows = 0
    if from_id is not None:
        await services.sessions.forget(key)  # stop its generator; rescheduled below
        queue_rows = await services.queue.forget_session_from(key, from_id)
        memory_rows = await services.queue.run_in_transaction(
            services.store.revert_effect(key, from_id)
        )
        if await services.queue.has_pending(key):
            services.sessions.notify(key)
    log.info(
        "session.reverted",
        session_id=key,
        from_message_id=from_id,
        queue_rows=queue_rows,
        memory_rows=memory_rows,
    )
    return JSONResponse(
        {
            "session_id": key,
            "from_message_id": from_id,
            "queue_rows": queue_rows,
            "memory_rows": memory_rows,
        }
    )


def _revert_cut(body: dict[str, Any]) -> tuple[str, int]:
    """The cut a revert body asks for, ``("after", message id)`` or ``("last", count)``;
    ``InvalidEventError`` (422) naming what is wrong otherwise."""
    given = [name for name in ("after", "last") if body.get(name) is not None]
    if not given:
        raise InvalidEventError(
            'give "after" (a message id: it and everything before it stay) or "last" '
            "(how many of the newest messages that left memory to forget)"
        )
    if len(given) > 1:
        raise InvalidEventError('give "after" or "last", not both')
    name = given[0]
    value = body[name]
    if not is_id(value):
        what = "a message id" if name == "after" else "a number of messages"
        shown = json.dumps(value)[:40]
        raise InvalidEventError(
            f'"{name}" must be {what}, a whole number of at least 1, not {shown}'
        )
    return name, value


async def transfer_session(request: Request) -> Response:
    """Move the session's memory and queue rows to another session: body ``{"to": ID}``
    (a bare id or ``claude-code:<id>``); an existing target is merged into. ``records``
    moved; ``merged`` were the source's copies of records the target held already."""
    services = get_services(request)
    key = path_session_key(request)
    target = (await json_body(request)).get("to")
    if not isinstance(target, str) or not target.strip():
        raise InvalidEventError('give {"to": SESSION_ID}')
    to_key = normalize_session_key(target.strip())
    if to_key == key:
        raise InvalidEventError("a session cannot be transferred to itself")
    if not await services.store.has_session(key):
        raise HTTPException(404, f"no session {key}")
    for session in (key, to_key):
        await services.sessions.forget(session)  # neither may process while rows move
    moved, dropped = await services.queue.move_session(key, to_key)
    result = await services.queue.run_in_transaction(services.store.transfer_effect(key, to_key))
    await services.configs.forget(key)  # its settings were the source session's, not the target's
    await services.activity.forget(key)
    services.activity.touch(to_key)
    if await services.queue.has_pending(to_key):
        services.sessions.notify(to_key)
    log.info(
        "session.transferred",
        session_id=key,
        to=to_key,
        records=result.records,
        merged=result.merged,
        queue_rows=moved,
    )
    return JSONResponse(
        {
            "from": key,
            "to": to_key,
            "records": result.records,
            "merged": result.merged,
            "queue_rows": moved,
            "dropped": dropped,
        }
    )


async def failed(request: Request) -> Response:
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
    body = await json_body(request)
    if body.get("all") is True:
        retried = await services.queue.retry(None)
    else:
        ids = body.get("ids", [body["id"]] if "id" in body else None)
        if not isinstance(ids, list) or not ids or not all(is_id(i) for i in ids):
            raise InvalidEventError(
                'give {"id": N}, {"ids": [N, ...]} or {"all": true}; '
                "a message id is a whole number of at least 1"
            )
        if len(ids) > MAX_RETRY_IDS:
            raise InvalidEventError(f'at most {MAX_RETRY_IDS} ids at once, or {{"all": true}}')
        await _require_failed(services.queue, ids)
        retried = await services.queue.retry(ids)
    for item in await services.queue.sessions_with_backlog():
        services.sessions.notify(item)
    log.info("failed.retried", message_ids=retried)
    return JSONResponse({"retried": retried})


MAX_RETRY_IDS = 1000


async def _require_failed(queue: Queue, ids: list[int]) -> None:
    """Refuse a retry that names a message that does not exist (404) or is not failed (409):
    it would do nothing, and saying "retried" would hide the wrong id."""
    statuses = {message_id: await queue.status_of(message_id) for message_id in dict.fromkeys(ids)}
    missing = [str(message_id) for message_id, status in statuses.items() if status is None]
    if missing:
        noun = "message" if len(missing) == 1 else "messages"
        raise HTTPException(404, f"no {noun} {', '.join(missing)} (memq failed lists the failed)")
    not_failed = [
        f"{message_id} is {status}"
        for message_id, status in statuses.items()
        if status is not None and status is not MessageStatus.FAILED
    ]
    if not_failed:
        raise HTTPException(
            409, f"only failed messages can be retried: message {', '.join(not_failed)}"
        )


async def resume(request: Request) -> Response:
    """Resume processing after a pause (e.g. once the model API key is fixed)."""
    resumed = await get_services(request).sessions.resume()
    return JSONResponse({"resumed": resumed})


MAX_SEARCH_RESULTS = 1000
MAX_TIMELINE_SIDE = 100


async def search(request: Request) -> Response:
    """Full-text search of memory: ``?q=`` plus optional project, session, type, kind, file,
    since, until, limit, min_score and syntax (words or fts)."""
    params = request.query_params
    query = params.get("q")
    if query is None:
        raise HTTPException(422, "query parameter 'q' is required")
    since, until = _time_param(request, "since"), _time_param(request, "until")
    if since is not None and until is not None and since > until:
        raise HTTPException(422, "query parameter 'since' must not be after 'until'")
    session = params.get("session")
    hits = await get_services(request).search.search(
        query,
        project=params.get("project") or None,
        session_key=normalize_session_key(session) if session else None,
        types=_choices(request, "type", RecordType),
        kinds=_choices(request, "kind", ObservationKind),
        file=params.get("file") or None,
        since=since,
        until=until,
        limit=int_param(request, "limit", 20, low=1, high=MAX_SEARCH_RESULTS),
        min_score=_float_param(request, "min_score"),
        syntax=(_choices(request, "syntax", QuerySyntax) or [QuerySyntax.WORDS])[-1],
    )
    return JSONResponse(search_answer(hits))


async def timeline(request: Request) -> Response:
    """``?around=<message id>``: the record that message produced and the records of its
    session just before and after it (``before``, ``after``: 0..100, default 5)."""
    if "around" not in request.query_params:
        raise HTTPException(422, "query parameter 'around' is required")
    around = int_param(request, "around", 0, low=1, high=2**63 - 1)
    result = await get_services(request).search.timeline(
        around,
        before=int_param(request, "before", 5, low=0, high=MAX_TIMELINE_SIDE),
        after=int_param(request, "after", 5, low=0, high=MAX_TIMELINE_SIDE),
    )
    if result is None:
        raise HTTPException(404, f"no memory record came from message {around}")
    return JSONResponse(result.to_dict())


def _choices(request: Request, name: str, allowed: Iterable[str]) -> list[str] | None:
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
    choices = list(allowed)
    unknown = [value for value in values if value not in choices]
    if unknown:
        raise HTTPException(
            422, f"query parameter {name!r} must be one of {', '.join(choices)}, not {unknown[0]!r}"
        )
    return values


def _time_param(request: Request, name: str) -> datetime | None:
    """An ISO-8601 time (``2025-01-31``, ``2025-01-31T12:00:00Z``, ...); UTC when it names
    no zone."""
    raw = request.query_params.get(name)
    if not raw:
        return None
    try:
        return parse_time(raw)
    except ValueError:
        raise HTTPException(422, f"query parameter {name!r} must be an ISO-8601 time") from None


def _float_param(request: Request, name: str) -> float | None:
    raw = request.query_params.get(name)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise HTTPException(422, f"query parameter {name!r} must be a number")
    return value


async def _bad_query(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=400)


async def export_session(request: Request) -> Response:
    """The session's memory as JSON Lines (memq.memory.transfer): a metadata line, then one
    line per prompt, observation and summary in time order."""
    key = path_session_key(request)
    services = get_services(request)
    lines = await services.exporter.export(key)
    if lines is None:
        raise HTTPException(404, f"no session {key}")
    services.activity.touch(key)
    return Response("".join(lines), media_type="application/x-ndjson")


async def import_session(request: Request) -> Response:
    """Import a ``memq export`` file (the body): 200 with what it added, 400 naming the first
    bad line (nothing is written then)."""
    services = get_services(request)
    body = await read_body(request)
    try:
        # Checking every line of a large file takes a moment: off the event loop.
        effect = await anyio.to_thread.run_sync(import_effect, body)
    except ValueError as exc:
        raise HTTPException(400, str(exc)) from None
    result = await services.queue.run_in_transaction(effect)
    log.info(
        "session.imported",
        session_id=result.session_key,
        created=result.session_created,
        imported=result.imported,
        skipped=result.skipped,
        remapped=result.remapped,
    )
    return JSONResponse(result.to_dict())


# -- helpers ------------------------------------------------------------------------------


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _event_error(request: Request, exc: Exception) -> Response:
    code = 422 if isinstance(exc, InvalidEventError) else 400
    return JSONResponse({"error": str(exc)}, status_code=code)


async def _unprocessable(request: Request, exc: Exception) -> Response:
    return JSONResponse({"error": str(exc)}, status_code=422)


async def _unavailable(request: Request, exc: Exception) -> Response:
    log.warning("api.unavailable", path=request.url.path, error=str(exc))
    return JSONResponse({"error": f"memq cannot store this now: {exc}"}, status_code=503)


async def _disk_full(request: Request, exc: Exception) -> Response:
    """503 naming the full disk (``reason``: ``disk_full``), so the hook keeps the event."""
    log.warning("api.disk_full", path=request.url.path, error=str(exc))
    disk = get_services(request).disk
    return JSONResponse(
        {
            "error": f"memq cannot store this now: {disk.message() or exc}",
            "reason": "disk_full",
            "disk": disk.report(),
        },
        status_code=503,
    )


async def _internal_error(request: Request, exc: Exception) -> Response:
    log.error("api.error", path=request.url.path, exc_info=exc)
    return JSONResponse({"error": "internal error (see the memq log)"}, status_code=500)
