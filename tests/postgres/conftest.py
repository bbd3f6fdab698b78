"""PostgreSQL tests: a server at ``MEMQ_TEST_DATABASE_URL`` (default the local one, trust
auth), a fresh schema for each test, dropped after it. The driver is imported only when a
test needs it.

With no server answering, the tests that need one skip, all under one line of the summary
that says how to point them at a server; with ``MEMQ_REQUIRE_POSTGRES=1`` (CI) they fail
instead. Tests that need no server (URLs, the missing driver) always run.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"
REQUIRE_VARIABLE = "MEMQ_REQUIRE_POSTGRES"
URL_VARIABLE = "MEMQ_TEST_DATABASE_URL"


def server_url() -> str:
    return os.environ.get(URL_VARIABLE) or DEFAULT_URL


def url_in_schema(url: str, schema: str) -> str:
    """``url`` with libpq's ``options`` setting the search path to ``schema``: how a user
    points memq at a schema of their own, and how the CLI tests reach theirs."""
    parts = urlsplit(url)
    query = [*parse_qsl(parts.query), ("options", f"-csearch_path={schema}")]
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class PgSchema:
    """A fresh, empty schema on the test server."""

    url: str  # the server, as MEMQ_TEST_DATABASE_URL gives it
    name: str

    @property
    def schema_url(self) -> str:
        return url_in_schema(self.url, self.name)

    def options(self, **kwargs: Any) -> Any:
        from memq.storage.postgres.connection import ConnectOptions  # noqa: PLC0415

        return ConnectOptions(schema=self.name, **kwargs)

    def query(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        """Run one statement in the schema on a connection of its own; its rows."""
        import psycopg  # noqa: PLC0415

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'SET search_path TO "{self.name}"')
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description is not None else []


# What the probe found, once per run: None when the server answered.
_probed: dict[str, str | None] = {}


def server_problem() -> str | None:
    """Why the test server cannot be used, or None when it answered (probed once)."""
    url = server_url()
    if url not in _probed:
        _probed[url] = _server_problem(url)
    return _probed[url]


def skip_message(problem: str) -> str:
    return (
        f"PostgreSQL tests skipped: no server at {server_url()} ({problem}); set "
        f"{URL_VARIABLE} to a server's URL to run them"
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With no server (and none required), leave out the tests that need one, and say so in
    one line at the end (a skip per test would be a line per test)."""
    here = Path(__file__).parent
    needing = [
        item
        for item in items
        if here in item.path.parents and "postgres_server" in getattr(item, "fixturenames", ())
    ]
    if not needing or os.environ.get(REQUIRE_VARIABLE) == "1":
        return
    problem = server_problem()
    if problem is None:
        return
    left_out = set(needing)
    items[:] = [item for item in items if item not in left_out]
    config.hook.pytest_deselected(items=needing)
    config.stash[_SKIPPED] = f"{len(needing)} {skip_message(problem)}"


_SKIPPED = pytest.StashKey[str]()


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    line = config.stash.get(_SKIPPED, None)
    if line is not None:
        terminalreporter.write_line(line, yellow=True)


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test server's URL, once it answered; otherwise fail when required (CI), or skip
    (when the test was not left out at collection: run by its id, say)."""
    problem = server_problem()
    if problem is None:
        return server_url()
    if os.environ.get(REQUIRE_VARIABLE) == "1":
        pytest.fail(f"{skip_message(problem)} ({REQUIRE_VARIABLE}=1: they must run)", pytrace=False)
    pytest.skip(skip_message(problem))


def _server_problem(url: str) -> str | None:
    try:
        import psycopg  # noqa: PLC0415 - the skip says when it is missing
    except ImportError:
        return "the driver is not installed: pip install 'memq[postgres]'"
    try:
        with psycopg.connect(url, connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return None


@contextlib.contextmanager
def fresh_schema(server: str) -> Iterator[PgSchema]:
    """A new, empty schema on ``server``, dropped with everything in it on leaving."""
    import psycopg  # noqa: PLC0415

    name = f"memq_test_{os.getpid()}_{secrets.token_hex(4)}"
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{name}"'.encode())
    try:
        yield PgSchema(server, name)
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA "{name}" CASCADE'.encode())


@pytest.fixture
def pg_schema(postgres_server: str) -> Iterator[PgSchema]:
    """A fresh schema, dropped with everything in it after the test."""
    with fresh_schema(postgres_server) as made:
        yield made


@pytest.fixture
def team(pg_schema: PgSchema, tmp_path: Path) -> Iterator[Any]:
    """A real ``memq serve --team`` on a fresh schema (tests.postgres.test_team_server's
    ``TeamServer``), killed after the test."""
    from tests.postgres.test_team_server import TeamServer  # noqa: PLC0415 - imports this

    server = TeamServer(tmp_path / "team", pg_schema.schema_url)
    server.start()
    try:
        yield server
    finally:
        server.daemon.kill()


@pytest.fixture
async def pg_conn(pg_schema: PgSchema) -> AsyncIterator[Any]:
    """A memq connection (``memq.storage.postgres.connection.connect``) to the schema."""
    from memq.storage.postgres import connection  # noqa: PLC0415

    conn = await connection.connect(pg_schema.url, pg_schema.options())
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
async def open_pg_queue(pg_schema: PgSchema) -> AsyncIterator[Any]:
    """Opens ``PgQueue``s (daemons) on the test's schema, fast retries by default; all
    closed after the test (a crashed one's close does nothing)."""
    from memq.queue.postgres import PgQueue, PgSettings  # noqa: PLC0415
    from tests.conftest import FAST  # noqa: PLC0415

    opened: list[PgQueue] = []

    async def open_queue(settings: Any = None, **kwargs: Any) -> PgQueue:
        kwargs.setdefault("pg", PgSettings(listen_fallback_poll=0.5))
        queue = await PgQueue.open(
            pg_schema.url, settings or FAST, options=pg_schema.options(), **kwargs
        )
        opened.append(queue)
        return queue

    try:
        yield open_queue
    finally:
        for queue in opened:
            await queue.close()


@pytest.fixture
async def pg_queue(open_pg_queue: Any) -> Any:
    """One open ``PgQueue`` on a fresh schema."""
    return await open_pg_queue()
