"""memq.memory.direct on files that are not a memq database yet, or not a database at all:
nothing is created or migrated, and the answer says what the daemon would."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from memq.memory import direct


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestDirectReads:
    def test_a_database_without_memory_tables_is_not_migrated(self, tmp_path: Path) -> None:
        """A SQLite file without memq's tables holds no memory; it is read as it is."""
        database = tmp_path / "memq.db"
        conn = sqlite3.connect(database)
        conn.execute("CREATE TABLE unrelated (x)")
        conn.commit()
        conn.close()
        before = digest(database)
        assert direct.search(database, "notes") == (200, b'{"items":[],"total":0}')
        assert direct.sessions(database, limit=5) == (200, b'{"items":[],"total":0}')
        status, body = direct.export(database, "abc")
        assert (status, json.loads(body)) == (404, {"error": "no session claude-code:abc"})
        assert digest(database) == before
        tables = sqlite3.connect(database).execute("SELECT name FROM sqlite_schema").fetchall()
        assert tables == [("unrelated",)]

    def test_a_missing_database_is_not_created(self, tmp_path: Path) -> None:
        database = tmp_path / "memq.db"
        status, body = direct.context(database, str(tmp_path), budget_tokens=2000)
        assert status == 200
        assert json.loads(body) == {"project": str(tmp_path), "context": "", "has_memory": False}
        assert not database.exists()

    def test_a_file_that_is_not_a_database_is_an_error(self, tmp_path: Path) -> None:
        database = tmp_path / "memq.db"
        database.write_bytes(b"not a database, " * 100)
        status, body = direct.sessions(database)
        assert status == 503
        assert json.loads(body)["error"].startswith(f"cannot read memory from {database}")
        assert database.read_bytes() == b"not a database, " * 100
