"""The PostgreSQL schema: its migrations apply once, also when several run at once, a newer
schema is refused, and it has every table, column, key and index SQLite's migrations make."""

from __future__ import annotations

import asyncio
import sqlite3
from typing import Any

import pytest

from memq.exceptions import SchemaError
from memq.storage import schema as sqlite_schema
from memq.storage.postgres import connection, schema
from memq.storage.schema import Migration
from tests.postgres.conftest import PgSchema

LATEST = schema.migrations()[-1].version

# What PostgreSQL has that SQLite does not, on purpose (each explained in its migration):
# the daemons' heartbeats and the claims' fencing (0002_claims), the session leases
# (0003_session_leases), the search columns that replace SQLite's FTS5 index (0001_schema).
PG_ONLY_TABLES = {"daemons", "session_leases"}
PG_ONLY_COLUMNS = {
    "pending_messages": {"claim_token", "claimed_by"},
    "observations": {"search"},
    "summaries": {"search"},
    "prompts": {"search"},
}
PG_ONLY_INDEXES = {
    "daemons_heartbeat",
    "pending_messages_claimed_by",
    "session_leases_daemon",
    "observations_search",
    "summaries_search",
    "prompts_search",
}
# SQLite's look-up of one record by FTS rowid (message_id * 4 + type) for its content view;
# PostgreSQL indexes the records' own rows and needs no such look-up.
SQLITE_ONLY_INDEXES = {"observations_fts_rid", "summaries_fts_rid", "prompts_fts_rid"}
# SQLite triggers replaced by generated columns in PostgreSQL (FTS5 upkeep).
SQLITE_FTS_TRIGGER_SUFFIXES = ("_fts_insert", "_fts_delete", "_fts_unindex", "_fts_reindex")


async def version_rows(conn: Any) -> list[tuple[int, str]]:
    cursor = await conn.execute("SELECT version, name FROM schema_version ORDER BY version")
    return [(int(v), str(n)) for v, n in await cursor.fetchall()]


async def test_migrations_apply_once(pg_conn: Any) -> None:
    assert await schema.current_version(pg_conn) == 0
    first = await schema.migrate(pg_conn)
    assert (first.before, first.after) == (0, LATEST)
    assert [m.version for m in first.applied] == list(range(1, LATEST + 1))
    again = await schema.migrate(pg_conn)
    assert (again.before, again.after, again.applied) == (LATEST, LATEST, [])
    assert await version_rows(pg_conn) == [(m.version, m.name) for m in schema.migrations()]


async def test_a_newer_migration_is_applied_alone(pg_conn: Any) -> None:
    await schema.migrate(pg_conn)
    extra = Migration(LATEST + 1, "later", "CREATE TABLE later_table (id BIGINT);")
    result = await schema.migrate(pg_conn, [*schema.migrations(), extra])
    assert [m.name for m in result.applied] == ["later"]
    assert (result.before, result.after) == (LATEST, LATEST + 1)


async def test_concurrent_migrations_apply_each_exactly_once(pg_schema: PgSchema) -> None:
    """Daemons starting at once: each migrates on its own connection; one applies, the
    others wait for its lock and find nothing left. A slow last migration keeps the first
    one's transaction open long enough that the others are certainly waiting on it."""
    slow = Migration(LATEST + 1, "slow", "SELECT pg_sleep(0.5); CREATE TABLE slow_done (x INT);")
    wanted = [*schema.migrations(), slow]
    conns = [await connection.connect(pg_schema.url, pg_schema.options()) for _ in range(6)]
    try:
        results = await asyncio.gather(*(schema.migrate(conn, wanted) for conn in conns))
        rows = await version_rows(conns[0])
    finally:
        for conn in conns:
            await conn.close()
    applied = [m.version for result in results for m in result.applied]
    assert sorted(applied) == [m.version for m in wanted]  # each once, by someone
    assert sum(1 for result in results if result.applied) == 1  # all of them by one
    assert all(result.after == LATEST + 1 for result in results)
    assert rows == [(m.version, m.name) for m in wanted]


async def test_a_newer_schema_is_refused(pg_conn: Any) -> None:
    await schema.migrate(pg_conn)
    await pg_conn.execute(
        "INSERT INTO schema_version (version, name, applied_at) VALUES (%s, 'future', 0)",
        (LATEST + 1,),
    )
    with pytest.raises(SchemaError, match=f"version {LATEST + 1}, newer than this memq"):
        await schema.migrate(pg_conn)


