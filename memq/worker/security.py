"""Who may talk to the daemon: the bearer token, the Host allow-list, the Origin check and
the body limit, applied to every request before any route sees it."""

from __future__ import annotations

import hmac
import json
from pathlib import Path
from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from memq import private_files

UNAUTHENTICATED_PATHS: Final = frozenset({"/api/health"})


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
    (413). Answers are JSON ``{"error": ...}``.
    """

    def __init__(self, app: ASGIApp, *, token: str, port: int, body_limit: int) -> None:
        self.app = app
        self._expected = f"Bearer {token}".encode()
        self._hosts = allowed_hosts(port)
        self._origins = frozenset(b"http://" + host for host in self._hosts)
        self._body_limit = body_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        problem = self._check(scope["path"], headers)
        if problem is not None:
            status, message = problem
            await _send_json(send, status, {"error": message})
            return
        await self.app(scope, receive, send)

    def _check(self, path: str, headers: dict[bytes, bytes]) -> tuple[int, str] | None:
        return (
            self._check_address(headers)
            or (None if path in UNAUTHENTICATED_PATHS else self._check_token(headers))
            or self._check_length(headers)
        )

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
