"""Issue 10, item 6: gaps and messages of the real ``memq`` CLI against the real daemon."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from memq.queue import InstanceLock, lock_path_for
from tests.acceptance.conftest import sample
from tests.acceptance.test_memory import remember_the_captured_runs
from tests.helpers.daemon import Daemon
from tests.helpers.processes import project_env, run_module

SESSION = sample("PostToolUse.Bash")["session_id"]
KEY = f"claude-code:{SESSION}"


def remember_commands(daemon: Daemon, count: int = 3) -> list[int]:
    """``count`` observations of the same shell command; their message ids."""
    ids = []
    with daemon.client() as client:
        for i in range(count):
            event = {**sample("PostToolUse.Bash"), "tool_use_id": f"toolu_gap{i}"}
            answer = client.post("/api/events", json=event)
            assert answer.status_code == 202
            ids.append(answer.json()["message_id"])
    daemon.wait_idle()
    return ids


def memq_without_terminal(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    """The CLI with standard input that is not a terminal (as in a script or a pipe)."""
    return subprocess.run(
        [sys.executable, "-m", "memq", *args],
        env=project_env(daemon.env),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def memq_on_terminal(daemon: Daemon, *args: str, answer: str) -> tuple[int, str]:
    """The CLI with a terminal as standard input, typing ``answer`` at its prompt; the exit
    status and what it wrote to the terminal and stderr."""
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "memq", *args],
        env=project_env(daemon.env),
        stdin=terminal,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(terminal)
    try:
        os.write(controller, answer.encode() + b"\n")
        out, err = process.communicate(timeout=60)
    finally:
        os.close(controller)
    return process.returncode, out + err


class TestDelete:
    def test_deletes_with_yes_and_refuses_without_a_terminal(self, daemon: Daemon) -> None:
        """memq delete exists; without --yes and without a terminal to ask on it deletes
        nothing and says to pass --yes; an unknown session is an error."""
        remember_commands(daemon, 1)
        refused = memq_without_terminal(daemon, "delete", SESSION)
        assert refused.returncode == 2
        assert "--yes" in refused.stderr
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{SESSION}").status_code == 200

            deleted = memq_without_terminal(daemon, "delete", SESSION, "--yes")
            assert deleted.returncode == 0, deleted.stderr
            assert f"deleted {KEY}" in deleted.stdout
            assert client.get(f"/api/sessions/{SESSION}").status_code == 404

        unknown = memq_without_terminal(daemon, "delete", "nobody", "--yes")
        assert unknown.returncode == 1
        assert "no session claude-code:nobody" in unknown.stderr

    def test_asks_on_a_terminal(self, daemon: Daemon) -> None:
        """On a terminal it shows what would go and deletes only on a yes."""
        remember_commands(daemon, 1)
        code, shown = memq_on_terminal(daemon, "delete", SESSION, answer="n")
        assert code == 1
        assert f"delete {KEY} (0 prompt(s), 1 observation(s)" in shown
        assert "nothing deleted" in shown
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{SESSION}").status_code == 200
            code, shown = memq_on_terminal(daemon, "delete", SESSION, answer="y")
            assert code == 0, shown
            assert client.get(f"/api/sessions/{SESSION}").status_code == 404


class TestSearchOutput:
    def test_min_score_drops_weaker_hits(self, daemon: Daemon) -> None:
        """memq search --min-score keeps only hits scoring at least that much."""
        remember_the_captured_runs(daemon)
        every = json.loads(daemon.memq("search", "notes", "--json").stdout)
        scores = sorted(item["score"] for item in every["items"])
        assert len(scores) >= 2
        assert scores[0] < scores[-1]
        threshold = (scores[0] + scores[-1]) / 2
        kept = daemon.memq("search", "notes", "--json", "--min-score", str(threshold))
        assert kept.returncode == 0, kept.stderr
        assert [item["score"] for item in json.loads(kept.stdout)["items"]] == [
            score for score in sorted(scores, reverse=True) if score >= threshold
        ]
        bad = daemon.memq("search", "hello", "--min-score", "high")
        assert bad.returncode == 2
        assert "--min-score" in bad.stderr

    def test_tiny_scores_keep_the_table_aligned(self, daemon: Daemon) -> None:
        """A word in every record scores about 2e-06 (FTS5's floor); the table still puts
        every column in its place."""
        remember_commands(daemon, 3)
        found = json.loads(daemon.memq("search", "hello", "--json").stdout)
        assert all(item["score"] < 0.001 for item in found["items"])  # the case at hand
        table = daemon.memq("search", "hello", "--utc")
        assert table.returncode == 0, table.stderr
        header, *rows = table.stdout.splitlines()
        when_at = header.index("WHEN")
        type_at = header.index("TYPE")
        hits = [row for row in rows if re.match(r"\s*\d+ ", row)]
        assert len(hits) == 3
        for row in hits:
            assert row[:when_at].split()[1] == "<0.01"
            assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC\s*", row[when_at:type_at])
            assert row[type_at:].startswith("observation/command")

    def test_times_name_their_zone(self, daemon: Daemon) -> None:
        """Times are local with their offset (the TZ of the user), or UTC with --utc."""
        remember_commands(daemon, 1)
        message_id = json.loads(daemon.memq("search", "hello", "--json").stdout)["items"][0][
            "message_id"
        ]
        india = {**daemon.env, "TZ": "IST-5:30"}  # POSIX: 5:30 east of UTC
        for args in (("search", "hello"), ("timeline", str(message_id)), ("sessions",)):
            local = run_module("memq", *args, env=india)
            assert local.returncode == 0, local.stderr
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d \+05:30", local.stdout), local.stdout
            utc = run_module("memq", *args, "--utc", env=india)
            assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d UTC", utc.stdout), utc.stdout
            assert "+05:30" not in utc.stdout

    def test_help_is_readable(self, tmp_path: Path) -> None:
        """memq --help fits an 80-column terminal, one command per line beside its help."""
        result = run_module("memq", "--help", env={"COLUMNS": "80", "MEMQ_HOME": str(tmp_path)})
        assert result.returncode == 0
        lines = result.stdout.splitlines()
        assert max(len(line) for line in lines) <= 78
        assert any(re.fullmatch(r"  uninstall +remove memq's hooks .*", line) for line in lines)
        assert any(re.fullmatch(r"  delete +delete a session.*", line) for line in lines)


class TestRevertAndRetryErrors:
    def test_zero_is_refused_by_the_flag_name(self, daemon: Daemon) -> None:
        """--last 0 and --after 0 are named as the flags the user typed; the API's own
        messages name its fields in words."""
        remember_commands(daemon, 1)
        for flag in ("--last", "--after"):
            result = daemon.memq("revert", SESSION, flag, "0")
            assert result.returncode == 2
            assert f"argument {flag}: must be at least 1, not 0" in result.stderr
            assert "{" not in result.stderr
        with daemon.client() as client:
            url = f"/api/sessions/{SESSION}/revert"
            last = client.post(url, json={"last": 0})
            assert last.status_code == 422
            assert last.json()["error"] == (
                '"last" must be a number of messages, a whole number of at least 1, not 0'
            )
            after = client.post(url, json={"after": "7"})
            assert after.status_code == 422
            assert after.json()["error"].startswith('"after" must be a message id')
            both = client.post(url, json={"after": 1, "last": 1})
            assert both.json()["error"] == 'give "after" or "last", not both'

    def test_revert_after_an_unknown_message_is_an_error(self, daemon: Daemon) -> None:
        """--after 999999 names the missing message and forgets nothing; a message of the
        session is still accepted."""
        ids = remember_commands(daemon, 2)
        result = daemon.memq("revert", SESSION, "--after", "999999")
        assert result.returncode == 1
        assert f"{KEY} has no message 999999" in result.stderr
        assert "reverted" not in result.stdout
        with daemon.client() as client:
            observations = client.get(f"/api/sessions/{SESSION}/observations").json()
            assert observations["total"] == 2
            answer = client.post(f"/api/sessions/{SESSION}/revert", json={"after": 999999})
            assert answer.status_code == 404
        kept = daemon.memq("revert", SESSION, "--after", str(ids[0]))
        assert kept.returncode == 0, kept.stderr
        assert "1 record(s)" in kept.stdout

    def test_retry_of_an_unknown_or_unfailed_message_is_an_error(self, daemon: Daemon) -> None:
        """retry 99999 says there is no such message; a processed message is not failed;
        neither prints success."""
        (processed,) = remember_commands(daemon, 1)
        missing = daemon.memq("retry", "99999")
        assert missing.returncode == 1
        assert "no message 99999" in missing.stderr
        assert "retried" not in missing.stdout
        done = daemon.memq("retry", str(processed))
        assert done.returncode == 1
        assert f"message {processed} is processed" in done.stderr
        with daemon.client() as client:
            assert client.post("/api/failed/retry", json={"ids": [99999]}).status_code == 404
            assert client.post("/api/failed/retry", json={"id": processed}).status_code == 409
        nothing = daemon.memq("retry", "--all")
        assert (nothing.returncode, nothing.stdout.strip()) == (0, "no failed messages to retry")


class TestContextBudget:
    def test_a_small_budget_is_not_called_no_memory(self, daemon: Daemon) -> None:
        """--budget 0 is refused by name; a budget too small for anything says so instead
        of claiming memq has no memory."""
        remember_commands(daemon, 1)
        cwd = sample("PostToolUse.Bash")["cwd"]
        zero = daemon.memq("context", "--cwd", cwd, "--budget", "0")
        assert zero.returncode == 2
        assert "argument --budget: must be at least 1, not 0" in zero.stderr
        small = daemon.memq("context", "--cwd", cwd, "--budget", "5")
        assert small.returncode == 0
        assert small.stdout == ""
        assert "too few" in small.stderr
        assert "no memory" not in small.stderr
        answer = json.loads(daemon.memq("context", "--cwd", cwd, "--budget", "5", "--json").stdout)
        assert (answer["context"], answer["has_memory"]) == ("", True)
        nowhere = daemon.memq("context", "--cwd", "/nowhere/known", "--budget", "5")
        assert "memq has no memory of /nowhere/known" in nowhere.stderr


class TestServeWhileRunning:
    def log_events(self, home: Path) -> list[str]:
        log = home / "logs" / "memq.log"
        if not log.exists():
            return []  # nothing was ever logged
        return [json.loads(line)["event"] for line in log.read_text().splitlines()]

    def test_says_so_at_once_and_logs_nothing(self, daemon: Daemon) -> None:
        """A second memq serve names the running daemon's pid, exits non-zero at once and
        logs nothing (no daemon.stopped for a daemon that never ran)."""
        assert daemon.process is not None
        pid = daemon.process.pid
        deadline = time.monotonic() + 10
        # The pid file is written a moment after the daemon first answers, and its
        # daemon.started line after that: the running daemon's own lines must be in first.
        while time.monotonic() < deadline and not (
            (daemon.home / "memq.pid").exists() and "daemon.started" in self.log_events(daemon.home)
        ):
            time.sleep(0.02)
        before = self.log_events(daemon.home)
        started = time.monotonic()
        result = daemon.memq("serve", timeout=30)
        assert time.monotonic() - started < 10
        assert result.returncode == 1
        assert f"already running for {daemon.home} (pid {pid}" in result.stderr
        assert self.log_events(daemon.home) == before

    def test_losing_the_race_for_the_lock_logs_no_stop(self, tmp_path: Path) -> None:
        """When the database is locked by a daemon that has not written its pid file yet,
        memq serve still says it is already running, and logs no daemon.stopped."""
        daemon = Daemon(tmp_path / "home")
        daemon.home.mkdir(mode=0o700)
        lock = InstanceLock.acquire(lock_path_for(daemon.home / "memq.db"))
        try:
            result = daemon.memq("serve", "--quiet", timeout=30)
        finally:
            lock.release()
        assert result.returncode == 1
        assert "already running" in result.stderr
        assert f"process {os.getpid()}" in result.stderr
        assert "daemon.stopped" not in self.log_events(daemon.home)
