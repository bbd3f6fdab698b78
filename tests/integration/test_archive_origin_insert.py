"""Issue 17: an import writes each record's author and machine with the record itself.

The store's inserts carry who produced a record (memq.memory.origin); the import runs the same
inserts (a prompt its own, ``import_prompt``), so a record costs one statement there too, and
no second UPDATE touches it (on SQLite such an UPDATE would also rewrite its search index row).
A trigger that refuses any UPDATE of the two columns proves it, on each backend.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator

import pytest

from memq.memory import MemoryStore
from memq.memory.archive import SessionExporter, import_effect
from tests.helpers.backends import Backend, SqliteBackend
from tests.integration.test_record_origin import ALICE, _renamed, origins, team_memory

TABLES = ("prompts", "observations", "summaries")


def _sqlite_ddl(backend: SqliteBackend, statements: list[str]) -> None:
    conn = sqlite3.connect(backend.db_path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture
def no_origin_updates(backend: Backend) -> Iterator[None]:
    """Any UPDATE of a record's author or machine fails, while the test runs."""
    if isinstance(backend, SqliteBackend):
        _sqlite_ddl(
            backend,
            [
                f"CREATE TRIGGER refuse_{t}_origin BEFORE UPDATE OF author, machine ON {t} "
                "BEGIN SELECT RAISE(ABORT, 'origin written after the insert'); END"
                for t in TABLES
            ],
        )
    else:
        backend.table(
            "CREATE FUNCTION refuse_origin() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "RAISE EXCEPTION 'origin written after the insert'; END $$"
        )
        for t in TABLES:
            backend.table(
                f"CREATE TRIGGER refuse_{t}_origin BEFORE UPDATE OF author, machine ON {t} "
                "FOR EACH ROW EXECUTE FUNCTION refuse_origin()"
            )
    try:
        yield
    finally:
        if isinstance(backend, SqliteBackend):
            _sqlite_ddl(backend, [f"DROP TRIGGER refuse_{t}_origin" for t in TABLES])
        else:  # the schema is the run's: leave it as it was
            for t in TABLES:
                backend.table(f"DROP TRIGGER refuse_{t}_origin ON {t}")
            backend.table("DROP FUNCTION refuse_origin()")


async def test_the_import_inserts_the_origin(
    backend: Backend, backend_store: MemoryStore, no_origin_updates: None
) -> None:
    """Alice's session, exported and imported under a new key: every record names her and her
    machine, and nothing updated them after the insert."""
    await team_memory(backend.queue, backend_store)
    exporter = await backend.reader(SessionExporter)
    lines = await exporter.export(ALICE)
    assert lines is not None
    assert {json.loads(line)["author"] for line in lines[1:]} == {"alice"}
    copy = "claude-code:alice-copy"
    result = await backend.queue.run_in_transaction(import_effect(_renamed(lines, copy)))
    assert (result.prompts, result.observations, result.summaries) == (1, 1, 1)
    for table in TABLES:
        assert origins(backend, table, copy) == {("alice", "laptop-a")}, table
