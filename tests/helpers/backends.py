"""The queue's two backends behind one face, for the contract tests that run on both: open a
queue (``Queue`` on a SQLite file, ``PgQueue`` on a fresh PostgreSQL schema), read its rows
as an outside tool would (dicts with SQLite's column names and Python types), crash it, and
name it to a child process.

The ``backend`` fixture (tests/conftest.py) builds one per test; the state machine builds
one per example with ``make_backend`` / ``drop``.
"""

from __future__ import annotations

import os
import secrets
import tempfile
from pathlib import Path
from typing import Any, Final, TypeVar

import pytest

from memq.queue import SYSTEM_CLOCK, Clock, Queue, QueueSettings
from memq.queue.testing import simulate_crash
from tests.helpers import rows as sqlite_rows
from tests.postgres import conftest as pg

SQLITE: Final = "sqlite"
POSTGRES: Final = "postgres"
BACKENDS: Final = (SQLITE, POSTGRES)
# Columns only PostgreSQL's pending_messages has (fencing across daemons): left out of the
# rows read, so a row is the same dict on both backends.
PG_ONLY_COLUMNS: Final = frozenset({"claim_token", "claimed_by"})

R = TypeVar("R")


def require_server(name: str) -> None:
    """For ``postgres``: skip (one reason line for every such test) when no server answers,
    or fail when ``MEMQ_REQUIRE_POSTGRES=1``, as tests/postgres/conftest.py does."""
    if name != POSTGRES:
        return
    problem = pg.server_problem()
    if problem is None:
        return
    if os.environ.get(pg.REQUIRE_VARIABLE) == "1":
        pytest.fail(
            f"{pg.skip_message(problem)} ({pg.REQUIRE_VARIABLE}=1: they must run)", pytrace=False
        )
    pytest.skip(pg.skip_message(problem))


_LEFT_OUT = pytest.StashKey[str]()


def select_backends(config: pytest.Config, items: list[pytest.Item]) -> None:
    """For tests/conftest.py's collection hook: a ``postgres`` case is left out when its
    test is marked ``sqlite_only``, is a strict xfail when marked ``postgres_xfail``, and
    is left out, counted in one summary line, when no server answers (and none is
    required: then the ``backend_name`` fixture fails it)."""
    on_postgres = [
        item
        for item in items
        if getattr(getattr(item, "callspec", None), "params", {}).get("backend_name") == POSTGRES
    ]
    for item in on_postgres:
        known = item.get_closest_marker("postgres_xfail")
        if known is not None:
            item.add_marker(pytest.mark.xfail(reason=known.args[0], strict=True))
    left_out = [item for item in on_postgres if item.get_closest_marker("sqlite_only")]
    problem = pg.server_problem() if on_postgres else None
    if problem is not None and os.environ.get(pg.REQUIRE_VARIABLE) != "1":
        skipped = [item for item in on_postgres if item not in set(left_out)]
        left_out = on_postgres
        if config.pluginmanager.is_registered(pg):  # its one line counts them all
            before = int(config.stash.get(pg._SKIPPED, "0 ").split(" ", 1)[0])
            config.stash[pg._SKIPPED] = f"{before + len(skipped)} {pg.skip_message(problem)}"
        else:
            config.stash[_LEFT_OUT] = f"{len(skipped)} {pg.skip_message(problem)}"
    if left_out:
        dropped = set(left_out)
        items[:] = [item for item in items if item not in dropped]
        config.hook.pytest_deselected(items=left_out)


def backends_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_LEFT_OUT, None)
    if line is not None:
        terminalreporter.write_line(line, yellow=True)


