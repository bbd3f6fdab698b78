"""Whether the model uses memory: what each injection of context showed a session, and what
the model fetched afterwards through the MCP tools.

The daemon records both on its hot paths (a hook's answer, an API read), so ``record_*`` only
append to a list; the rows reach ``usage_injections`` and ``usage_fetches`` in batches through
the queue's writer (one transaction after ``flush_every`` records or ``flush_interval``
seconds after the first unwritten one, and once more at ``close``). Recording never fails
its caller: a bad value or a failed write is logged and dropped, usage is not worth an error.
An empty context is no injection, and the same context given to a session again within
``REPEAT_WINDOW`` seconds (a hook that retried its event) is the same injection.

Attribution: the MCP server runs beside the assistant and does not know its session, so a
fetch that names none goes to the session of the newest injection in the fetch's project
within ``attribution_window`` (a day by default) at or before it; with no such injection it
belongs to no session (it still counts for its project). Two sessions working in one
project at once: the newer one gets the fetches of both.

Storage is bounded: ``prune`` (every ``prune_interval`` seconds while running) deletes rows
older than ``retention`` and the oldest beyond ``max_injections`` and ``max_fetches``.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import InvalidRequestError, QueueClosedError, StorageError
from memq.memory.model_usage import prune_model_usage
from memq.memory.projects import project_for
from memq.memory.refs import RecordRef, parse_ref
from memq.queue import SYSTEM_CLOCK, Clock, EpochMs, Transaction, earlier, span
from memq.storage.sqlfile import load_queries

log = structlog.get_logger("memq.usage")

QUERIES: Final = load_queries("usage")
T = TypeVar("T")
DAY: Final = 24 * 3600.0
PRUNE_CHUNK: Final = 2000
MAX_REFS: Final = 200  # references kept per row: a context or a fetch shows fewer
MAX_QUERY_CHARS: Final = 500  # of a query kept: enough to tell what the model looked for
# The same context given to a session again within this many seconds is one injection: a
# hook that retried its event (the first answer was lost) is answered again.
REPEAT_WINDOW: Final = 30.0


class InjectionSource(StrEnum):
    """What an injection of context came with."""

    STARTUP = "startup"  # SessionStart of a new session
    RESUME = "resume"  # SessionStart of a resumed session
    CLEAR = "clear"  # SessionStart after /clear
    COMPACT = "compact"  # SessionStart after a compaction
    PROMPT = "prompt"  # per-prompt recall on UserPromptSubmit


# How the MCP server (memq.mcp.reader) marks the model's reads of the API, and how the daemon
# (memq.worker.http.fetches) recognises them: header names (HTTP matches them in any case),
# the mark's value, and the query parameter of a read made only to index records.
VIA_HEADER: Final = "X-Memq-Via"
PROJECT_HEADER: Final = "X-Memq-Project"  # URL-quoted: a header is Latin-1
TOOL_HEADER: Final = "X-Memq-Tool"
SESSION_HEADER: Final = "X-Memq-Session"
VIA_MCP: Final = "mcp"
INDEX_PURPOSE: Final = "index"  # ?purpose=index


class UsageTool(StrEnum):
    """The MCP tool a fetch came from."""

    SEARCH = "search"
    TIMELINE = "timeline"
    GET_OBSERVATIONS = "get_observations"
    RECENT_CONTEXT = "recent_context"


@dataclass(frozen=True, slots=True)
class Injection:
    """A context given to a session: its record references and its size in tokens."""

    at: EpochMs
    session_key: str
    project: str | None
    source: InjectionSource
    refs: tuple[str, ...]
    tokens: int


@dataclass(frozen=True, slots=True)
class Fetch:
    """A read of memory by the model through one MCP tool."""

    at: EpochMs
    session_key: str | None  # None: attributed when written (see the module docstring)
    project: str | None
    tool: UsageTool
    refs: tuple[str, ...]  # the records fetched by name
    results: int  # the records the answer listed
    query: str | None


class RunsTransactions(Protocol):
    """Where batches are written: the queue's single writer (``Queue``)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one write transaction and return its result."""


