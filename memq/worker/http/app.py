"""The ASGI application: the routes behind the request guard, and how an error becomes an
answer. Every answer is JSON ``{"error": ...}`` for an error; bad input is a 4xx naming the
problem. A memq error answers the status its class names (``MemqError.http_status``, see
``memq.exceptions``)."""

from __future__ import annotations

import structlog
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.exceptions import DiskFullError, MemqError
from memq.worker.http import session_auth
from memq.worker.http.request import get_services
from memq.worker.http.routes import ROUTES
from memq.worker.security import RequestGuard
from memq.worker.services import Services
from memq.worker.viewer_logins import ViewerLogins, cookie_name

log = structlog.get_logger("memq.api")


def create_app(
    services: Services, *, token: str, body_limit: int, logins: ViewerLogins | None = None
) -> RequestGuard:
    """The ASGI application: routes behind the request guard. ``logins``: the viewer's login
    codes and sessions (a test passes its own, on its clock)."""
    logins = logins or ViewerLogins()
    app = Starlette(
        routes=[*ROUTES, *session_auth.ROUTES],
        exception_handlers={
            HTTPException: _http_error,
            MemqError: _memq_error,
            Exception: _internal_error,
        },
    )
    app.state.services = services
    app.state.body_limit = body_limit
    app.state.logins = logins
    app.state.session_cookie = cookie_name(services.port)
    return RequestGuard(app, token=token, port=services.port, body_limit=body_limit, logins=logins)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return JSONResponse({"error": exc.detail}, status_code=exc.status_code, headers=exc.headers)


async def _memq_error(request: Request, exc: Exception) -> Response:
    """The answer to a memq error: its class's ``http_status`` with its message; a 503 says
    memq cannot store this now. One with no status goes on, as any error would, to
    ``_internal_error`` (a 500, logged with its traceback)."""
    assert isinstance(exc, MemqError)
    status = exc.http_status
    if status is None:
        raise exc
    if isinstance(exc, DiskFullError):
        return _disk_full(request, exc)
    if status == 503:
        log.warning("api.unavailable", path=request.url.path, error=str(exc))
        return JSONResponse({"error": f"memq cannot store this now: {exc}"}, status_code=503)
    return JSONResponse({"error": str(exc)}, status_code=status)


def _disk_full(request: Request, exc: DiskFullError) -> Response:
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
