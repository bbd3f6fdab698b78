"""The configured database opened for ``memq keys``, whether a daemon runs or not.

``open_database(settings)`` gives an object with ``run_in_transaction`` (as the queue has,
so ``memq.team.keys`` runs on it unchanged) over one connection of its own:

- PostgreSQL (``MEMQ_DATABASE_URL``): the schema is migrated first (``memq migrate``'s
  way: daemons starting meanwhile wait for it), then each call is a transaction, its
  statements in their PostgreSQL form (``pg_form``).
- SQLite (``MEMQ_HOME/memq.db``): migrated under the queue's instance lock when no daemon
  holds it (a running daemon migrated it when it started); each call is a
  ``BEGIN IMMEDIATE`` transaction, which waits (busy timeout) for the daemon's writer
  rather than fail, as the hook's own writes do.

Times come from the system clock, as the daemon's do.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

from memq.exceptions import QueueLockedError, StorageError
from memq.queue import SYSTEM_CLOCK, Clock, Transaction

if TYPE_CHECKING:
    import psycopg

    from memq.config import Settings

T = TypeVar("T")


class _SqliteTransaction:
    """``memq.queue.Transaction``'s face on a plain ``sqlite3`` connection."""

    def __init__(self, conn: sqlite3.Connection, now: int) -> None:
        self._conn = conn
        self.now_ms = now

    async def execute(self, sql: str, parameters: Any = ()) -> int:
        return self._conn.execute(sql, parameters).rowcount

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> None:
        self._conn.executemany(sql, parameters)

    async def fetchall(self, sql: str, parameters: Any = ()) -> list[sqlite3.Row]:
        return self._conn.execute(sql, parameters).fetchall()


class SqliteDatabase:
    """The home's SQLite file, one transaction at a time."""

    def __init__(self, conn: sqlite3.Connection, clock: Clock = SYSTEM_CLOCK) -> None:
        self._conn = conn
        self._conn.row_factory = sqlite3.Row
        self._clock = clock

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        try:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                tx = _SqliteTransaction(self._conn, self._clock.now())
                result = await fn(cast(Transaction, tx))
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"cannot use the database: {exc}") from exc
        return result


class PgDatabase:
    """The PostgreSQL schema of ``url``, one transaction at a time."""

    def __init__(
        self, conn: psycopg.AsyncConnection[Any], url: str, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        self._conn = conn
        self._url = url
        self._clock = clock

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        from memq.queue.postgres.writer import PgTransaction  # noqa: PLC0415
        from memq.storage.postgres.connection import storage_errors  # noqa: PLC0415

        with storage_errors(self._url):
            async with self._conn.transaction():
                tx = PgTransaction(self._conn, self._clock.now())
                return await fn(cast(Transaction, tx))


@contextlib.asynccontextmanager
async def open_database(settings: Settings) -> AsyncIterator[SqliteDatabase | PgDatabase]:
    """The configured database, migrated; closed on leaving.

    Raises:
        StorageError: it cannot be opened or migrated.
        SchemaError: a newer memq wrote it.
        SettingError: PostgreSQL is configured but its driver is not installed.
    """
    if settings.database_url:
        async with _postgres(settings.database_url) as pg:
            yield pg
        return
    conn = _sqlite(settings)
    try:
        yield SqliteDatabase(conn)
    finally:
        conn.close()


@contextlib.asynccontextmanager
async def _postgres(url: str) -> AsyncIterator[PgDatabase]:
    from memq.storage.postgres import connection, schema  # noqa: PLC0415

    conn = await connection.connect(url)
    try:
        await schema.migrate(conn, url=url)
        yield PgDatabase(conn, url)
    finally:
        await conn.close()


def _sqlite(settings: Settings) -> sqlite3.Connection:
    from memq.queue import InstanceLock, lock_path_for  # noqa: PLC0415
    from memq.storage import connection, schema  # noqa: PLC0415

    database = settings.database_path
    settings.paths.create_home()
    synchronous = connection.Synchronous(settings.synchronous)
    try:
        try:
            lock = InstanceLock.acquire(lock_path_for(database))
        except QueueLockedError:
            lock = None  # a daemon has the file open: it migrated it when it started
        try:
            conn = connection.connect(database, synchronous=synchronous)
            if lock is not None:
                try:
                    schema.migrate(conn)
                except BaseException:
                    conn.close()
                    raise
        finally:
            if lock is not None:
                lock.release()
    except sqlite3.Error as exc:
        raise StorageError(f"{database}: {exc}") from exc
    return conn
