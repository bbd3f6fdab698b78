"""A laptop's reads of the team's memory: the team's context and search hits of a project.

With ``MEMQ_UPSTREAM`` set, the SessionStart context ends with what the team server holds of
the session's project (its repository identity, ``memq.team.identity``), and ``memq search``
adds the team's hits. The hook's path never waits on the network, so the team's context is
served from a per-project cache in the daemon (``TeamContextCache``) and refreshed in the
background (``TeamReads.run``): a SessionStart asks for a refresh of its project, which
happens when the last attempt is ``interval`` old (at most one attempt per project per
interval, however many sessions start). So that a repository's first session after the
daemon starts has the team's context too, ``run`` first asks for the projects worked in
lately (``recent``: ``memq.team.warm_start``), and a session's first event asks for its
project's (``first_event``). A failed refresh keeps the text it had and says why
in the status. The cache holds at most ``max_projects`` projects (the least recently used
goes first).

The server leaves out this laptop's own records in mode ``both`` (``exclude_machine``: they
are in local memory already, so each record is shown once), under every name it went by
upstream (``MEMQ_MACHINE_NAME`` may change; records sent before keep the old name); in mode
``forward`` local memory holds none and nothing is left out. A search filtered by author
asks the server for those people's hits only (``author``, repeatable). A search asks the
server with a short timeout; when it fails, local hits are answered alone with a note saying
so.

The team's context names its records ``team#12`` (the server renders it so), and
``records`` reads such records for ``GET /api/records`` (``memq show team#12``, the MCP tool
``get_observations``): from the server, with a short timeout and a clear error when it does
not answer; a record of a project the key may not read is missing, as one that does not exist.
"""

from __future__ import annotations

import contextlib
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

from memq.client.record_text import record_ref
from memq.exceptions import InvalidRequestError, MemqError, TeamReadError, UpstreamError
from memq.limits import MAX_TEAM_REFS
from memq.memory.refs import RecordRef, TeamRef, format_team_ref, parse_ref
from memq.queue import Clock
from memq.team.context_share import TEAM_BUDGET
from memq.team.identity import repository_identity
from memq.team.upstream_client import read_key

log = structlog.get_logger("memq.team")

