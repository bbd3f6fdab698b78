"""Connections: configured alike (schema, time limits), failures as memq's errors."""

from __future__ import annotations

import socket

import pytest

from memq.exceptions import SettingError, StorageError
from memq.storage.postgres import connection
from tests.postgres.conftest import PgSchema


async def test_a_pool_works_in_its_schema_with_its_limits(pg_schema: PgSchema) -> None:
    options = pg_schema.options(statement_timeout=2.5, min_size=2, max_size=3)
    pool = await connection.open_pool(pg_schema.url, options)
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute(
                "SELECT current_schema(), current_setting('statement_timeout')"
            )
            assert await cursor.fetchone() == (pg_schema.name, "2500ms")
            assert conn.autocommit
    finally:
        await pool.close()


async def test_a_statement_past_its_limit_is_a_storage_error(pg_schema: PgSchema) -> None:
    conn = await connection.connect(pg_schema.url, pg_schema.options(statement_timeout=0.2))
    try:
        with (
            pytest.raises(StorageError, match="statement timeout"),
            connection.storage_errors(pg_schema.url),
        ):
            await conn.execute("SELECT pg_sleep(2)")
    finally:
        await conn.close()


def closed_port() -> int:
    """A loopback port nothing listens on (it was free a moment ago)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_no_server_is_a_storage_error_without_the_password() -> None:
    port = closed_port()
    url = f"postgresql://memq:hunter2@127.0.0.1:{port}/nowhere"
    with pytest.raises(StorageError) as caught:
        await connection.connect(url)
    assert "hunter2" not in str(caught.value)
    assert f"postgresql://memq:***@127.0.0.1:{port}/nowhere" in str(caught.value)
    with pytest.raises(StorageError):
        await connection.open_pool(url, connection.ConnectOptions(connect_timeout=2))


def test_a_schema_name_must_be_a_plain_identifier() -> None:
    with pytest.raises(SettingError, match="plain lowercase"):
        connection.ConnectOptions(schema='x"; DROP TABLE sessions; --')
