"""``memq show team#N`` on a laptop with no team server to ask: never the local record of
that number, always a clear error saying why (no MEMQ_UPSTREAM; the daemon stopped). The
team server's side is tests/postgres/test_team_records.py."""

from __future__ import annotations

from pathlib import Path

from tests.acceptance.test_mcp import remember
from tests.helpers.daemon import Daemon

EXIT_ERROR = 1


def test_a_team_reference_never_reads_the_local_record(tmp_path: Path) -> None:
    project = tmp_path / "retry-service"
    (project / ".git").mkdir(parents=True)
    daemon = Daemon(tmp_path / "home")
    daemon.start()
    try:
        remember(daemon, project)
        assert daemon.memq("show", "#1").returncode == 0  # the local record exists
        # A daemon without a team server: 422 with the setting to set.
        done = daemon.memq("show", "team#1")
        assert done.returncode == EXIT_ERROR
        assert done.stdout == ""
        assert "team#1 names a record of a team server" in done.stderr
        assert "MEMQ_UPSTREAM is not set" in done.stderr
        with daemon.client() as client:
            answer = client.get("/api/records", params={"ids": "#1,team#1"})
        assert answer.status_code == 422, answer.text
    finally:
        daemon.kill()
    # No daemon: the file is read for local records only.
    done = daemon.memq("show", "team#1", "#1")
    assert done.returncode == EXIT_ERROR
    assert done.stdout == ""
    assert "team records are read through the memq daemon, which is not running" in done.stderr
    assert daemon.memq("show", "#1").returncode == 0