CONTEXT_PATH: Final = "/api/team/v1/context"
SEARCH_PATH: Final = "/api/team/v1/search"
RECORDS_PATH: Final = "/api/team/v1/records"
RECORDS_TIMEOUT: Final = 3.0  # seconds a read of team#12 waits (the CLI gives up at 5)
REFRESH_INTERVAL: Final = 300.0  # seconds between two refreshes of one project's context
MAX_PROJECTS: Final = 64  # projects whose team context the cache keeps
MAX_CONTEXT_CHARS: Final = 64 * 1024  # an answer longer than this is no context of ours
SEARCH_TIMEOUT: Final = 2.0  # seconds a search waits for the team's hits
REFRESH_TIMEOUT: Final = 10.0  # seconds a background refresh may take
WANTED_QUEUE: Final = 64  # refreshes asked for and not started yet; more are dropped
MAX_SESSIONS_SEEN: Final = 4096  # sessions whose first event ``first_event`` remembers


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
        machines: gives every name this laptop went by upstream (the outbox's, and the
            configured one), or None in mode ``forward``, where the server leaves nothing
            out.
        clock: for the cache.
        transport: httpx's transport (tests pass a mock one).
        recent: the directories of the projects worked in lately, read when ``run`` starts:
            their team context is asked for then, before their first SessionStart.
    """

    def __init__(
        self,
        url: str,
        key_file: Path,
        machines: Callable[[], Awaitable[Sequence[str]]] | None,
        clock: Clock,
        *,
        interval: float = REFRESH_INTERVAL,
        max_projects: int = MAX_PROJECTS,
        budget: int = TEAM_BUDGET,
        search_timeout: float = SEARCH_TIMEOUT,
        transport: httpx.AsyncBaseTransport | None = None,
        recent: Callable[[], Awaitable[Sequence[str]]] | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self._recent = recent
        # Sessions whose first event was seen (``first_event``): at most MAX_SESSIONS_SEEN.
        self._seen: OrderedDict[str, None] = OrderedDict()
        self.cache = TeamContextCache(clock, interval=interval, max_projects=max_projects)
        self._key_file = key_file
        self._machines = machines
        self._machine_names: list[str] | None = None
        self._budget = budget
        self.search_timeout = search_timeout
        self._http = httpx.AsyncClient(
            base_url=self.url, timeout=REFRESH_TIMEOUT, transport=transport, follow_redirects=False
        )
        send, receive = anyio.create_memory_object_stream[str](WANTED_QUEUE)
        self._wanted_send, self._wanted = send, receive
        # Directories whose project is to be refreshed once their identity is read (off
        # the loop): the projects worked in lately, and sessions' first events.
        places, placed = anyio.create_memory_object_stream[str](WANTED_QUEUE)
        self._places_send, self._places = places, placed

    async def aclose(self) -> None:
        self._wanted_send.close()
        self._wanted.close()
        self._places_send.close()
        self._places.close()
        await self._http.aclose()

    # -- the context ------------------------------------------------------------------------

    def context(self, project: str | None) -> str:
        """The team's context of ``project`` from the cache ("" for none), asking for a
        refresh when one is due. Never waits."""
        if project is None:
            return ""
        self.want(project)
        return self.cache.text(project)

    def want(self, project: str) -> None:
        """Ask for a refresh of ``project`` when one is due. Never waits."""
        if self.cache.due(project):
            self.cache.attempt(project)
            try:
                self._wanted_send.send_nowait(project)
            except anyio.WouldBlock:
                self.cache.failed(project, "too many refreshes waiting")

    def first_event(self, session_key: str, cwd: object) -> None:
        """An event of ``session_key`` arrived: on the session's first one (since this
        daemon started), ask for a refresh of its directory's project when one is due (a
        session begun while the daemon was down, or whose SessionStart went elsewhere,
        gets its next context with the team's). One look-up per event; never waits."""
        if session_key in self._seen or not isinstance(cwd, str) or not cwd:
            return
        self._seen[session_key] = None
        if len(self._seen) > MAX_SESSIONS_SEEN:
            self._seen.popitem(last=False)
        with contextlib.suppress(anyio.WouldBlock):  # a full queue: the next session's turn
            self._places_send.send_nowait(cwd)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Refresh the projects asked for, one at a time, until cancelled; first ask for
        those worked in lately (``recent``), without holding up the start."""
        task_status.started()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._place_projects)
            if self._recent is not None:
                tg.start_soon(self._warm, self._recent)
            async for project in self._wanted:
                await self.refresh(project)
            tg.cancel_scope.cancel()

    async def _warm(self, recent: Callable[[], Awaitable[Sequence[str]]]) -> None:
        """Ask for the team context of the projects worked in lately (most recent first),
        so that their first SessionStart after this start has it."""
        try:
            directories = await recent()
        except MemqError as exc:
            log.warning("team.warm_failed", error=str(exc))
            return
        log.info("team.warm", projects=len(directories))
        for directory in directories:
            with contextlib.suppress(anyio.WouldBlock):
                self._places_send.send_nowait(directory)

    async def _place_projects(self) -> None:
        """The projects of the directories asked for, each read off the loop, refreshed
        when due."""
        async for directory in self._places:
            identity = await anyio.to_thread.run_sync(identity_of, directory)
            if identity is not None:
                self.want(identity)

    async def refresh(self, project: str) -> None:
        """Read ``project``'s team context now; on failure the old text stays."""
        try:
            with anyio.fail_after(REFRESH_TIMEOUT):
                body = await self._get(
                    CONTEXT_PATH, [("project", project), ("budget", str(self._budget))]
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
        self, project: str, query: str, limit: int, authors: Sequence[str] | None = None
    ) -> tuple[list[dict[str, Any]], str | None]:
        """The team's hits for ``query`` in ``project`` (others' records only, in mode
        ``both``; of ``authors`` only, when given), and None; or no hits and a note saying
        why, when the server does not answer within ``search_timeout`` seconds."""
        params = search_params(project, query, limit, authors)
        try:
            with anyio.fail_after(self.search_timeout):
                items = _items_of(await self._get(SEARCH_PATH, params))
        except _FAILURES as exc:
            return [], not_searched(self.url, exc)
        return items[:limit], None

    # -- records by reference --------------------------------------------------------------

    async def records(self, refs: Sequence[TeamRef]) -> dict[str, Any]:
        """The team server's records ``refs`` name (at most ``MAX_TEAM_REFS``), in the shape
        of ``GET /api/records`` (``items``, ``missing``, ``total``), each item marked
        ``team`` with its ``ref`` as this laptop names it (``team#12``). A record of a
        project the key may not read is missing, as one that does not exist.
        ``TeamReadError`` saying why when the server gives no usable answer within
        ``RECORDS_TIMEOUT`` seconds."""
        wanted = list(dict.fromkeys(ref.ref for ref in refs))
        if len(wanted) > MAX_TEAM_REFS:
            raise InvalidRequestError(
                f"at most {MAX_TEAM_REFS} team records at a time (got {len(wanted)})"
            )
        try:
            with anyio.fail_after(RECORDS_TIMEOUT):
                key = await anyio.to_thread.run_sync(read_key, self._key_file)
                response = await self._http.get(
                    RECORDS_PATH,
                    params={"ref": ",".join(str(ref) for ref in wanted)},
                    headers={"Authorization": f"Bearer {key}"},
                )
            if response.status_code == 404:  # none of them (the server's error names them)
                return _team_lookup([], wanted)
            if response.status_code != 200:
                raise UpstreamError(f"answered {response.status_code}{_error_text(response)}")
            return _team_lookup(_items_of(response.json()), wanted)
        except _FAILURES as exc:
            log.info("team.records_failed", refs=len(wanted), error=_describe(exc))
            raise TeamReadError(
                f"the team server ({self.url}) gave no team records: {_describe(exc)}"
            ) from None

    def status(self) -> dict[str, Any]:
        return self.cache.status()

    @staticmethod
    def identity(directory: str | None) -> str | None:
        """The repository identity of a working directory (reads the disk: off the loop)."""
        return identity_of(directory)

    async def _get(self, path: str, params: list[tuple[str, str]]) -> Any:
        key = await anyio.to_thread.run_sync(read_key, self._key_file)
        if self._machines is not None:
            if self._machine_names is None:
                # Read once: a new name is configured by a restart, which makes a new reader.
                self._machine_names = list(dict.fromkeys(await self._machines()))
            params = [*params, *(("exclude_machine", name) for name in self._machine_names)]
        response = await self._http.get(
            path, params=tuple(params), headers={"Authorization": f"Bearer {key}"}
        )
        return body_of(response)


