"""memq export and memq import between two real daemons."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import sample, sequence
from tests.helpers.daemon import Daemon, running_daemon


class TestExportImport:
    def test_a_session_moves_between_homes_once(self, daemon: Daemon, tmp_path: Path) -> None:
        """Export from one memq, import into another: same records, searchable; a second
        import adds nothing; a broken file is refused with the line named."""
        with daemon.client() as client:
            for payload in sequence():
                client.post("/api/events", json=payload)
        daemon.wait_idle()
        session = sample("UserPromptSubmit")["session_id"]
        exported = tmp_path / "session.jsonl"
        result = daemon.memq("export", session, "-o", str(exported))
        assert result.returncode == 0, result.stderr
        lines = exported.read_text().splitlines()
        assert json.loads(lines[0])["type"] == "memq-export"

        with running_daemon(tmp_path / "other") as other:
            first = other.memq("import", str(exported))
            assert first.returncode == 0, first.stderr
            assert "a new session" in first.stdout
            again = other.memq("import", str(exported))
            assert again.returncode == 0
            assert "imported 0 prompt(s), 0 observation(s) and 0 summary(ies)" in again.stdout
            copy = other.memq("export", session)
            assert copy.returncode == 0
            assert copy.stdout.splitlines()[1:] == lines[1:]
            found = json.loads(other.memq("search", "notes.txt", "--json").stdout)
            assert found["total"] >= 1

            broken = tmp_path / "broken.jsonl"
            broken.write_text(lines[0] + "\n{not json\n")
            refused = other.memq("import", str(broken))
            assert refused.returncode == 1
            assert "line 2" in refused.stderr

        assert daemon.memq("export", "no-such-session").returncode == 1
