"""How the CLI talks to the running daemon: one call per command, problems printed, never
raised (the CLI's commands return an exit status). A read command names a direct read of the
database file (``memq.memory.direct``) that answers when the daemon does not."""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any, Final
from urllib.parse import quote

from memq.config import Settings

EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # a bad argument or setting

# What a read of the daemon's API gives: the HTTP status and the raw body. A direct read of
# the database answers in the same form, so that both are printed alike.
Answer = tuple[int, bytes]
DirectRead = Callable[[], Answer]

# ``when``'s text is at most this wide: "2025-01-31 13:00 +01:00".
WHEN_WIDTH: Final = 23


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
    direct: DirectRead | None = None,
) -> bytes | None:
    """Call the running daemon; its raw answer, or None after printing the problem to stderr
    (never stdout: it may be an export, or the JSON a script reads).

    When no daemon answers and ``direct`` is given, ``direct`` answers instead (a read of the
    database file), after one line on stderr saying so.
    """
    from memq.worker import control

    try:
        status, raw = control.request_bytes(
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
    return f"{reason}; reading {paths.database} directly"


def when(iso: str, *, utc: bool = False, zone: tzinfo | None = None) -> str:
    """A time the daemon sent (ISO-8601, ``2025-01-31T12:00:00.250Z``) as a table shows it:
    local time with its offset from UTC, ``2025-01-31 13:00 +01:00``, or with ``utc``
    ``2025-01-31 12:00 UTC``. ``zone`` stands in for the local time zone (tests)."""
    at = datetime.fromisoformat(iso)
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)  # memq sends UTC; a time without a zone is one too
    if utc:
        return f"{at.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    local = at.astimezone(zone)  # None: the system's local zone at that time (DST included)
    offset = local.utcoffset()
    minutes = 0 if offset is None else round(offset.total_seconds() / 60)
    sign = "-" if minutes < 0 else "+"
    hours, mins = divmod(abs(minutes), 60)
    return f"{local:%Y-%m-%d %H:%M} {sign}{hours:02d}:{mins:02d}"


def score_text(score: float) -> str:
    """A search score in at most 6 characters, for a table column: two decimals while they
    fit (``12.34``), whole numbers above (``12345``); a score too small for two decimals is
    ``<0.01`` rather than ``2.01e-06``. Scores compare within one search only."""
    if math.isnan(score) or score <= 0:  # nothing matched well at all
        return "0.00"
    if math.isinf(score):
        return "inf"
    if score < 0.005:
        return "<0.01"
    if round(score, 2) < 1000:
        return f"{score:.2f}"
    if round(score) < 1_000_000:
        return f"{score:.0f}"
    return f"{score:.0e}"