def search_params(
    project: str, query: str, limit: int, authors: Sequence[str] | None
) -> list[tuple[str, str]]:
    """The query of a search of the team server: ``author`` once per person, when given."""
    params = [("project", project), ("q", query), ("limit", str(limit))]
    return params + [("author", name) for name in authors or ()]


def body_of(response: httpx.Response) -> Any:
    """The decoded body of a team server's 200 answer; ``UpstreamError`` for another."""
    if response.status_code != 200:
        raise UpstreamError(f"answered {response.status_code}{_error_text(response)}")
    return response.json()


def not_searched(url: str, exc: BaseException) -> str:
    """The note of a search that got no hits from the team server at ``url``."""
    return f"team memory not searched ({url}: {_describe(exc)})"


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


def _team_lookup(items: list[dict[str, Any]], wanted: list[RecordRef]) -> dict[str, Any]:
    """The server's answer to a read of ``wanted`` as this laptop shows it: the records in
    the order asked, each ``ref`` the laptop's (``team#12``) and marked ``team``; what it
    did not answer as ``missing``. A record nobody asked for is no answer of ours."""
    by_ref: dict[RecordRef, dict[str, Any]] = {}
    for item in items:
        ref = item.get("ref")
        if not isinstance(ref, str):
            raise UpstreamError("a record of the answer has no reference")
        by_ref[parse_ref(ref)] = item
    found = [
        {**by_ref[ref], "ref": str(TeamRef(ref)), "team": True} for ref in wanted if ref in by_ref
    ]
    missing = [str(TeamRef(ref)) for ref in wanted if ref not in by_ref]
    return {"items": found, "missing": missing, "total": len(found)}


def merge_hits(
    local: Sequence[dict[str, Any]], team: Sequence[dict[str, Any]], limit: int
) -> list[dict[str, Any]]:
    """Local hits and the team's, best score first, at most ``limit``. Each record once:
    the team's answer leaves out this laptop's own records, and a team hit is marked
    ``team`` with the reference ``team#12`` (its ids are the server's, not this
    database's: a bare ``#12`` would name a local record)."""
    marked = [{**hit, "team": True, "ref": format_team_ref(record_ref(hit))} for hit in team]
    merged = [*local, *marked]
    merged.sort(key=lambda hit: -float(hit.get("score") or 0.0))
    return merged[:limit]


def team_answer(
    answer: dict[str, Any], team: Sequence[dict[str, Any]], note: str | None, limit: int
) -> dict[str, Any]:
    """A search's ``answer`` with the team's hits merged in (``merge_hits``) and the note
    saying why the team was not searched (None when it was)."""
    items = merge_hits(answer["items"], team, limit)
    return {"items": items, "total": len(items), "team_note": note}


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
