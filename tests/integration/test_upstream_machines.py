"""Every name a laptop's database went by upstream (migration 0020, memq.team.outbox): a
name the outbox claims is kept for good, and a name stored before the table existed is
carried over, so the team server is asked to leave out this laptop's records under each
(memq.team.team_search.machine_names), on a real SQLite file."""

from __future__ import annotations

from pathlib import Path

from memq.config import Settings
from memq.storage import connection, schema
from memq.team.team_search import QUERIES, machine_names


def test_a_name_stored_before_the_migration_is_kept(tmp_path: Path) -> None:
    settings = Settings.from_env({"MEMQ_HOME": str(tmp_path), "MEMQ_MACHINE_NAME": "now"})
    conn = connection.connect(settings.database_path)
    try:
        before = [m for m in schema.available_migrations() if m.version < 20]
        assert before[-1].version == 19
        schema.migrate(conn, before)
        conn.execute(QUERIES["claim_machine"], {"machine": "from-before"})
        conn.commit()
        schema.migrate(conn)
        rows = conn.execute(QUERIES["machines"]).fetchall()
    finally:
        conn.close()
    assert [row[0] for row in rows] == ["from-before"]
    assert machine_names(settings) == ["from-before", "now"]
