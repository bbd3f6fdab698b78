"""The one client for the daemon's API, for the CLI and the MCP server.

Standard library HTTP only: every command runs in a fresh process and should not pay for an
HTTP client library. ``request_bytes`` and ``request`` give what the daemon answered, error
answers included, and raise ``OSError`` when nothing answers. ``api_raw`` and ``api`` are
what the commands call: problems printed, never raised (a command returns an exit status);
a read command names a direct read of the database file (``memq.memory.direct``) that
answers when the daemon does not.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, TypeAlias
from urllib.parse import quote

from memq.config import Settings
from memq.private_files import read_token

HEALTH_PATH: Final = "/api/health"

# What a read of the daemon's API gives: the HTTP status and the raw body. A direct read of
# the database answers in the same form, so that both are printed alike.
Answer: TypeAlias = tuple[int, bytes]
DirectRead: TypeAlias = Callable[[], Answer]


@dataclass(frozen=True, slots=True)
class ApiResponse:
    """An answer of the daemon: its HTTP status and its decoded JSON body."""

    status: int
    body: Any


def request_bytes(
    settings: Settings,
    method: str,
    path: str,
    data: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 5.0,
    port: int | None = None,
    headers: Mapping[str, str] | None = None,
) -> Answer:
    """Call the daemon's API with the token from ``MEMQ_HOME/token``; the status and the raw
    body, error answers included. ``headers`` go along (the MCP server names itself and
    its project in them). Raises ``OSError`` when the daemon does not answer and
    ``UnsafeFileError`` when the token file is not memq's own."""
    headers = {**(headers or {}), "Content-Type": content_type}
    # Health needs no token. Without a token file (the daemon never ran) the daemon answers
    # 401, if anything answers. The file is never followed, only memq's own, never quoted.
    if path != HEALTH_PATH and os.path.lexists(settings.paths.token):
        token = read_token(str(settings.paths.token))
        headers["Authorization"] = f"Bearer {token}"
    # Imported here: urllib.request loads http.client and email, which parsing a command
    # and a direct read of the database do not need.
    import urllib.error
    import urllib.request

    url = f"http://127.0.0.1:{port or settings.port}{path}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def request(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    timeout: float = 5.0,
    port: int | None = None,
) -> ApiResponse:
    """``request_bytes`` for JSON both ways."""
    data = None if body is None else json.dumps(body).encode()
    status, raw = request_bytes(settings, method, path, data, timeout=timeout, port=port)
    try:
        parsed = json.loads(raw or b"null")
    except ValueError:
        parsed = {"error": raw.decode("utf-8", "replace")}
    return ApiResponse(status, parsed)


def is_healthy(settings: Settings, port: int | None = None) -> bool:
    """Whether a memq daemon answers ``/api/health`` on the port."""
    try:
        response = request(settings, "GET", HEALTH_PATH, timeout=1.0, port=port)
    except (OSError, ValueError):
        return False
    return response.status == 200 and isinstance(response.body, dict)


def api_raw(
    settings: Settings,
    method: str,
    path: str,
    data: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 60.0,
    direct: DirectRead | None = None,
) -> bytes | None:
    """Call the running daemon; its raw answer, or None after printing the problem to stderr
    (never stdout: it may be an export, or the JSON a script reads).

    When no daemon answers and ``direct`` is given, ``direct`` answers instead (a read of the
    database file), after one line on stderr saying so.
    """
    try:
        status, raw = request_bytes(
            settings, method, path, data, content_type=content_type, timeout=timeout
        )
    except OSError:
        if direct is None:
            print(
                f"memq: the daemon is not answering on port {settings.port} (memq start)",
                file=sys.stderr,
            )
            return None
        print(f"memq: {_why_direct(settings)}", file=sys.stderr)
        status, raw = direct()
    if status >= 400:
        try:
            error = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            error = raw.decode("utf-8", "replace")
        print(f"memq: {error}", file=sys.stderr)
        return None
    return raw


def api(
    settings: Settings,
    method: str,
    path: str,
    body: Any = None,
    *,
    direct: DirectRead | None = None,
) -> Any:
    """``api_raw`` for JSON both ways: the decoded answer, or None after printing the problem."""
    data = None if body is None else json.dumps(body).encode()
    raw = api_raw(settings, method, path, data, timeout=5.0, direct=direct)
    if raw is None:
        return None
    try:
        return json.loads(raw or b"null")
    except ValueError:
        print(f"memq: the daemon answered {raw.decode('utf-8', 'replace')!r}", file=sys.stderr)
        return None


def _why_direct(settings: Settings) -> str:
    """The line that says the answer comes from the database file, and why."""
    from memq.worker.pidfile import running_daemon

    paths = settings.paths
    record = running_daemon(paths.pidfile, paths.database)
    reason = (
        "daemon not running"
        if record is None
        else f"the daemon (pid {record.pid}) is not answering on port {settings.port}"
    )
    from memq.memory.direct import database_of

    return f"{reason}; reading {database_of(settings)} directly"


def session_url(session: str) -> str:
    """``/api/sessions/<session>`` with the session id URL-quoted."""
    return f"/api/sessions/{quote(session, safe=':')}"


def session_path(session: str, action: str) -> str:
    """``/api/sessions/<session>/<action>`` with the session id URL-quoted."""
    return f"{session_url(session)}/{action}"
