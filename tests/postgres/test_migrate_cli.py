"""``memq migrate`` as a real process: PostgreSQL with MEMQ_DATABASE_URL, SQLite without,
and a clear error when the driver is missing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from memq.queue import InstanceLock, lock_path_for
from memq.storage import schema as sqlite_schema
from memq.storage.postgres import schema
from tests.helpers.processes import project_env, run_module
from tests.postgres.conftest import PgSchema

LATEST = schema.migrations()[-1].version


def memq(home: Path, *args: str, url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {"MEMQ_HOME": str(home), "MEMQ_DATABASE_URL": url or ""}
    return run_module("memq", *args, env=env)


def test_migrate_brings_the_postgresql_schema_up_to_date(
    tmp_path: Path, pg_schema: PgSchema
) -> None:
    first = memq(tmp_path / "home", "migrate", url=pg_schema.schema_url)
    assert first.returncode == 0, first.stderr
    assert "applied 0001_schema, 0002_claims" in first.stdout
    assert f"schema at version {LATEST}" in first.stdout
    assert pg_schema.query("SELECT count(*) FROM schema_version") == [(LATEST,)]
    again = memq(tmp_path / "home", "migrate", url=pg_schema.schema_url)
    assert again.returncode == 0, again.stderr
    assert f"schema already at version {LATEST}" in again.stdout
    pg_schema.query(f"INSERT INTO schema_version VALUES ({LATEST + 1}, 'future', 0)")
    newer = memq(tmp_path / "home", "migrate", url=pg_schema.schema_url)
    assert newer.returncode == 1
    assert "newer than this memq" in newer.stderr


def test_two_processes_migrating_at_once_apply_each_migration_once(
    tmp_path: Path, pg_schema: PgSchema
) -> None:
    env = project_env(
        {"MEMQ_HOME": str(tmp_path / "home"), "MEMQ_DATABASE_URL": pg_schema.schema_url}
    )
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "memq", "migrate", "--json"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(3)
    ]
    outputs = [child.communicate(timeout=60) for child in children]
    assert [child.returncode for child in children] == [0, 0, 0], outputs
    applied = [name for out, _ in outputs for name in json.loads(out)["applied"]]
    assert sorted(applied) == [f"{m.version:04d}_{m.name}" for m in schema.migrations()]
    assert pg_schema.query("SELECT version FROM schema_version ORDER BY 1") == [
        (v,) for v in range(1, LATEST + 1)
    ]


def test_without_a_url_migrate_brings_the_sqlite_database_up_to_date(tmp_path: Path) -> None:
    latest = sqlite_schema.available_migrations()[-1].version
    done = memq(tmp_path / "home", "migrate")
    assert done.returncode == 0, done.stderr
    assert "sqlite" in done.stdout
    assert f"schema at version {latest}" in done.stdout
    assert "0001_pending_messages" in done.stdout
    again = memq(tmp_path / "home", "migrate")
    assert f"schema already at version {latest}" in again.stdout


def test_a_sqlite_database_a_daemon_holds_is_left_to_the_daemon(tmp_path: Path) -> None:
    """The queue's instance lock held (as a running daemon holds it): nothing is written,
    and migrate says the daemon migrated the file when it started."""
    home = tmp_path / "home"
    assert memq(home, "migrate").returncode == 0
    lock = InstanceLock.acquire(lock_path_for(home / "memq.db"))
    try:
        held = memq(home, "migrate")
    finally:
        lock.release()
    assert held.returncode == 0, held.stderr
    assert "open by another memq process" in held.stdout
    assert "brings the schema up to date when it starts" in held.stdout


def test_without_the_driver_postgresql_names_the_extra(tmp_path: Path) -> None:
    """psycopg made unimportable, as without memq[postgres]."""
    code = "import sys; sys.modules['psycopg'] = None; from memq.cli import main; sys.exit(main())"
    done = subprocess.run(
        [sys.executable, "-c", code, "migrate"],
        env=project_env(
            {"MEMQ_HOME": str(tmp_path / "home"), "MEMQ_DATABASE_URL": "postgresql://db/memq"}
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "pip install 'memq[postgres]'" in done.stderr
