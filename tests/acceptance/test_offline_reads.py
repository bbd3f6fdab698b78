"""Issue 10, item 7: memq search, sessions, context, timeline and export read the database
file themselves when no daemon answers, read-only, and print what the daemon would."""

from __future__ import annotations

import hashlib
import json
import re
import signal
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.acceptance.conftest import sample, sequence
from tests.helpers.daemon import Daemon

SESSION = sample("UserPromptSubmit")["session_id"]
CWD = sample("SessionStart")["cwd"]
# Reads through a daemon note the sessions they touch; these keep that in memory while the
# test compares (it is written at a flush, and would change `last_access_at`).
QUIET_ACTIVITY = {
    "MEMQ_ACTIVITY_FLUSH_INTERVAL": "3600",
    "MEMQ_ACTIVITY_FLUSH_EVENTS": "1000000",
}


def commands(message_id: int) -> dict[str, tuple[str, ...]]:
    """Every read command, in table and JSON form."""
    return {
        "search": ("search", "notes"),
        "search --json": ("search", "notes", "--json"),
        "search filtered": ("search", "notes", "--session", SESSION, "--type", "observation"),
        "sessions": ("sessions",),
        "sessions --json": ("sessions", "--json"),
        "context": ("context", "--cwd", CWD),
        "context --json": ("context", "--cwd", CWD, "--json"),
        "timeline": ("timeline", str(message_id), "--utc"),
        "timeline --json": ("timeline", str(message_id), "--json"),
        "export": ("export", SESSION),
    }


def comparable(name: str, output: str) -> str:
    """The output without what changes from one second to the next."""
    if name == "export":
        first, _, rest = output.partition("\n")
        head = json.loads(first)
        head["exported_at"] = "-"
        return json.dumps(head) + "\n" + rest
    if name.startswith("context"):
        return re.sub(r"just now|\d+[mhd] ago", "<when>", output)
    return output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def remembered(tmp_path: Path) -> Iterator[Daemon]:
    """A home whose database an earlier daemon run wrote; the daemon is stopped."""
    daemon = Daemon(tmp_path / "home", env=QUIET_ACTIVITY)
    daemon.start()
    try:
        with daemon.client() as client:
            for payload in sequence():
                assert client.post("/api/events", json=payload).status_code in (200, 202)
        daemon.wait_idle()
    finally:
        assert daemon.stop() == 0
    yield daemon
    daemon.kill()


class TestReadsWithoutTheDaemon:
    def test_print_what_the_daemon_prints(self, remembered: Daemon) -> None:
        """Each read command answers from the file, says so in one line on stderr, prints
        what the daemon prints for the same database, and leaves the file unchanged."""
        daemon = remembered
        database = daemon.home / "memq.db"
        before = digest(database)
        found = json.loads(daemon.memq("search", "notes", "--json").stdout)
        message_id = found["items"][0]["message_id"]
        direct: dict[str, str] = {}
        for name, args in commands(message_id).items():
            result = daemon.memq(*args)
            assert result.returncode == 0, (name, result.stderr)
            assert result.stderr == (f"memq: daemon not running; reading {database} directly\n"), (
                name
            )
            assert result.stdout.strip(), name
            direct[name] = result.stdout
        assert digest(database) == before  # read-only: nothing written, nothing migrated

        daemon.start()
        for name, args in commands(message_id).items():
            through_daemon = daemon.memq(*args)
            assert through_daemon.returncode == 0, (name, through_daemon.stderr)
            assert through_daemon.stderr == "", name
            assert comparable(name, through_daemon.stdout) == comparable(name, direct[name]), name

    def test_errors_are_the_daemons(self, remembered: Daemon) -> None:
        """What the daemon refuses is refused alike: an unknown session or message, a
        search it cannot run."""
        daemon = remembered
        for args, error in [
            (("export", "no-such-session"), "memq: no session claude-code:no-such-session"),
            (("timeline", "999999"), "memq: no memory record came from message 999999"),
            (("search", "--fts", 'AND "unclosed'), "memq: invalid search query"),
        ]:
            result = daemon.memq(*args)
            assert result.returncode == 1, args
            note, problem = result.stderr.splitlines()
            assert note.startswith("memq: daemon not running; reading")
            assert problem.startswith(error), (args, problem)

    def test_read_while_another_process_writes(self, remembered: Daemon) -> None:
        """WAL: a read goes on while another connection holds the write lock, and sees what
        was committed before."""
        database = remembered.home / "memq.db"
        key = f"claude-code:{SESSION}"
        writer = sqlite3.connect(database, isolation_level=None, timeout=1)
        try:
            writer.execute("BEGIN IMMEDIATE")
            writer.execute("UPDATE sessions SET title = 'renamed' WHERE key = ?", (key,))
            during = remembered.memq("sessions", "--json", timeout=30)
            assert during.returncode == 0, during.stderr
            titles = {item["key"]: item["title"] for item in json.loads(during.stdout)["items"]}
            assert titles[key] == "create out.txt"
            writer.execute("COMMIT")
        finally:
            writer.close()
        after = json.loads(remembered.memq("sessions", "--json").stdout)
        assert {item["key"]: item["title"] for item in after["items"]}[key] == "renamed"

    def test_a_daemon_that_does_not_answer(self, tmp_path: Path) -> None:
        """A daemon that is alive but does not answer (stopped by a signal) is named, and the
        read is answered from the file."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            with daemon.client() as client:
                client.post("/api/events", json=sample("PostToolUse.Bash"))
            daemon.wait_idle()
            assert daemon.process is not None
            pid = daemon.process.pid
            daemon.process.send_signal(signal.SIGSTOP)
            try:
                result = daemon.memq("sessions", timeout=60)
            finally:
                daemon.process.send_signal(signal.SIGCONT)
        finally:
            daemon.kill()
        assert result.returncode == 0, result.stderr
        assert result.stderr.startswith(f"memq: the daemon (pid {pid}) is not answering")
        assert "(1 sessions)" in result.stdout


class TestNoMemoryYet:
    def test_a_home_without_a_database(self, tmp_path: Path) -> None:
        """Before anything was remembered, reads say there is nothing, and neither the home
        nor a database is created."""
        daemon = Daemon(tmp_path / "never-used")
        empty = {
            ("search", "notes"): "(0 results)",
            ("sessions",): "(0 sessions)",
        }
        for args, shown in empty.items():
            result = daemon.memq(*args)
            assert result.returncode == 0, result.stderr
            assert shown in result.stdout
            assert "reading" in result.stderr
        context = daemon.memq("context", "--cwd", CWD)
        assert (context.returncode, context.stdout) == (0, "")
        assert f"memq has no memory of {CWD}" in context.stderr
        assert daemon.memq("timeline", "1").returncode == 1
        assert "no session" in daemon.memq("export", SESSION).stderr
        assert not daemon.home.exists()

    def test_writes_still_need_the_daemon(self, tmp_path: Path) -> None:
        """Only reads fall back: a command that changes memory says the daemon is needed."""
        result = Daemon(tmp_path / "home").memq("revert", SESSION, "--last", "1")
        assert result.returncode == 1
        assert "not answering" in result.stderr
        assert "reading" not in result.stderr
