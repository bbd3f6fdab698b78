"""Who may talk to the daemon: the bearer token (or the viewer's session cookie, with its CSRF
header for a change), the Host allow-list, the Origin check and the body limit, applied to
every request before any route sees it."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from memq import private_files
from memq.worker.page_headers import adding_headers
from memq.worker.viewer_logins import ViewerLogins, cookie_name

# /login checks its one-time code itself (memq.worker.http.session_auth); the viewer's page
# and assets hold no data (it comes from /api/ with the cookie).
UNAUTHENTICATED_PATHS: Final = frozenset({"/api/health", "/login", "/"})
UNAUTHENTICATED_PREFIXES: Final = ("/static/",)
CSRF_HEADER: Final = b"x-memq-csrf"
# Methods that change something: with the cookie, they need the CSRF header.
SAFE_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# With the cookie, a browser's Sec-Fetch-Site (when sent) must say the daemon's own page or
# the user's own navigation asked: an <img> or <script> on another loopback origin (same
# site, so a SameSite cookie goes along) is refused.
COOKIE_FETCH_SITES: Final = frozenset({b"same-origin", b"none"})


def load_or_create_token(path: Path) -> str:
    """The daemon's bearer token, created (0600) on first start and read again on later ones.
    Raises ``UnsafeFileError`` for a token file memq did not write (see ``private_files``)."""
    return private_files.load_or_create_token(str(path))


def allowed_hosts(port: int) -> frozenset[bytes]:
    """Host header values a loopback client sends; anything else may be DNS rebinding."""
    return frozenset(f"{host}:{port}".encode() for host in ("127.0.0.1", "localhost", "[::1]"))


class RequestGuard:
    """ASGI middleware refusing requests before they reach a route.

    Order: foreign Host or Origin (403), missing or wrong token (401), body over the limit
    (413). Answers are JSON ``{"error": ...}``. Under ``/api/`` a live viewer session's
    cookie stands in for the token; a change (POST, PUT, ...) then also needs the session's
    CSRF token in ``X-Memq-CSRF`` (403). The route learns which it was from
    ``request.state.memq_auth`` (``"token"`` or ``"cookie"``, with ``memq_session``).
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        token: str,
        port: int,
        body_limit: int,
        logins: ViewerLogins | None = None,
    ) -> None:
        self.app = app
        self._logins = logins
        self._cookie = cookie_name(port).encode()
        self._expected = f"Bearer {token}".encode()
        self._hosts = allowed_hosts(port)
        self._origins = frozenset(b"http://" + host for host in self._hosts)
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = adding_headers(send, scope["path"])
        headers = dict(scope["headers"])
        problem = self._check(scope, headers)
        if problem is not None:
            status, message = problem
            await _send_json(send, status, {"error": message})
            return
        await self.app(scope, receive, send)

    def _check(self, scope: Scope, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        return (
            self._check_address(headers)
            or (
                None
                if scope["path"] in UNAUTHENTICATED_PATHS
                or scope["path"].startswith(UNAUTHENTICATED_PREFIXES)
                else self._check_credentials(scope, headers)
            )
            or self._check_length(headers)
        )

    def _check_credentials(
        self, scope: Scope, headers: dict[bytes, bytes]
    ) -> tuple[int, str] | None:
        """The bearer token when one is sent; otherwise, under ``/api/``, the session cookie."""
        state = scope.setdefault("state", {})
        session = self._session_cookie(headers)
        if b"authorization" in headers or session is None or not scope["path"].startswith("/api/"):
            state["memq_auth"] = "token"
            return self._check_token(headers)
        state["memq_auth"] = "cookie"
        state["memq_session"] = session
        return self._check_cookie(scope["method"], session, headers)

    def _session_cookie(self, headers: dict[bytes, bytes]) -> str | None:
        if self._logins is None:
            return None
        for pair in headers.get(b"cookie", b"").split(b";"):
            name, _, value = pair.strip().partition(b"=")
            if name == self._cookie and value:
                return value.decode("latin-1")
        return None

    def _check_cookie(
        self, method: str, session: str, headers: dict[bytes, bytes]
    ) -> tuple[int, str] | None:
        assert self._logins is not None
        if self._logins.session(session) is None:
            return 401, "the viewer's session has expired or ended (log in again: memq open)"
        site = headers.get(b"sec-fetch-site")
        if site is not None and site not in COOKIE_FETCH_SITES:
            return 403, "cross-site requests are refused"
        if method not in SAFE_METHODS:
            csrf = headers.get(CSRF_HEADER)
            if csrf is None:
                return 403, "missing X-Memq-CSRF header (GET /api/session gives its value)"
            if not self._logins.csrf_matches(session, csrf.decode("latin-1")):
                return 403, "wrong X-Memq-CSRF header"
        return None

    def _check_address(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        if headers.get(b"host") not in self._hosts:
            return 403, "requests must be addressed to the daemon's loopback address"
        origin = headers.get(b"origin")
        if origin is not None and origin not in self._origins:
            return 403, "cross-origin requests are refused"
        return None

    def _check_token(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        auth = headers.get(b"authorization", b"")
        if not auth.startswith(b"Bearer "):
            return 401, "missing bearer token (Authorization: Bearer <MEMQ_HOME/token>)"
        if not hmac.compare_digest(auth, self._expected):
            return 401, "wrong bearer token"
        return None

    def _check_length(self, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        length = headers.get(b"content-length")
        if length is None:
            return None
        if not length.isdigit():
            return 400, "Content-Length is not a number"
        if int(length) > self._body_limit:
            return 413, f"body larger than the limit of {self._body_limit} bytes"
        return None


async def _send_json(send: Send, status: int, body: dict[str, str]) -> None:
    data = json.dumps(body).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(data)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": data})