class Backend:
    """One store of one backend; ``queue`` is the open queue of the ``backend`` fixture."""

    name: str

    def __init__(self) -> None:
        self.queue: Any = None
        self._opened: list[Any] = []
        self._readers: list[Any] = []

    @property
    def postgres(self) -> bool:
        return self.name == POSTGRES

    async def open(
        self,
        settings: QueueSettings | None = None,
        *,
        max_attempts: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Any:
        """Open a queue on the store, as ``Queue.open(db_path, settings, ...)`` does. One
        queue at a time, as on SQLite (its lock): the fixture's ``queue`` is closed first."""
        if self.queue is not None and not self.queue.closed:
            await self.queue.close()
        queue = await self._open(settings, max_attempts, clock)
        self._opened.append(queue)
        return queue

    async def _open(
        self, settings: QueueSettings | None, max_attempts: int | None, clock: Clock
    ) -> Any:
        raise NotImplementedError

    async def crash(self, queue: Any) -> None:
        """Drop ``queue`` as a killed process would: nothing settled or released. The next
        ``open`` recovers its claims (SQLite: at open, by the lock; PostgreSQL: by the sweep
        at open, this daemon's heartbeat made expired)."""
        raise NotImplementedError

    def killed(self, pid: int) -> None:
        """A child process ``pid`` that had the queue open was SIGKILLed: on PostgreSQL,
        its heartbeat is expired (as ``heartbeat_expiry`` passing would), so the next
        queue's sweep recovers its claims."""

    @property
    def target(self) -> str:
        """What a child process opens (tests.helpers.queue_child): a path or a URL."""
        raise NotImplementedError

    def table(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        """The rows of one query (``?`` parameters), as dicts."""
        raise NotImplementedError

    def sql(self, statement: str) -> str:
        """A statement written with SQLite's ``?`` parameters, in the backend's own."""
        return statement.replace("?", "%s") if self.postgres else statement

    def rows(self) -> list[dict[str, Any]]:
        """Every row of ``pending_messages`` in id order."""
        found = self.table("SELECT * FROM pending_messages ORDER BY id")
        return [{k: v for k, v in r.items() if k not in PG_ONLY_COLUMNS} for r in found]

    def row(self, message_id: int) -> dict[str, Any]:
        """One row of ``pending_messages``."""
        (found,) = [r for r in self.rows() if r["id"] == message_id]
        return found

    async def reader(self, kind: type[R]) -> R:
        """A memory reader of ``kind`` (``MemoryStore``, ``MemorySearch``, ``ContextBuilder``,
        ``SessionExporter``, ...) on the store, as the daemon builds it (``MemorySource``):
        a connection of its own on SQLite, a pool on PostgreSQL (search in its dialect).
        Closed by ``close_all``; open a queue first, it migrates the schema."""
        made: R = await self._reader_of(kind)
        self._readers.append(made)
        return made

    async def _reader_of(self, kind: Any) -> Any:
        raise NotImplementedError

    async def close_all(self) -> None:
        for reader in reversed(self._readers):
            await reader.close()
        self._readers.clear()
        for queue in self._opened:
            if not queue.closed:
                await queue.close()

    def drop(self) -> None:
        """Remove the store."""


class SqliteBackend(Backend):
    name = SQLITE

    def __init__(self, db_path: Path) -> None:
        super().__init__()
        self.db_path = db_path

    async def _open(
        self, settings: QueueSettings | None, max_attempts: int | None, clock: Clock
    ) -> Any:
        return await Queue.open(self.db_path, settings, max_attempts=max_attempts, clock=clock)

    async def _reader_of(self, kind: Any) -> Any:
        return await kind.open(self.db_path)

    async def crash(self, queue: Any) -> None:
        await simulate_crash(queue)

    @property
    def target(self) -> str:
        return str(self.db_path)

    def table(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        return sqlite_rows.table(self.db_path, sql, *params)


class PgBackend(Backend):
    name = POSTGRES

    def __init__(self, url: str, schema: str, *, owned: bool = True) -> None:
        super().__init__()
        self.schema = pg.PgSchema(url, schema)
        self.owned = owned  # dropped by ``drop``; else a schema the run shares (``emptied``)
        self._conn: Any = None

    @classmethod
    def create(cls) -> PgBackend:
        """A fresh, empty schema on the test server."""
        import psycopg  # noqa: PLC0415

        url = pg.server_url()
        name = f"memq_test_{os.getpid()}_{secrets.token_hex(4)}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'CREATE SCHEMA "{name}"'.encode())
        return cls(url, name)

    def drop(self) -> None:
        import psycopg  # noqa: PLC0415

        if self._conn is not None:
            self._conn.close()
        if not self.owned:
            return
        with psycopg.connect(self.schema.url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{self.schema.name}" CASCADE'.encode())

    async def emptied(self) -> PgBackend:
        """The shared schema as a fresh one is once migrated: the first time, migrate it
        (open and close a queue) and note its tables; later, drop the tables tests added,
        empty those the migrations made (but not the ones they filled: schema_version) and
        restart its sequences. Migrating a fresh schema per test costs a third of a second,
        TRUNCATE a quarter; DELETEs of a test's few rows, a millisecond or two."""
        made = _MIGRATED.get(self.schema.name)
        if made is None:
            await (await self._open(None, None, SYSTEM_CLOCK)).close()
            made = (frozenset(self._tables()), self._emptying())
            _MIGRATED[self.schema.name] = made
            return self
        tables, emptying = made
        added = sorted(set(self._tables()) - tables)
        if added:
            self.table("DROP TABLE " + ", ".join(f'"{t}"' for t in added) + " CASCADE")
        self.table(emptying)
        return self

    def _emptying(self) -> str:
        """The statements that empty the migrated schema: referencing tables first."""
        tables = [t for t in self._tables() if not self.table(f'SELECT 1 FROM "{t}" LIMIT 1')]
        referenced = {
            str(r["f"])
            for r in self.table(
                "SELECT confrelid::regclass::text AS f FROM pg_constraint"
                " WHERE contype = 'f' AND connamespace = current_schema()::regnamespace"
            )
        }
        ordered = sorted(tables, key=lambda t: (t in referenced, t))
        sequences = self.table(
            "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
        )
        return "; ".join(
            [f'DELETE FROM "{t}"' for t in ordered]
            + [f'ALTER SEQUENCE "{r["sequencename"]}" RESTART' for r in sequences]
        )

    def _tables(self) -> list[str]:
        query = "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
        return [str(r["tablename"]) for r in self.table(query)]

    async def _open(
        self, settings: QueueSettings | None, max_attempts: int | None, clock: Clock
    ) -> Any:
        from memq.queue.postgres import PgQueue, PgSettings  # noqa: PLC0415

        return await PgQueue.open(
            self.schema.url,
            settings,
            pg=PgSettings(listen_fallback_poll=0.5),
            options=self.schema.options(),
            max_attempts=max_attempts,
            clock=clock,
        )

    async def _reader_of(self, kind: Any) -> Any:
        from memq.memory.pg_search import PgMemoryReader  # noqa: PLC0415
        from memq.memory.search import MemorySearch  # noqa: PLC0415
        from memq.storage.sqlfile import POSTGRES as PG_DIALECT  # noqa: PLC0415

        pool = await PgMemoryReader.open(self.schema.url, self.schema.options())
        if kind is MemorySearch:
            return MemorySearch(pool, dialect=PG_DIALECT)
        return kind(pool)

    async def crash(self, queue: Any) -> None:
        await queue._shut_down(hand_back=False)
        self.table("UPDATE daemons SET heartbeat_at = 0 WHERE id = ?", queue.daemon_id)

    def killed(self, pid: int) -> None:
        self.table("UPDATE daemons SET heartbeat_at = 0 WHERE pid = ?", pid)

    @property
    def target(self) -> str:
        return self.schema.schema_url

    def table(self, sql: str, *params: Any) -> list[dict[str, Any]]:
        from psycopg.rows import dict_row  # noqa: PLC0415

        with self._reader().cursor(row_factory=dict_row) as cur:
            cur.execute(self.sql(sql).encode(), params or None)
            return list(cur.fetchall()) if cur.description is not None else []

    def _reader(self) -> Any:
        """One autocommit connection in the schema for every read (a state machine reads
        after each step: a connection each time would be most of its run time)."""
        import psycopg  # noqa: PLC0415

        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(self.schema.url, autocommit=True, connect_timeout=5)
            self._conn.execute(f'SET search_path TO "{self.schema.name}"'.encode())
        return self._conn


# Shared schemas already migrated: their tables, and the statements that empty them.
_MIGRATED: dict[str, tuple[frozenset[str], str]] = {}


def make_backend(name: str, directory: Path | None = None) -> Backend:
    """A fresh store of backend ``name``: a database file in ``directory`` (a new temporary
    one if None), or a new schema. ``drop`` removes a schema; the caller removes the
    directory."""
    if name == SQLITE:
        return SqliteBackend((directory or Path(tempfile.mkdtemp(prefix="memq-"))) / "memq.db")
    return PgBackend.create()