def test_an_older_server_is_refused() -> None:
    with pytest.raises(SchemaError, match="PostgreSQL 14 or newer; the server is 13"):
        schema._check_server(130012)
    schema._check_server(140000)


async def test_a_failing_migration_leaves_nothing_behind(pg_conn: Any) -> None:
    broken = Migration(LATEST + 1, "broken", "CREATE TABLE half_done (x INT); SELECT 1/0;")
    with pytest.raises(Exception, match="division by zero"):
        await schema.migrate(pg_conn, [*schema.migrations(), broken])
    assert await schema.current_version(pg_conn) == 0  # 0001.. rolled back with it
    cursor = await pg_conn.execute("SELECT to_regclass('pending_messages')")
    assert (await cursor.fetchone())[0] is None


# -- the schema against SQLite's -----------------------------------------------------------


def sqlite_shape(extra_sql: str = "") -> dict[str, Any]:
    """Tables, columns, keys, indexes and triggers of a new SQLite database memq made."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        sqlite_schema.migrate(conn)
        if extra_sql:
            conn.executescript(extra_sql)
        tables = [
            name
            for (name, sql) in conn.execute(
                "SELECT name, sql FROM sqlite_schema WHERE type = 'table'"
            )
            if not name.startswith(("sqlite_", "memory_fts"))
            and not str(sql).startswith("CREATE VIRTUAL")
        ]
        shape: dict[str, Any] = {"tables": {}, "indexes": {}, "foreign_keys": set()}
        for table in tables:
            columns = {}
            pk = []
            for _, name, type_, notnull, _, pk_position in conn.execute(
                f"PRAGMA table_info({table})"
            ):
                columns[name] = (type_.upper(), bool(notnull) or pk_position > 0)
                if pk_position:
                    pk.append((pk_position, name))
            uniques = set()
            for _, index, unique, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
                names = tuple(row[2] for row in conn.execute(f"PRAGMA index_info({index})"))
                if unique and origin != "pk":
                    uniques.add(names)
                if origin == "c":
                    shape["indexes"][index] = (table, names, bool(partial), bool(unique))
            shape["tables"][table] = {
                "columns": columns,
                "pk": tuple(name for _, name in sorted(pk)),
                "uniques": uniques,
            }
            for row in conn.execute(f"PRAGMA foreign_key_list({table})"):
                shape["foreign_keys"].add((table, row[3], row[2], row[4]))
        shape["triggers"] = {
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_schema WHERE type = 'trigger'")
            if not name.endswith(SQLITE_FTS_TRIGGER_SUFFIXES)
        }
        return shape
    finally:
        conn.close()


def pg_shape(pg: PgSchema) -> dict[str, Any]:
    """The same of the PostgreSQL schema."""
    shape: dict[str, Any] = {"tables": {}, "indexes": {}, "foreign_keys": set()}
    columns = pg.query(
        "SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns"
        " WHERE table_schema = current_schema()"
    )
    for table, column, data_type, nullable in columns:
        entry = shape["tables"].setdefault(table, {"columns": {}, "pk": (), "uniques": set()})
        entry["columns"][column] = (data_type, nullable == "NO")
    indexes = pg.query(
        """
        SELECT t.relname, i.relname, x.indisunique, x.indisprimary, x.indpred IS NOT NULL,
               ARRAY(SELECT a.attname FROM unnest(x.indkey) WITH ORDINALITY AS k (attnum, n)
                     JOIN pg_attribute AS a ON a.attrelid = t.oid AND a.attnum = k.attnum
                     ORDER BY k.n),
               EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.oid)
        FROM pg_index AS x
        JOIN pg_class AS i ON i.oid = x.indexrelid
        JOIN pg_class AS t ON t.oid = x.indrelid
        WHERE t.relnamespace = current_schema()::regnamespace
        """
    )
    for table, index, unique, primary, partial, names, constraint in indexes:
        entry = shape["tables"][table]
        if primary:
            entry["pk"] = tuple(names)
        elif unique:
            entry["uniques"].add(tuple(names))
        if not primary and not constraint:
            shape["indexes"][index] = (table, tuple(names), partial, unique)
    for row in pg.query(
        """
        SELECT src.relname, a.attname, dst.relname, b.attname
        FROM pg_constraint AS c
        JOIN pg_class AS src ON src.oid = c.conrelid
        JOIN pg_class AS dst ON dst.oid = c.confrelid
        JOIN pg_attribute AS a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
        JOIN pg_attribute AS b ON b.attrelid = c.confrelid AND b.attnum = c.confkey[1]
        WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace
        """
    ):
        shape["foreign_keys"].add(tuple(row))
    shape["triggers"] = {
        name
        for (name,) in pg.query(
            "SELECT tgname FROM pg_trigger AS g JOIN pg_class AS t ON t.oid = g.tgrelid"
            " WHERE NOT g.tgisinternal AND t.relnamespace = current_schema()::regnamespace"
        )
    }
    return shape


TYPE_FAMILIES = {"INTEGER": {"bigint", "integer", "smallint"}, "TEXT": {"text"}}


def differences(lite: dict[str, Any], pg: dict[str, Any]) -> list[str]:  # noqa: PLR0912
    """Everything SQLite's schema has that PostgreSQL's lacks or has otherwise."""
    found = []
    for table, want in lite["tables"].items():
        have = pg["tables"].get(table)
        if have is None:
            found.append(f"table {table} is missing")
            continue
        for column, (type_, notnull) in want["columns"].items():
            if column not in have["columns"]:
                found.append(f"column {table}.{column} is missing")
                continue
            pg_type, pg_notnull = have["columns"][column]
            if pg_type not in TYPE_FAMILIES[type_]:
                found.append(f"column {table}.{column} is {pg_type}, SQLite's is {type_}")
            if pg_notnull != notnull:
                found.append(f"column {table}.{column}: NOT NULL {pg_notnull}, SQLite {notnull}")
        extra = set(have["columns"]) - set(want["columns"]) - PG_ONLY_COLUMNS.get(table, set())
        if extra:
            found.append(f"table {table} has columns SQLite lacks: {sorted(extra)}")
        if have["pk"] != want["pk"]:
            found.append(f"table {table}: primary key {have['pk']}, SQLite's {want['pk']}")
        if have["uniques"] != want["uniques"]:
            found.append(f"table {table}: unique {have['uniques']}, SQLite's {want['uniques']}")
    extra_tables = set(pg["tables"]) - set(lite["tables"]) - PG_ONLY_TABLES
    if extra_tables:
        found.append(f"tables SQLite lacks: {sorted(extra_tables)}")
    for index, shape in lite["indexes"].items():
        if index in SQLITE_ONLY_INDEXES:
            continue
        if index not in pg["indexes"]:
            found.append(f"index {index} is missing")
        elif pg["indexes"][index] != shape:
            found.append(f"index {index} is {pg['indexes'][index]}, SQLite's {shape}")
    extra_indexes = set(pg["indexes"]) - set(lite["indexes"]) - PG_ONLY_INDEXES
    if extra_indexes:
        found.append(f"indexes SQLite lacks: {sorted(extra_indexes)}")
    if pg["foreign_keys"] != lite["foreign_keys"]:
        found.append(f"foreign keys {pg['foreign_keys']}, SQLite's {lite['foreign_keys']}")
    missing_triggers = lite["triggers"] - pg["triggers"]
    if missing_triggers:
        found.append(f"triggers missing: {sorted(missing_triggers)}")
    return found


async def test_the_schema_has_everything_sqlite_has(pg_conn: Any, pg_schema: PgSchema) -> None:
    """A SQLite migration without its PostgreSQL twin fails here."""
    await schema.migrate(pg_conn)
    assert differences(sqlite_shape(), pg_shape(pg_schema)) == []


async def test_the_comparison_sees_a_sqlite_change_without_its_twin(
    pg_conn: Any, pg_schema: PgSchema
) -> None:
    """The comparison itself can fail: a table, a column and an index only SQLite has."""
    await schema.migrate(pg_conn)
    lite = sqlite_shape(
        "CREATE TABLE only_here (id INTEGER PRIMARY KEY, name TEXT NOT NULL);"
        "ALTER TABLE sessions ADD COLUMN color TEXT;"
        "CREATE INDEX feed_session ON feed (session_key) WHERE project IS NOT NULL;"
    )
    found = differences(lite, pg_shape(pg_schema))
    assert "table only_here is missing" in found
    assert "column sessions.color is missing" in found
    assert "index feed_session is missing" in found
