"""A laptop's reads of the team's memory: the team's context and search hits of a project.

With ``MEMQ_UPSTREAM`` set, the SessionStart context ends with what the team server holds of
the session's project (its repository identity, ``memq.team.identity``), and ``memq search``
adds the team's hits. The hook's path never waits on the network, so the team's context is
served from a per-project cache in the daemon (``TeamContextCache``) and refreshed in the
background (``TeamReads.run``): a SessionStart asks for a refresh of its project, which
happens when the last attempt is ``interval`` old (at most one attempt per project per
interval, however many sessions start). A failed refresh keeps the text it had and says why
in the status. The cache holds at most ``max_projects`` projects (the least recently used
goes first).

The server leaves out this laptop's own records in mode ``both`` (``exclude_machine``: they
are in local memory already, so each record is shown once); in mode ``forward`` local memory
holds none and nothing is left out. A search asks the server with a short timeout; when it
fails, local hits are answered alone with a note saying so.
"""

from __future__ import annotations

import functools
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import httpx
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import MemqError, UpstreamError
from memq.queue import Clock
from memq.team.identity import repository_identity
from memq.team.upstream_client import read_key

log = structlog.get_logger("memq.team")

CONTEXT_PATH: Final = "/api/team/v1/context"
SEARCH_PATH: Final = "/api/team/v1/search"
REFRESH_INTERVAL: Final = 300.0  # seconds between two refreshes of one project's context
MAX_PROJECTS: Final = 64  # projects whose team context the cache keeps
TEAM_BUDGET: Final = 1000  # tokens of the team's part of a context
MAX_CONTEXT_CHARS: Final = 64 * 1024  # an answer longer than this is no context of ours
SEARCH_TIMEOUT: Final = 2.0  # seconds a search waits for the team's hits
REFRESH_TIMEOUT: Final = 10.0  # seconds a background refresh may take
WANTED_QUEUE: Final = 64  # refreshes asked for and not started yet; more are dropped


@dataclass(slots=True)
class _Entry:
    text: str = ""
    fetched_at: int | None = None  # epoch ms of the last refresh that worked
    attempted_at: int | None = None  # epoch ms of the last attempt
    error: str | None = None  # why the last attempt failed; None: it worked


class TeamContextCache:
    """The team's context per project, with when it was read and the last error.

    Args:
        clock: the queue's clock (``now()`` in epoch ms; tests pass a manual one).
        interval: seconds between two refresh attempts of one project.
        max_projects: projects kept; the least recently used goes first.
    """

    def __init__(
        self, clock: Clock, *, interval: float = REFRESH_INTERVAL, max_projects: int = MAX_PROJECTS
    ) -> None:
        self._clock = clock
        self._interval_ms = int(interval * 1000)
        self._max = max_projects
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def text(self, project: str) -> str:
        """The cached team context of ``project``: "" when none was read yet."""
        entry = self._entries.get(project)
        if entry is None:
            return ""
        self._entries.move_to_end(project)
        return entry.text

    def due(self, project: str) -> bool:
        """Whether ``project`` should be refreshed now: never tried, or tried ``interval``
        ago."""
        entry = self._entries.get(project)
        if entry is None or entry.attempted_at is None:
            return True
        return self._clock.now() - entry.attempted_at >= self._interval_ms

    def attempt(self, project: str) -> None:
        """Note an attempt now (before it runs: a second ask meanwhile is not due)."""
        self._entry(project).attempted_at = self._clock.now()

    def store(self, project: str, text: str) -> None:
        entry = self._entry(project)
        entry.text, entry.fetched_at, entry.error = text, self._clock.now(), None

    def failed(self, project: str, error: str) -> None:
        """The refresh failed: the old text stays, the error shows in the status."""
        self._entry(project).error = error

    def status(self) -> dict[str, Any]:
        now = self._clock.now()
        failing = {p: e.error for p, e in self._entries.items() if e.error is not None}
        return {
            "projects": len(self._entries),
            "failing": len(failing),
            "last_error": next(reversed(failing.values()), None),
            "items": [
                {
                    "project": project,
                    "chars": len(entry.text),
                    "age_seconds": None
                    if entry.fetched_at is None
                    else round((now - entry.fetched_at) / 1000, 3),
                    "error": entry.error,
                }
                for project, entry in self._entries.items()
            ],
        }

    def _entry(self, project: str) -> _Entry:
        entry = self._entries.get(project)
        if entry is None:
            entry = self._entries[project] = _Entry()
            while len(self._entries) > self._max:
                self._entries.popitem(last=False)
        self._entries.move_to_end(project)
        return entry


@functools.lru_cache(maxsize=1024)
def identity_of(directory: str | None) -> str | None:
    """The repository identity of a working directory (reads ``.git/config``: off the loop)."""
    return repository_identity(directory) if directory else None


