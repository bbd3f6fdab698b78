"""The ASGI application: the routes behind the request guard, and how an error becomes an
answer. Every answer is JSON ``{"error": ...}`` for an error; bad input is a 4xx naming the
problem."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.exceptions import (
    DiskFullError,
    EventError,
    ForkParentNotFoundError,
    ForkTargetExistsError,
    InvalidEventError,
    InvalidMessageError,
    InvalidQueryError,
    InvalidSettingValueError,
    MessageNotFoundError,
    QueueClosedError,
    SessionNotFoundError,
    StorageError,
)
from memq.worker.http.request import get_services
from memq.worker.http.routes import ROUTES
from memq.worker.security import RequestGuard
from memq.worker.services import Services

log = structlog.get_logger("memq.api")

Handler = Callable[[Request, Exception], Awaitable[Response]]


def create_app(services: Services, *, token: str, body_limit: int) -> RequestGuard:
    """The ASGI application: routes behind the request guard."""
    app = Starlette(
        routes=ROUTES,
        exception_handlers={
            HTTPException: _http_error,
            EventError: _event_error,
            InvalidMessageError: _answer(422),
            InvalidQueryError: _answer(400),
            InvalidSettingValueError: _answer(422),
            SessionNotFoundError: _answer(404),
            MessageNotFoundError: _answer(404),
            ForkParentNotFoundError: _answer(404),
            ForkTargetExistsError: _answer(409),
            QueueClosedError: _unavailable,
            DiskFullError: _disk_full,
            StorageError: _unavailable,
            Exception: _internal_error,
        },
    )
    app.state.services = services
    app.state.body_limit = body_limit
    return RequestGuard(app, token=token, port=services.port, body_limit=body_limit)


def _answer(status_code: int) -> Handler:
    """A handler answering the error's message with ``status_code``."""

    async def handle(request: Request, exc: Exception) -> Response:
        return JSONResponse({"error": str(exc)}, status_code=status_code)

    return handle


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _event_error(request: Request, exc: Exception) -> Response:
    code = 422 if isinstance(exc, InvalidEventError) else 400
    return JSONResponse({"error": str(exc)}, status_code=code)


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
