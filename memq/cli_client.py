"""How the CLI talks to the running daemon: one call per command, problems printed, never
raised (the CLI's commands return an exit status)."""

from __future__ import annotations

import json
import sys
from typing import Any
from urllib.parse import quote

from memq.config import Settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # a bad argument or setting


def session_url(session: str) -> str:
    """``/api/sessions/<session>`` with the session id URL-quoted."""
    return f"/api/sessions/{quote(session, safe=':')}"


def session_path(session: str, action: str) -> str:
    """``/api/sessions/<session>/<action>`` with the session id URL-quoted."""
    return f"{session_url(session)}/{action}"


def api_raw(
    settings: Settings,
    method: str,
    path: str,
    data: bytes | None = None,
    *,
    content_type: str = "application/json",
    timeout: float = 60.0,
) -> bytes | None:
    """Call the running daemon; its raw answer, or None after printing the problem to stderr
    (never stdout: it may be an export, or the JSON a script reads)."""
    from memq.worker import control

    try:
        status, raw = control.request_bytes(
            settings, method, path, data, content_type=content_type, timeout=timeout
        )
    except OSError:
        print(
            f"memq: the daemon is not answering on port {settings.port} (memq start)",
            file=sys.stderr,
        )
        return None
    if status >= 400:
        try:
            error = json.loads(raw)["error"]
        except (ValueError, KeyError, TypeError):
            error = raw.decode("utf-8", "replace")
        print(f"memq: {error}", file=sys.stderr)
        return None
    return raw


def api(settings: Settings, method: str, path: str, body: Any = None) -> Any:
    """``api_raw`` for JSON both ways: the decoded answer, or None after printing the problem."""
    data = None if body is None else json.dumps(body).encode()
    raw = api_raw(settings, method, path, data, timeout=5.0)
    if raw is None:
        return None
    try:
        return json.loads(raw or b"null")
    except ValueError:
        print(f"memq: the daemon answered {raw.decode('utf-8', 'replace')!r}", file=sys.stderr)
        return None


def when(iso: str) -> str:
    """A time the daemon sent, ``2025-01-31T12:00:00.250Z``, as ``2025-01-31 12:00`` (UTC)."""
    return iso[:16].replace("T", " ")