class TeamReads:
    """The daemon's reads of the team server (see the module docstring).

    Args:
        url: the team server's root.
        key_file: the API key's file (read at each request: a new key applies at once).
        machine: gives this laptop's machine name upstream (the outbox's), or None in mode
            ``forward``, where the server leaves nothing out.
        clock: for the cache.
        transport: httpx's transport (tests pass a mock one).
    """

    def __init__(
        self,
        url: str,
        key_file: Path,
        machine: Callable[[], Awaitable[str]] | None,
        clock: Clock,
        *,
        interval: float = REFRESH_INTERVAL,
        max_projects: int = MAX_PROJECTS,
        budget: int = TEAM_BUDGET,
        search_timeout: float = SEARCH_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.cache = TeamContextCache(clock, interval=interval, max_projects=max_projects)
        self._key_file = key_file
        self._machine = machine
        self._machine_name: str | None = None
        self._budget = budget
        self.search_timeout = search_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=REFRESH_TIMEOUT, transport=transport, follow_redirects=False
        )
        send, receive = anyio.create_memory_object_stream[str](WANTED_QUEUE)
        self._wanted_send, self._wanted = send, receive

    async def aclose(self) -> None:
        self._wanted_send.close()
        self._wanted.close()
        await self._http.aclose()

    # -- the context ------------------------------------------------------------------------

    def context(self, project: str | None) -> str:
        """The team's context of ``project`` from the cache ("" for none), asking for a
        refresh when one is due. Never waits."""
        if project is None:
            return ""
        if self.cache.due(project):
            self.cache.attempt(project)
            try:
                self._wanted_send.send_nowait(project)
            except anyio.WouldBlock:
                self.cache.failed(project, "too many refreshes waiting")
        return self.cache.text(project)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refresh the projects asked for, one at a time, until cancelled."""
        task_status.started()
        async for project in self._wanted:
            await self.refresh(project)

    async def refresh(self, project: str) -> None:
        """Read ``project``'s team context now; on failure the old text stays."""
        try:
            with anyio.fail_after(REFRESH_TIMEOUT):
                body = await self._get(
                    CONTEXT_PATH, {"project": project, "budget": str(self._budget)}
                )
            text = _context_of(body)
        except _FAILURES as exc:
            error = _describe(exc)
            self.cache.failed(project, error)
            log.info("team.context_failed", project=project, error=error)
            return
        self.cache.store(project, text)

    # -- search -----------------------------------------------------------------------------

    async def search(
        self, project: str, query: str, limit: int
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The team's hits for ``query`` in ``project`` (others' records only, in mode
        ``both``), and None; or no hits and a note saying why, when the server does not
        answer within ``search_timeout`` seconds."""
        params = {"project": project, "q": query, "limit": str(limit)}
        try:
            with anyio.fail_after(self.search_timeout):
                items = _items_of(await self._get(SEARCH_PATH, params))
        except _FAILURES as exc:
            return [], f"team memory not searched ({self.url}: {_describe(exc)})"
        return items[:limit], None

    def status(self) -> dict[str, Any]:
        return self.cache.status()

    @staticmethod
    def identity(directory: str | None) -> str | None:
        """The repository identity of a working directory (reads the disk: off the loop)."""
        return identity_of(directory)

    async def _get(self, path: str, params: dict[str, str]) -> Any:
        key = await anyio.to_thread.run_sync(read_key, self._key_file)
        if self._machine is not None:
            if self._machine_name is None:
                self._machine_name = await self._machine()
            params = {**params, "exclude_machine": self._machine_name}
        response = await self._http.get(
            path, params=params, headers={"Authorization": f"Bearer {key}"}
        )
        if response.status_code != 200:
            raise UpstreamError(f"answered {response.status_code}{_error_text(response)}")
        return response.json()


# What a failed read of the team server raises: it is reported, never raised further.
_FAILURES: Final = (httpx.HTTPError, ValueError, OSError, MemqError, TimeoutError)


def _context_of(body: Any) -> str:
    text = body.get("context") if isinstance(body, dict) else None
    if not isinstance(text, str) or len(text) > MAX_CONTEXT_CHARS:
        raise UpstreamError("the answer holds no context")
    return text


def _items_of(body: Any) -> list[dict[str, Any]]:
    items = body.get("items") if isinstance(body, dict) else None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise UpstreamError("the answer holds no hits")
    return items


def merge_hits(
    local: Sequence[dict[str, Any]], team: Sequence[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Local hits and the team's, best score first, at most ``limit``. Each record once:
    the team's answer leaves out this laptop's own records, and a team hit is marked
    ``team`` (its ids are the server's, not this database's)."""
    marked = [{**hit, "team": True} for hit in team]
    merged = [*local, *marked]
    merged.sort(key=lambda hit: -float(hit.get("score") or 0.0))
    return merged[:limit]


def _error_text(response: httpx.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        return ""
    return f": {str(error)[:300]}" if error else ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"no key file {exc.filename}"
    if isinstance(exc, TimeoutError):
        return "no answer in time"
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
