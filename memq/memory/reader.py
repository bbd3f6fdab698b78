"""A read-only connection to the memory tables: what the store, search and context share."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import ClassVar, Final, Self

import aiosqlite
import anyio

from memq.exceptions import SchemaError, StorageError
from memq.storage import connection
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("memory")


class MemoryReader:
    """One aiosqlite connection that refuses writes (those belong to the queue's writer),
    used by one reader at a time so that multi-statement reads can hold a snapshot."""

    def __init__(self, path: Path, conn: aiosqlite.Connection) -> None:
        self.path = path
        self._conn = conn
        self._lock = anyio.Lock()

    @classmethod
    async def connect(
        cls,
        path: str | os.PathLike[str],
        *,
        busy_timeout: float,
        tables: Sequence[str],
        read_only: bool = False,
    ) -> MemoryReader:
        """Open the database at ``path`` (never creating one), which must hold ``tables``.

        ``read_only`` opens the file with SQLite's ``mode=ro``, for a process that must not
        write to it whatever happens (the CLI reading memory while no daemon runs); by
        default the file is opened ``mode=rw`` with writes refused by ``query_only``.

        Raises ``StorageError`` when the file is missing or unusable, and ``SchemaError`` when
        one of ``tables`` is missing (open the queue first, it migrates the schema).
        """
        db_path = await anyio.to_thread.run_sync(lambda: Path(path).expanduser().resolve())
        # Checked first because aiosqlite's cleanup after a failed connect can outlive the
        # event loop; mode=rw below still makes sure a wrong path never creates a database.
        if not await anyio.Path(db_path).is_file():
            raise StorageError(f"cannot open memory database {db_path}: no such file")
        try:
            conn = await aiosqlite.connect(
                db_path.as_uri() + ("?mode=ro" if read_only else "?mode=rw"),
                uri=True,
                isolation_level=None,
            )
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open memory database {db_path}: {exc}") from exc
        try:
            conn.row_factory = sqlite3.Row
            pragmas = connection.connection_pragmas(
                connection.Synchronous.NORMAL, int(busy_timeout * 1000)
            )
            for pragma in [*pragmas, "PRAGMA query_only = ON"]:
                await conn.execute(pragma)
            await _require_tables(conn, db_path, tables)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"cannot open memory database {db_path}: {exc}") from exc
            raise
        return cls(db_path, conn)

    async def close(self) -> None:
        """Close the connection. Safe to call twice."""
        with anyio.CancelScope(shield=True):
            await self._conn.close()

    @contextlib.asynccontextmanager
    async def reading(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection for reads that need no common snapshot: each statement runs in its
        own implicit transaction, so a cancelled caller leaves nothing open."""
        async with self._lock:
            try:
                yield self._conn
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite: {exc}") from exc

    @contextlib.asynccontextmanager
    async def snapshot(self) -> AsyncIterator[aiosqlite.Connection]:
        """The connection inside a read transaction: every statement sees the same state."""
        async with self._lock:
            try:
                # BEGIN and COMMIT are shielded as a pair: a caller cancelled while BEGIN runs
                # in aiosqlite's thread would otherwise leave the connection inside a
                # transaction for good, and every later read would fail.
                with anyio.CancelScope(shield=True):
                    await self._conn.execute("BEGIN")
                try:
                    yield self._conn
                finally:
                    with anyio.CancelScope(shield=True):
                        await self._conn.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StorageError(f"SQLite: {exc}") from exc


async def _require_tables(conn: aiosqlite.Connection, db_path: Path, tables: Sequence[str]) -> None:
    rows = await conn.execute_fetchall(QUERIES["existing_tables"], {"names": json.dumps(tables)})
    missing = sorted(set(tables) - {str(row["name"]) for row in rows})
    if missing:
        raise SchemaError(
            f"{db_path} has no memory tables ({', '.join(missing)}): "
            "open the queue first, it migrates the schema"
        )


class ReadsMemory:
    """Base of the classes that read memory on a ``MemoryReader`` of their own (the store,
    search, context, export): opening, closing and ``async with``. A subclass names the
    tables it needs in ``TABLES``."""

    TABLES: ClassVar[Sequence[str]] = ()
    """The tables the reader needs: ``open`` refuses a database without them."""

    def __init__(self, reader: MemoryReader) -> None:
        self._reader = reader
        self.path = reader.path

    @classmethod
    async def open(
        cls, path: str | os.PathLike[str], *, busy_timeout: float = 5.0, read_only: bool = False
    ) -> Self:
        """Open a read connection to the database at ``path`` (``read_only``: SQLite's
        ``mode=ro``, see ``MemoryReader.connect``).

        Raises ``SchemaError`` when the tables it needs do not exist (open the queue first: it
        migrates the schema) and ``StorageError`` when the file is not usable.
        """
        reader = await MemoryReader.connect(
            path, busy_timeout=busy_timeout, tables=cls.TABLES, read_only=read_only
        )
        return cls(reader)

    async def close(self) -> None:
        """Close the read connection. Safe to call twice."""
        await self._reader.close()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
