"""The viewer's login: ``POST /api/login-codes`` (bearer token only) gives ``memq open`` a
one-time code, ``GET /login?code=...`` exchanges it for the session cookie and redirects to
``/`` (so the code does not stay in the address bar), ``GET /api/session`` gives the page its
CSRF token and ``DELETE /api/session`` logs it out. The codes and sessions live in the
daemon's memory (``memq.worker.viewer_logins``); a code is never logged."""

from __future__ import annotations

from typing import Final

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from memq.worker.viewer_logins import ViewerLogins

log = structlog.get_logger("memq.api")

LOGIN_PATH: Final = "/login"
NO_STORE: Final = {"Cache-Control": "no-store"}


def get_logins(request: Request) -> ViewerLogins:
    """The daemon's viewer logins, set on the app by ``create_app``."""
    found: ViewerLogins = request.app.state.logins
    return found


def get_cookie_name(request: Request) -> str:
    """The session cookie's name for this daemon's port, set on the app by ``create_app``."""
    name: str = request.app.state.session_cookie
    return name


async def new_login_code(request: Request) -> Response:
    """A one-time login code, for a client holding the bearer token (not for a browser)."""
    if request.state.memq_auth != "token":
        return JSONResponse(
            {"error": "login codes are given to the bearer token only (memq open)"},
            status_code=403,
        )
    logins = get_logins(request)
    code = logins.new_code()
    log.info("viewer.login_code", expires_in=logins.code_lifetime)
    return JSONResponse(
        {"path": f"{LOGIN_PATH}?code={code}", "expires_in": logins.code_lifetime},
        status_code=201,
        headers=NO_STORE,
    )


async def login(request: Request) -> Response:
    """Exchange a valid code for the session cookie and go to ``/``; 401 otherwise."""
    logins = get_logins(request)
    code = request.query_params.get("code", "")
    session_id = logins.redeem(code) if code else None
    if session_id is None:
        log.warning("viewer.login_refused")
        return PlainTextResponse(
            "This login link is invalid, used or expired. Run `memq open` for a new one.\n",
            status_code=401,
            headers=NO_STORE,
        )
    log.info("viewer.login")
    response = RedirectResponse("/", status_code=303, headers=NO_STORE)
    response.set_cookie(
        get_cookie_name(request),
        session_id,
        max_age=int(logins.session_lifetime),
        path="/",
        httponly=True,
        samesite="strict",
    )
    return response


async def get_session(request: Request) -> Response:
    """How the request was authenticated; for the viewer's cookie, the session's CSRF token
    (the page sends it back as ``X-Memq-CSRF`` with every change)."""
    if request.state.memq_auth != "cookie":
        return JSONResponse({"auth": "token"}, headers=NO_STORE)
    found = get_logins(request).session(request.state.memq_session)
    if found is None:  # expired between the guard and here
        return JSONResponse({"error": "the viewer's session has expired"}, status_code=401)
    return JSONResponse({"auth": "cookie", "csrf": found.csrf}, headers=NO_STORE)


async def end_session(request: Request) -> Response:
    """Log the viewer out: its session ends and its cookie is cleared."""
    if request.state.memq_auth != "cookie":
        return JSONResponse({"error": "no viewer session to end"}, status_code=409)
    get_logins(request).end(request.state.memq_session)
    log.info("viewer.logout")
    response = JSONResponse({"ended": True}, headers=NO_STORE)
    response.delete_cookie(get_cookie_name(request), path="/", httponly=True, samesite="strict")
    return response


ROUTES: Final[list[Route]] = [
    Route("/api/login-codes", new_login_code, methods=["POST"]),
    Route(LOGIN_PATH, login, methods=["GET"]),
    Route("/api/session", get_session, methods=["GET"]),
    Route("/api/session", end_session, methods=["DELETE"]),
]
