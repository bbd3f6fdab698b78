"""Waking idle streams: at once for this process's writes, about once a second for others'.

An idle stream arms an event for its session before it looks for work, so a commit that lands
between the look and the wait still wakes it. Rows written by another process (the hook's
fallback) cannot set an in-process event; SQLite's ``PRAGMA data_version`` tells cheaply that
some other connection committed, and then one query finds which waiting sessions have work.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio


class Wakeups:
    """One event per idle session, set when work may have arrived for it."""

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}

    def arm(self, session_id: str) -> anyio.Event:
        """A fresh event for ``session_id``; call before checking for work."""
        event = anyio.Event()
        self._events[session_id] = event
        return event

    def disarm(self, session_id: str, event: anyio.Event) -> None:
        """Forget ``event`` unless a newer one replaced it."""
        if self._events.get(session_id) is event:
            del self._events[session_id]

    def wake(self, session_ids: Iterable[str]) -> None:
        """Wake the idle streams of these sessions, if any."""
        for session_id in session_ids:
            event = self._events.get(session_id)
            if event is not None:
                event.set()

    def wake_all(self) -> None:
        """Wake every idle stream (the queue is closing)."""
        self.wake(list(self._events))

    def armed(self) -> list[str]:
        """Sessions with an idle stream."""
        return list(self._events)


class ForeignChangeWatcher:
    """Polls ``data_version`` at most once per interval, however many streams ask."""

    def __init__(
        self,
        wakeups: Wakeups,
        interval: float,
        read_version: Callable[[], Awaitable[int]],
        sessions_with_pending: Callable[[list[str]], Awaitable[list[str]]],
    ) -> None:
        self._wakeups = wakeups
        self.interval = interval
        self._read_version = read_version
        self._sessions_with_pending = sessions_with_pending
        self._version: int | None = None
        self._checked_at = -float("inf")
        self._checking = False
        self.checks = 0  # polls that queried the database, for tests

    async def poll(self) -> None:
        """Check for commits by other connections; wake idle sessions that now have work."""
        now = anyio.current_time()
        if self._checking or now - self._checked_at < self.interval:
            return
        self._checking = True
        self._checked_at = now
        try:
            self.checks += 1
            version = await self._read_version()
            if version == self._version:
                return
            self._version = version
            armed = self._wakeups.armed()
            if armed:
                self._wakeups.wake(await self._sessions_with_pending(armed))
        finally:
            self._checking = False
