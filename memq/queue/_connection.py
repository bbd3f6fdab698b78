"""A SQLite connection that lives in a thread of its own, handed whole units of work.

The event loop must never wait on SQLite itself (an fsync, another process's write lock), so
each of the queue's connections is used by one thread only, and the loop hands it work. Every
hand-off is a round trip between threads, tens to a hundred microseconds on a small machine,
more than SQLite takes for most of the queue's statements; so the queue hands over a unit of
work at a time with ``run``: a transaction from ``BEGIN`` to ``COMMIT``, or a read. ``post``
hands over work that reports back on its own: the group-commit writer's thread, once woken,
runs every batch waiting and tells the loop of each (``memq.queue._writer``).

aiosqlite, which the memory readers use, hands over one statement at a time; running a
function in its thread is private API there (``Connection._execute``). So the queue owns its
threads, and this module is that and nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from queue import SimpleQueue
from typing import Any, Generic, TypeVar

import structlog

log = structlog.get_logger("memq.queue")
T = TypeVar("T")
Parameters = Sequence[Any] | Mapping[str, Any]
# Room for insert_messages at every batch size plus the named statements.
CACHED_STATEMENTS = 1024


class _Call(Generic[T]):
    """One function for the thread, and the future of the loop that waits for it (None for
    work that was posted: it reports back on its own)."""

    __slots__ = ("fn", "future", "loop")

    def __init__(
        self,
        fn: Callable[[sqlite3.Connection], T],
        loop: asyncio.AbstractEventLoop | None,
        future: asyncio.Future[T] | None,
    ) -> None:
        self.fn = fn
        self.loop = loop
        self.future = future


def _settle(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # its caller was cancelled and went away; the work is done regardless
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


def _serve(
    calls: SimpleQueue[_Call[Any] | None], connect: Callable[[], sqlite3.Connection]
) -> None:
    """The thread: open the connection at the first call, then run each call in turn until
    told to stop."""
    conn: sqlite3.Connection | None = None
    while True:
        call = calls.get()
        if call is None:
            return
        result: Any = None
        error: BaseException | None = None
        try:
            if call.fn is _close:
                if conn is not None:
                    closing, conn = conn, None
                    closing.close()
            else:
                if conn is None:
                    conn = connect()
                result = call.fn(conn)
        except BaseException as exc:  # handed to the caller, whatever it is
            error = exc
        if call.loop is None or call.future is None:
            if error is not None:  # posted work reports its own errors: this is a bug
                log.error("queue.thread_call_failed", exc_info=error)
            continue
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            call.loop.call_soon_threadsafe(_settle, call.future, result, error)


def _close(conn: sqlite3.Connection) -> None:
    """Stands for "close the connection" in ``_serve``; never called."""


def _nothing(conn: sqlite3.Connection) -> None:
    return None


class ThreadConnection:
    """A ``sqlite3`` connection (``isolation_level=None``, rows as ``sqlite3.Row``) used by
    one thread only; ``run`` hands that thread a function of the connection.

    A caller cancelled while its function runs stops waiting, but the function runs to its
    end: whatever must not be cut off halfway (a transaction) belongs in one function.
    """

    def __init__(self, path: Path, pragmas: Sequence[str], *, name: str) -> None:
        self.path = path
        self._calls: SimpleQueue[_Call[Any] | None] = SimpleQueue()
        self._open = True
        self.trips = 0  # calls handed to the thread, for benchmarks

        def connect() -> sqlite3.Connection:
            conn = sqlite3.connect(path, isolation_level=None, cached_statements=CACHED_STATEMENTS)
            try:
                conn.row_factory = sqlite3.Row
                for pragma in pragmas:
                    conn.execute(pragma)
            except BaseException:
                conn.close()
                raise
            return conn

        # A daemon thread: a queue never closed must not keep the interpreter from exiting.
        self._thread = threading.Thread(
            target=_serve, args=(self._calls, connect), name=name, daemon=True
        )
        self._thread.start()

    @classmethod
    async def open(cls, path: Path, pragmas: Sequence[str], *, name: str) -> ThreadConnection:
        """Open ``path`` in a new thread and run ``pragmas`` there (``sqlite3.Error`` if the
        file cannot be opened)."""
        conn = cls(path, pragmas, name=name)
        try:
            await conn.run(_nothing)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def run(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` in the connection's thread and return what it returns."""
        if not self._open:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.trips += 1
        self._calls.put(_Call(fn, loop, future))
        return await future

    def post(self, fn: Callable[[sqlite3.Connection], object]) -> None:
        """Hand ``fn(connection)`` to the thread and return at once: ``fn`` tells whoever
        waits for it itself, and must not raise. Runs after the calls handed over before."""
        if not self._open:
            raise sqlite3.ProgrammingError("Cannot operate on a closed database.")
        self.trips += 1
        self._calls.put(_Call(fn, None, None))

    def others_waiting(self) -> bool:
        """Whether calls are waiting for the thread (asked in the thread, by posted work
        that could go on: it lets them go first)."""
        return not self._calls.empty()

    async def execute(self, sql: str, parameters: Parameters = ()) -> int:
        """Run one statement; return how many rows it changed."""

        def execute(conn: sqlite3.Connection) -> int:
            cursor = conn.execute(sql, parameters)
            count = cursor.rowcount
            cursor.close()
            return count

        return await self.run(execute)

    async def execute_fetchall(self, sql: str, parameters: Parameters = ()) -> list[sqlite3.Row]:
        """Run one statement and return all its rows."""
        return await self.run(lambda conn: conn.execute(sql, parameters).fetchall())

    async def backup(self, target: sqlite3.Connection) -> None:
        """Copy the whole database, as this connection sees it, into ``target``."""
        await self.run(lambda conn: conn.backup(target))

    async def close(self) -> None:
        """Close the connection (after the calls already handed over) and end the thread.
        Safe to call twice."""
        if not self._open:
            return
        try:
            await self.run(_close)
        finally:
            self._open = False
            self._calls.put(None)
