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
) -> bytes | None:
    """Like ``api`` for bodies that are not JSON (an export, an import): the raw answer, or
    None after printing the problem to stderr (stdout may be the export itself)."""
    from memq.worker import control

    try:
        status, raw = control.request_bytes(
            settings, method, path, data, content_type=content_type, timeout=60.0
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
    """Call the running daemon; print the problem and return None when that fails."""
    from memq.worker import control

    try:
        response = control.request(settings, method, path, body)
    except OSError:
        print(f"memq: the daemon is not answering on port {settings.port} (memq start)")
        return None
    if response.status >= 400:
        error = response.body.get("error") if isinstance(response.body, dict) else response.body
        print(f"memq: {error}", file=sys.stderr)
        return None
    return response.body
