"""Waking daemons: LISTEN/NOTIFY on a dedicated connection, a slow poll while it is down.

Each enqueue batch notifies the channel ``memq_<schema>`` at commit with the sessions it
added to (``writer.notify_payload``). ``Listener`` keeps one connection outside the pool
listening, and hands each notification (but those of this daemon's own writer, whose
streams its commit woke already) to ``NotifyWatcher``, which wakes the idle streams
of those sessions and whoever waits for rows (the worker's session manager). When the
connection drops the listener logs ``queue.listen_lost``, reconnects with backoff, and once
listening again wakes everyone once (notifications sent meanwhile are lost); until then the
watcher polls every ``listen_fallback_poll`` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import psycopg
import structlog
from psycopg import sql

from memq.exceptions import QueueClosedError, StorageError
from memq.queue._wakeup import Wakeups
from memq.queue.postgres.writer import parse_notify_payload

log = structlog.get_logger("memq.queue")


class NotifyWatcher:
    """What idle streams (``poll``, ``interval``: the interface of SQLite's
    ``ForeignChangeWatcher``) and the session manager (``wait``) see of notifications."""

    def __init__(
        self,
        wakeups: Wakeups,
        interval: float,
        sessions_with_pending: Callable[[list[str]], Awaitable[list[str]]],
        listening: Callable[[], bool],
    ) -> None:
        self._wakeups = wakeups
        self.interval = interval
        self._sessions_with_pending = sessions_with_pending
        self._listening = listening
        self._checked_at = -float("inf")
        self._checking = False
        self._changed = anyio.Event()  # set by the next notification or fallback poll
        self._closed = False
        self.checks = 0  # fallback polls that queried the database, for tests
        self.heard: deque[list[str] | None] = deque(maxlen=16)  # the last ones, for tests

    def notified(self, sessions: list[str] | None) -> None:
        """A notification: wake those sessions' streams (all, for None) and every waiter."""
        self.heard.append(sessions)
        if sessions is None:
            self._wakeups.wake_all()
        else:
            self._wakeups.wake(sessions)
        self._fire()

    def _fire(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def poll(self) -> None:
        """While not listening, at most once per interval: wake idle sessions that have work
        and whoever ``wait``s. Listening, notifications do it."""
        now = anyio.current_time()
        if self._listening() or self._checking or now - self._checked_at < self.interval:
            return
        self._checking = True
        self._checked_at = now
        try:
            self.checks += 1
            armed = self._wakeups.armed()
            if armed:
                self._wakeups.wake(await self._sessions_with_pending(armed))
            self._fire()
        finally:
            self._checking = False

    async def wait(self) -> None:
        """Return after the next notification (or fallback poll). Raises
        ``QueueClosedError`` once closed."""
        changed = self._changed
        while not changed.is_set() and not self._closed:
            with anyio.move_on_after(self.interval):
                await changed.wait()
            if not changed.is_set() and not self._closed:
                await self.poll()
        if self._closed:
            raise QueueClosedError

    def close(self) -> None:
        self._closed = True
        self._changed.set()


class Listener:
    """The listening connection, kept up until ``close``."""

    def __init__(
        self,
        connect: Callable[[], Awaitable[psycopg.AsyncConnection[Any]]],
        channel: str,
        watcher: NotifyWatcher,
        *,
        own_pid: Callable[[], int | None],
        reconnect_min: float,
        reconnect_max: float,
    ) -> None:
        self._connect = connect
        self.channel = channel
        self._watcher = watcher
        self._own_pid = own_pid
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._task: asyncio.Task[None] | None = None
        self.listening = False
        self.backend_pid: int | None = None  # of the listening connection, for tests
        self.reconnects = 0
        self._started = anyio.Event()

    async def start(self) -> None:
        """Listen in a task of its own; returns once the first LISTEN is in place (or the
        first attempt failed: the task keeps trying)."""
        self._task = asyncio.get_running_loop().create_task(self._run())
        await self._started.wait()

    async def _run(self) -> None:
        delay = self._reconnect_min
        lost = False
        while True:
            try:
                conn = await self._connect()
                self._conn = conn
                await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))
                self.backend_pid = conn.info.backend_pid
                self.listening = True
                self._started.set()
                if lost:
                    self.reconnects += 1
                    log.info("queue.listen_restored", channel=self.channel)
                    self._watcher.notified(None)  # what was sent meanwhile is lost: look
                delay = self._reconnect_min
                async for notify in conn.notifies():
                    # This daemon's own enqueues woke its streams at commit already.
                    if notify.pid != self._own_pid():
                        self._watcher.notified(parse_notify_payload(notify.payload))
                raise psycopg.OperationalError("the notifications ended")
            except (psycopg.Error, StorageError, OSError) as exc:
                if self.listening or not lost:
                    log.warning("queue.listen_lost", channel=self.channel, error=str(exc))
                self.listening = False
                lost = True
                self._started.set()
                await self._close_connection()
                await anyio.sleep(delay)
                delay = min(delay * 2, self._reconnect_max)

    async def _close_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(psycopg.Error):
                    await conn.close()

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with anyio.CancelScope(shield=True):
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self.listening = False
        await self._close_connection()
