"""When each session was last used: cheap bookkeeping on the hot path, idle expiry.

``touch`` runs for every accepted event, so it only updates dicts. Last-access times reach
``session_activity`` in batches: one transaction after ``flush_every_events`` touches or
``flush_interval`` seconds after the first unflushed one, whichever comes first (and once
more at shutdown), so a hot session costs one write per batch, not one per event. A session
not touched for ``ttl`` seconds is dropped from memory and every expiry callback is told (the
session manager ends a lingering generator; caches drop the session); its data stays.
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable, Sequence
from typing import Final, Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import QueueClosedError, StorageError
from memq.queue import SYSTEM_CLOCK, Clock, EpochMs, Transaction
from memq.storage.sqlfile import load_queries

log = structlog.get_logger("memq.activity")

QUERIES: Final = load_queries("activity")
MAX_SWEEP_INTERVAL: Final = 60.0

ExpiryCallback = Callable[[str], Awaitable[None] | None]


class RunsTransactions(Protocol):
    """Where flushes are written: the queue's single writer (``Queue``)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[None]]) -> None:
        """Run ``fn`` in one write transaction."""


class ActivityTracker:
    """Tracks each session's last access; see the module docstring.

    Args:
        queue: where flushes are written.
        ttl: seconds without a touch after which a session expires.
        flush_every_events: touches that trigger a flush.
        flush_interval: seconds after the first unflushed touch that trigger a flush.
        sweep_interval: seconds between idle sweeps (default ``min(ttl / 4, 60)``).
        clock: its monotonic seconds drive the TTL and the time trigger; its wall clock
            gives the stored last-access times (the queue's ``clock`` in the daemon).
    """

    def __init__(
        self,
        queue: RunsTransactions,
        *,
        ttl: float = 1800.0,
        flush_every_events: int = 256,
        flush_interval: float = 5.0,
        sweep_interval: float | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if ttl <= 0 or flush_interval <= 0 or flush_every_events < 1:
            raise ValueError("ttl and flush_interval must be > 0, flush_every_events >= 1")
        self._queue = queue
        self.ttl = ttl
        self._flush_every = flush_every_events
        self._flush_interval = flush_interval
        self._sweep_interval = (
            min(ttl / 4, MAX_SWEEP_INTERVAL) if sweep_interval is None else sweep_interval
        )
        self._clock = clock
        self._last: dict[str, float] = {}  # session -> clock() of its last touch (the TTL)
        self._dirty: dict[str, EpochMs] = {}  # session -> last access not yet written
        self._unflushed = 0  # touches since the last flush (the count trigger)
        self._first_unflushed: float | None = None  # clock() of the first one (time trigger)
        self._callbacks: list[ExpiryCallback] = []
        self._wake = anyio.Event()
        self._lock = anyio.Lock()
        self._closed = False

    # -- the hot path ----------------------------------------------------------------------

    def touch(self, session_key: str, at: EpochMs | None = None) -> None:
        """Record a use of the session now (stored as ``at`` when given)."""
        now = self._clock.monotonic()
        self._last[session_key] = now
        ms = self._clock.now() if at is None else at
        previous = self._dirty.get(session_key)
        if previous is None or ms > previous:
            self._dirty[session_key] = ms
        self._unflushed += 1
        if self._first_unflushed is None:
            self._first_unflushed = now
            self._wake.set()  # the flush loop has no deadline yet: give it one
        elif self._unflushed == self._flush_every:
            self._wake.set()

    # -- reading ---------------------------------------------------------------------------

    def last_access(self, session_key: str) -> float | None:
        """The ``clock()`` reading of the session's last touch, or None if not tracked."""
        return self._last.get(session_key)

    @property
    def tracked(self) -> int:
        """Sessions held in memory (touched within the TTL)."""
        return len(self._last)

    @property
    def dirty(self) -> int:
        """Sessions whose last access is not written yet."""
        return len(self._dirty)

    def on_expire(self, callback: ExpiryCallback) -> None:
        """Call ``callback(session_key)`` for each session that expires."""
        self._callbacks.append(callback)

    # -- flushing --------------------------------------------------------------------------

    async def flush(self) -> bool:
        """Write every unwritten last access in one transaction; with none, write nothing.
        Returns False when storage failed: the entries stay dirty for the next flush."""
        async with self._lock:
            batch = self._dirty
            self._dirty = {}
            self._unflushed = 0
            self._first_unflushed = None
            if not batch:
                return True
            rows = sorted(batch.items())
            try:
                await self._queue.run_in_transaction(_upsert(rows))
            except (StorageError, QueueClosedError) as exc:
                self._keep_dirty(batch)
                log.warning("activity.flush_failed", sessions=len(rows), error=str(exc))
                return False
            except BaseException:
                self._keep_dirty(batch)  # cancelled: written or not, max() makes a rewrite safe
                raise
            log.debug("activity.flushed", sessions=len(rows))
            return True

    async def flush_if_due(self) -> float:
        """Flush if either trigger fired; return the seconds until the time trigger would
        fire next (infinity with nothing unflushed)."""
        if self._unflushed >= self._flush_every or self._until_due() <= 0:
            await self.flush()
        return self._until_due()

    def _until_due(self) -> float:
        if self._first_unflushed is None:
            return math.inf
        return self._first_unflushed + self._flush_interval - self._clock.monotonic()

    def _keep_dirty(self, batch: dict[str, EpochMs]) -> None:
        """Put a batch that was not written back; touches made since are newer and win."""
        for key, ms in batch.items():
            newer = self._dirty.get(key)
            if newer is None or ms > newer:
                self._dirty[key] = ms
        if self._first_unflushed is None:
            # Retry after the interval (or sooner, after enough new touches), not at once.
            self._first_unflushed = self._clock.monotonic()

    async def forget(self, session_key: str) -> None:
        """The session was deleted (or moved away): drop it without expiring it and delete
        its stored last access. Raises ``StorageError`` when that cannot be written."""
        self._last.pop(session_key, None)
        async with self._lock:  # after a flush in flight, which may still carry it
            # Dropped only now: a flush that failed meanwhile has put its batch back.
            self._dirty.pop(session_key, None)
            await self._queue.run_in_transaction(_delete(session_key))

    # -- expiring --------------------------------------------------------------------------

    async def sweep(self) -> list[str]:
        """Expire every session idle for longer than the TTL; returns their keys."""
        now = self._clock.monotonic()
        idle = [(key, at) for key, at in self._last.items() if now - at > self.ttl]
        expired: list[str] = []
        for key, at in idle:
            if self._last.get(key) != at:
                continue  # touched again while an earlier callback ran: not idle
            del self._last[key]
            expired.append(key)
            log.info("session.expired", session_id=key, idle_seconds=round(now - at, 3))
            for callback in self._callbacks:
                try:
                    result = callback(key)
                    if result is not None:
                        await result
                except Exception:
                    # One cache failing to let go must not keep the others holding on.
                    log.exception(
                        "session.expire_failed",
                        session_id=key,
                        callback=getattr(callback, "__qualname__", repr(callback)),
                    )
        return expired

    # -- running ---------------------------------------------------------------------------

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Flush on the triggers and sweep for idle sessions until ``close``."""
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._sweep_loop)
            task_status.started()
            await self._flush_loop()
            tg.cancel_scope.cancel()

    async def _flush_loop(self) -> None:
        while not self._closed:
            # A fresh event before looking, so a touch made during the flush wakes the wait.
            self._wake = anyio.Event()
            delay = await self.flush_if_due()
            with anyio.move_on_after(delay):
                await self._wake.wait()

    async def _sweep_loop(self) -> None:
        while True:
            await anyio.sleep(self._sweep_interval)
            await self.sweep()

    async def close(self) -> None:
        """Stop ``run`` and write what is left. Call it once no more touches come (the HTTP
        server stopped) and before the queue closes."""
        self._closed = True
        self._wake.set()
        await self.flush()


def _delete(session_key: str) -> Callable[[Transaction], Awaitable[None]]:
    async def write(tx: Transaction) -> None:
        await tx.execute(QUERIES["delete_last_access"], {"session_key": session_key})

    return write


def _upsert(rows: Sequence[tuple[str, int]]) -> Callable[[Transaction], Awaitable[None]]:
    async def write(tx: Transaction) -> None:
        await tx.executemany(
            QUERIES["upsert_last_access"],
            [{"session_key": key, "last_access_at": at} for key, at in rows],
        )

    return write