class UsageRecorder:
    """Records injections and fetches in batches; see the module docstring.

    Args:
        writer: where batches and pruning are written.
        clock: its wall clock stamps the records and ages them; its monotonic seconds drive
            the flush and prune intervals (the queue's ``clock`` in the daemon).
        flush_every: records that trigger a flush.
        flush_interval: seconds after the first unwritten record that trigger a flush.
        max_pending: records held unwritten at most; more are dropped (a stuck writer).
        retention: seconds a row is kept.
        max_injections / max_fetches: rows kept at most, the newest.
        prune_interval: seconds between prunes while running (the first at start).
        attribution_window: seconds an injection attributes a project's fetches to its
            session.
    """

    def __init__(
        self,
        writer: RunsTransactions,
        *,
        clock: Clock = SYSTEM_CLOCK,
        flush_every: int = 64,
        flush_interval: float = 2.0,
        max_pending: int = 10_000,
        retention: float = 90 * DAY,
        max_injections: int = 100_000,
        max_fetches: int = 200_000,
        prune_interval: float = 3600.0,
        attribution_window: float = DAY,
    ) -> None:
        if flush_every < 1 or max_pending < flush_every:
            raise ValueError("flush_every must be >= 1 and max_pending >= flush_every")
        if min(flush_interval, retention, prune_interval, attribution_window) <= 0:
            raise ValueError("intervals, retention and the attribution window must be > 0")
        if min(max_injections, max_fetches) < 1:
            raise ValueError("max_injections and max_fetches must be >= 1")
        self._writer = writer
        self._clock = clock
        self._flush_every = flush_every
        self._flush_interval = flush_interval
        self._max_pending = max_pending
        self.retention = retention
        self._max_injections = max_injections
        self._max_fetches = max_fetches
        self._prune_interval = prune_interval
        self._window = span(attribution_window)
        self._pending: list[Injection | Fetch] = []
        self._first_pending: float | None = None  # clock.monotonic() of the first one
        self._dropped = 0  # records dropped since the last flush (full, or bad values)
        # session -> (source, refs, tokens) and clock.monotonic() of its last injection
        self._last_shown: dict[str, tuple[tuple[str, tuple[str, ...], int], float]] = {}
        self._next_prune: float = -math.inf  # due at once: a prune when the daemon starts
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self._closed = False

    # -- the hot path ----------------------------------------------------------------------

    def record_injection(
        self,
        session_key: str,
        project: str | None,
        source: str,
        refs: Iterable[RecordRef | str],
        tokens: int,
    ) -> None:
        """A context was given to ``session_key``: ``source`` is SessionStart's ``source``
        (startup, resume, clear, compact) or ``prompt`` for per-prompt recall. An empty
        context (no tokens) showed nothing and is not recorded. Never raises."""
        try:
            if tokens <= 0:
                return
            if not _names(session_key, project, optional_session=False):
                self._drop("injection", f"no session or project in {session_key!r}, {project!r}")
                return
            record = Injection(
                self._clock.now(),
                session_key,
                project or None,
                InjectionSource(source),
                _refs(refs),
                int(tokens),
            )
            if not self._repeated(record):
                self._add(record)
        except Exception as exc:  # recording must never fail its caller
            self._drop("injection", str(exc))

    def record_fetch(
        self,
        tool: str,
        *,
        project: str | None,
        session_key: str | None = None,
        refs: Iterable[RecordRef | str] = (),
        results: int = 0,
        query: str | None = None,
    ) -> None:
        """The model read memory through the MCP tool ``tool``: ``refs`` are the records it
        fetched by name, ``results`` how many records the answer listed. Never raises."""
        try:
            if not _names(session_key, project, optional_session=True):
                self._drop("fetch", f"no session or project in {session_key!r}, {project!r}")
                return
            self._add(
                Fetch(
                    self._clock.now(),
                    session_key,
                    project or None,
                    UsageTool(tool),
                    _refs(refs),
                    max(0, int(results)),
                    None if query is None else str(query)[:MAX_QUERY_CHARS],
                )
            )
        except Exception as exc:  # recording must never fail its caller
            self._drop("fetch", str(exc))

    def _add(self, record: Injection | Fetch) -> None:
        if self._closed or len(self._pending) >= self._max_pending:
            self._dropped += 1
            return
        self._pending.append(record)
        if self._first_pending is None:
            self._first_pending = self._clock.monotonic()
            self._wake.set()  # the loop has no deadline yet: give it one
        elif len(self._pending) == self._flush_every:
            self._wake.set()

    def _repeated(self, record: Injection) -> bool:
        """Whether ``record`` repeats the session's last injection within ``REPEAT_WINDOW``."""
        now = self._clock.monotonic()
        shown = (record.source.value, record.refs, record.tokens)
        last = self._last_shown.get(record.session_key)
        self._last_shown[record.session_key] = (shown, now)
        return last is not None and last[0] == shown and now - last[1] <= REPEAT_WINDOW

    def _forget_old_repeats(self) -> None:
        now = self._clock.monotonic()
        self._last_shown = {
            key: last for key, last in self._last_shown.items() if now - last[1] <= REPEAT_WINDOW
        }

    def _drop(self, what: str, error: str) -> None:
        self._dropped += 1
        log.warning("usage.record_dropped", record=what, error=error)

    @property
    def pending(self) -> int:
        """Records not written yet."""
        return len(self._pending)

    # -- writing ---------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Write every pending record in one transaction (injections first, so that a fetch
        right after one is attributed to it). Returns False when that failed: the batch is
        dropped, with a warning."""
        async with self._lock:
            batch, self._pending, self._first_pending = self._pending, [], None
            self._forget_old_repeats()
            if self._dropped:
                log.warning("usage.dropped", records=self._dropped)
                self._dropped = 0
            if not batch:
                return True
            injections = [_injection_row(r) for r in batch if isinstance(r, Injection)]
            fetches = [r for r in batch if isinstance(r, Fetch)]
            fetch_rows = await self._fetch_rows(fetches) if fetches else []
            try:
                await self._writer.run_in_transaction(_insert(injections, fetch_rows))
            except (StorageError, QueueClosedError) as exc:
                log.warning(
                    "usage.flush_failed",
                    injections=len(injections),
                    fetches=len(fetch_rows),
                    error=str(exc),
                )
                return False
            log.debug("usage.flushed", injections=len(injections), fetches=len(fetch_rows))
            return True

    async def _fetch_rows(self, fetches: Sequence[Fetch]) -> list[dict[str, Any]]:
        # A project given as a directory names its project as an injection's does (its git
        # root); finding that may stat the disk, so not on the loop, and not on the hot path.
        paths = {f.project for f in fetches if f.project is not None and os.path.isabs(f.project)}
        projects: dict[str, str | None] = {}
        if paths:
            projects = await anyio.to_thread.run_sync(lambda: {p: project_for(p) for p in paths})
        window = self._window
        return [
            {
                "at": f.at,
                "session_key": f.session_key,
                "project": projects.get(f.project, f.project) if f.project else None,
                "tool": f.tool.value,
                "refs": json.dumps(f.refs),
                "results": f.results,
                "query": f.query,
                "window": window,
            }
            for f in fetches
        ]

    async def prune(self) -> int:
        """Delete the rows older than ``retention`` and the oldest beyond the row limits, a
        chunk per transaction; returns how many went. Raises ``StorageError``."""
        before = earlier(self._clock.now(), span(self.retention))
        deleted = 0
        for query, params in (
            ("prune_injections_before", {"before": before}),
            ("prune_fetches_before", {"before": before}),
            ("prune_injections_over", {"keep": self._max_injections}),
            ("prune_fetches_over", {"keep": self._max_fetches}),
        ):
            deleted += await self._prune_chunks(query, params)
        # What the model processors cost (migration 0012), by the same retention.
        deleted += await prune_model_usage(self._writer, before=before)
        if deleted:
            log.info("usage.pruned", rows=deleted)
        return deleted

    async def _prune_chunks(self, query: str, params: dict[str, Any]) -> int:
        total = 0
        statement, chunked = QUERIES[query], {**params, "chunk": PRUNE_CHUNK}

        async def delete(tx: Transaction) -> int:
            return await tx.execute(statement, chunked)

        while True:
            deleted = await self._writer.run_in_transaction(delete)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    async def forget_session(self, session_key: str) -> None:
        """The session was deleted: drop its usage rows, written and pending. Raises
        ``StorageError`` when that cannot be written."""
        await self.flush()  # written first: fetches pending now are attributed to it
        async with self._lock:
            self._pending = [r for r in self._pending if r.session_key != session_key]
            self._last_shown.pop(session_key, None)
            params = {"session_key": session_key}

            async def delete(tx: Transaction) -> None:
                await tx.execute(QUERIES["delete_session_usage_injections"], params)
                await tx.execute(QUERIES["delete_session_usage_fetches"], params)

            await self._writer.run_in_transaction(delete)

    async def move_session(self, session_key: str, to_key: str) -> None:
        """The session was transferred into ``to_key``: its usage rows, written and pending,
        are the target's now. Raises ``StorageError`` when that cannot be written."""
        await self.flush()
        async with self._lock:
            self._pending = [
                replace(r, session_key=to_key) if r.session_key == session_key else r
                for r in self._pending
            ]
            self._last_shown.pop(session_key, None)
            params = {"session_key": session_key, "to_key": to_key}

            async def move(tx: Transaction) -> None:
                await tx.execute(QUERIES["move_session_usage_injections"], params)
                await tx.execute(QUERIES["move_session_usage_fetches"], params)

            await self._writer.run_in_transaction(move)

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Flush on the triggers and prune every ``prune_interval`` until ``close``."""
        task_status.started()
        while not self._closed:
            # A fresh event before looking, so a record made during the flush wakes the wait.
            self._wake = anyio.Event()
            delay = await self.step()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def step(self) -> float:
        """Flush if a trigger fired and prune if due; the seconds until either is due next."""
        if len(self._pending) >= self._flush_every or self._until_flush() <= 0:
            await self.flush()
        now = self._clock.monotonic()
        if now >= self._next_prune:
            self._next_prune = now + self._prune_interval
            try:
                await self.prune()
            except (StorageError, QueueClosedError) as exc:
                log.warning("usage.prune_failed", error=str(exc))
        return max(0.0, min(self._until_flush(), self._next_prune - self._clock.monotonic()))

    def _until_flush(self) -> float:
        if self._first_pending is None:
            return math.inf
        return self._first_pending + self._flush_interval - self._clock.monotonic()

    async def close(self) -> None:
        """Stop ``run`` and write what is pending. Call it once nothing records any more
        (the HTTP server stopped) and before the queue closes."""
        self._closed = True
        self._wake.set()
        await self.flush()


def _names(session_key: str | None, project: str | None, *, optional_session: bool) -> bool:
    """Whether the session (a non-empty string, or None where optional) and the project (a
    string or None; "" is None) can be stored."""
    if session_key is None:
        session_ok = optional_session
    else:
        session_ok = isinstance(session_key, str) and bool(session_key)
    return session_ok and (project is None or isinstance(project, str))


def _refs(refs: Iterable[RecordRef | str]) -> tuple[str, ...]:
    """Each reference once, in order, as its canonical text (``#12``, ``#S3``), at most
    ``MAX_REFS``; what is no reference is left out."""
    seen: dict[str, None] = {}
    for ref in refs:
        try:
            seen.setdefault(str(ref if isinstance(ref, RecordRef) else parse_ref(ref)), None)
        except InvalidRequestError:
            continue
        if len(seen) == MAX_REFS:
            break
    return tuple(seen)


def _injection_row(record: Injection) -> dict[str, Any]:
    return {
        "at": record.at,
        "session_key": record.session_key,
        "project": record.project,
        "source": record.source.value,
        "refs": json.dumps(record.refs),
        "tokens": record.tokens,
    }


def _insert(
    injections: Sequence[dict[str, Any]], fetches: Sequence[dict[str, Any]]
) -> Callable[[Transaction], Awaitable[None]]:
    async def write(tx: Transaction) -> None:
        if injections:
            await tx.executemany(QUERIES["insert_injection"], injections)
        if fetches:
            await tx.executemany(QUERIES["insert_fetch"], fetches)

    return write
