"""The pool checks a connection before handing it out: after the server ended every one of
its connections (a restart), the next read gets a fresh connection, not an error."""

from __future__ import annotations

from memq.storage.postgres import connection
from tests.postgres.conftest import PgSchema


async def test_a_read_after_the_pools_connections_were_ended_succeeds(
    pg_schema: PgSchema,
) -> None:
    name = f"memq_check_{pg_schema.name}"[:63]  # this test's connections only
    options = pg_schema.options(min_size=2, max_size=2, application_name=name)
    pool = await connection.open_pool(pg_schema.url, options)
    try:
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT pg_backend_pid()")
            (first_pid,) = await cursor.fetchone() or (None,)
        ended = pg_schema.query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = %s AND pid <> pg_backend_pid()",
            (name,),
        )
        assert len(ended) == 2
        assert all(ok for (ok,) in ended)
        async with pool.connection() as conn:
            cursor = await conn.execute("SELECT pg_backend_pid(), current_schema()")
            pid, schema = await cursor.fetchone() or (None, None)
        assert schema == pg_schema.name
        assert pid != first_pid
    finally:
        await pool.close()
