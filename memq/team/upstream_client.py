"""The team server's intake, as a laptop speaks it: ``POST /api/team/v1/events``.

One request per batch, ``Authorization: Bearer <key>``, body
``{"machine": ..., "events": [{"local_id", "session_id", "kind", "dedupe_key", "project",
"created_at", "payload"}, ...]}``. A 200 answers per event (``accepted``, ``duplicate`` or
``refused`` with its ``error``); anything else is about the whole request and raises:

- ``UpstreamUnavailableError``: no connection, a timeout, a 5xx, a 429 (with the
  ``Retry-After`` it gave), or a 200 that is not the answer the contract promises.
- ``UpstreamAuthError``: a 401 (a wrong or revoked key).
- ``UpstreamRefusedError``: another 4xx (413 too large, 422 malformed, ...).

The key file (``MEMQ_HOME/upstream.key`` by default) is read as the token file is: no
symlink, the user's own, 0600 (``memq.private_files``); no error ever quotes it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from memq.exceptions import (
    UnsafeFileError,
    UpstreamAuthError,
    UpstreamRefusedError,
    UpstreamUnavailableError,
)
from memq.private_files import check_private_fd

EVENTS_PATH: Final = "/api/team/v1/events"
MAX_KEY_BYTES: Final = 512  # a key is ~60 characters; more is no key file
RESULT_STATUSES: Final = frozenset({"accepted", "duplicate", "refused"})
_NOFOLLOW: Final = getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class EventResult:
    """What the server did with one event."""

    local_id: int
    status: str  # accepted, duplicate or refused
    error: str | None = None


class UpstreamClient:
    """Sends batches to one team server.

    Args:
        url: the server's root (``https://team-host:port``).
        timeout: seconds one request may take, all of it.
        transport: httpx's transport (tests pass a mock one).
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=timeout, transport=transport, follow_redirects=False
        )

    async def aclose(self) -> None:
        await self._http.aclose()

    async def send(
        self, key: str, machine: str, events: Sequence[Mapping[str, Any]]
    ) -> list[EventResult]:
        """Send one batch; the server's answer per event (see the module docstring)."""
        body = {"machine": machine, "events": list(events)}
        try:
            response = await self._http.post(
                EVENTS_PATH, json=body, headers={"Authorization": f"Bearer {key}"}
            )
        except httpx.HTTPError as exc:
            raise UpstreamUnavailableError(f"{self.url}: {_describe(exc)}") from None
        status = response.status_code
        if status == 200:
            return _results(response, self.url)
        detail = _error_text(response)
        if status == 401:
            raise UpstreamAuthError(f"key refused by {self.url} (401{detail})")
        if status == 429 or status >= 500:
            raise UpstreamUnavailableError(
                f"{self.url} answered {status}{detail}", retry_after=_retry_after(response)
            )
        raise UpstreamRefusedError(f"{self.url} answered {status}{detail}", status=status)


def read_key(path: Path) -> str:
    """The API key in ``path``. ``FileNotFoundError`` when there is none; ``UnsafeFileError``
    for a file that is not the user's own regular file, or holds no key."""
    try:
        fd = os.open(path, os.O_RDONLY | _NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except FileNotFoundError:
        raise
    except OSError as exc:
        if path.is_symlink():
            raise UnsafeFileError(f"{path} is a symbolic link; memq reads only the file") from None
        raise UnsafeFileError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        check_private_fd(fd, str(path))
        raw = os.read(fd, MAX_KEY_BYTES + 1)
    finally:
        os.close(fd)
    text = raw.decode("ascii", errors="replace").strip()
    if len(raw) > MAX_KEY_BYTES or not text.startswith("memq_") or any(c.isspace() for c in text):
        raise UnsafeFileError(f"{path} does not hold a team API key (memq_...)")
    return text


def _results(response: httpx.Response, url: str) -> list[EventResult]:
    try:
        items = response.json()["results"]
        results = [
            EventResult(
                int(item["local_id"]),
                str(item["status"]),
                None if item.get("error") is None else str(item["error"])[:1000],
            )
            for item in items
        ]
    except (ValueError, KeyError, TypeError) as exc:
        raise UpstreamUnavailableError(f"{url} answered 200 without results ({exc})") from None
    unknown = {r.status for r in results} - RESULT_STATUSES
    if unknown:
        raise UpstreamUnavailableError(f"{url} answered unknown statuses {sorted(unknown)}")
    return results


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(error)[:300]}" if error else ""


def _retry_after(response: httpx.Response) -> float | None:
    raw = response.headers.get("Retry-After", "").strip()
    try:
        seconds = float(raw)
    except ValueError:
        return None  # absent, or an HTTP date: the backoff's own delay then
    return seconds if seconds >= 0 else None


def _describe(exc: httpx.HTTPError) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
