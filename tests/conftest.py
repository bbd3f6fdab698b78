"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from memq.queue import Queue, QueueSettings
from tests.helpers.backends import (
    BACKENDS,
    POSTGRES,
    Backend,
    PgBackend,
    backends_summary,
    make_backend,
    require_server,
    select_backends,
)
from tests.postgres.conftest import server_url

# Short delays so retry paths run in milliseconds; the defaults are tested on their own.
FAST = QueueSettings(retry_delay=0.01, retry_delay_max=0.05, change_check_interval=0.05)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database path in the test's own directory."""
    return tmp_path / "memq.db"


@pytest.fixture
async def queue(db_path: Path) -> AsyncIterator[Queue]:
    """An open queue with fast retries, closed after the test."""
    q = await Queue.open(db_path, FAST)
    yield q
    await q.close()


@pytest.hookimpl(trylast=True)  # after tests/postgres/conftest.py's: one line for both
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The backend-parametrized tests' PostgreSQL cases: left out when marked
    ``sqlite_only``, strict xfails when marked ``postgres_xfail(reason)``, and left out
    with one summary line when no server answers (unless MEMQ_REQUIRE_POSTGRES=1)."""
    select_backends(config, items)


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    backends_summary(terminalreporter, config)


@pytest.fixture(params=BACKENDS)
def backend_name(request: pytest.FixtureRequest) -> str:
    """Each backend in turn: "sqlite", "postgres" (skipped, in one summary line, without a
    server; failed when MEMQ_REQUIRE_POSTGRES=1)."""
    name: str = request.param
    require_server(name)
    return name


@pytest.fixture(scope="session")
def postgres_store() -> Iterator[str]:
    """The run's schema for the ``backend`` fixture's PostgreSQL cases, dropped at the end."""
    made = PgBackend.create()
    try:
        yield made.schema.name
    finally:
        made.drop()


@pytest.fixture
async def backend(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Backend]:
    """A fresh store of each backend with an open queue (``backend.queue``, fast retries),
    and its rows readable as dicts (``backend.rows()``, ``backend.row(id)``). PostgreSQL's
    is the run's schema, emptied (as fresh after its migrations) before each test."""
    made: Backend
    if backend_name == POSTGRES:
        schema: str = request.getfixturevalue("postgres_store")
        made = await PgBackend(server_url(), schema, owned=False).emptied()
    else:
        made = make_backend(backend_name, tmp_path)
    try:
        made.queue = await made.open(FAST)
        yield made
    finally:
        try:
            await made.close_all()
        finally:
            made.drop()
