"""What memq remembers, through the real daemon, CLI and hook: search, timeline, context."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import sample, sequence
from tests.acceptance.test_hook import hook
from tests.helpers.daemon import Daemon, running_daemon


def remember_the_captured_runs(daemon: Daemon) -> None:
    with daemon.client() as client:
        for payload in sequence():
            assert client.post("/api/events", json=payload).status_code in (200, 202)
    daemon.wait_idle()


class TestSearch:
    def test_finds_the_observation_and_explains_bad_queries(self, daemon: Daemon) -> None:
        """Words as typed find the right record; FTS syntax errors are a 400, not a 500."""
        remember_the_captured_runs(daemon)
        with daemon.client() as client:
            found = client.get("/api/search", params={"q": "where did we write notes.txt?"})
            assert found.status_code == 200
            top = found.json()["items"][0]
            assert top["record_type"] == "observation"
            assert "notes.txt" in top["title"]
            bad = client.get("/api/search", params={"q": 'AND "unclosed', "syntax": "fts"})
            assert bad.status_code == 400
            assert bad.json()["error"]
            assert client.get("/api/search").status_code == 422
            around = client.get("/api/timeline", params={"around": top["message_id"]}).json()
            assert around["anchor"]["message_id"] == top["message_id"]
            assert len(around["items"]) > 1
            assert client.get("/api/timeline", params={"around": 10**9}).status_code == 404

    def test_the_cli_prints_a_table_or_json(self, daemon: Daemon) -> None:
        """memq search QUERY shows readable rows; --json is the API's answer."""
        remember_the_captured_runs(daemon)
        table = daemon.memq("search", "exit", "code")
        assert table.returncode == 0, table.stderr
        assert "results)" in table.stdout
        as_json = json.loads(daemon.memq("search", "failing", "--json").stdout)
        assert as_json["total"] >= 1
        message_id = as_json["items"][0]["message_id"]
        timeline = daemon.memq("timeline", str(message_id))
        assert timeline.returncode == 0
        assert f"> {message_id:>8}" in timeline.stdout


class TestContext:
    def test_a_new_session_is_told_what_was_done_in_its_project(self, daemon: Daemon) -> None:
        """SessionStart through the real hook prints the project's context; memq context
        prints the same text."""
        remember_the_captured_runs(daemon)
        start = {**sample("SessionStart"), "session_id": "brand-new-session"}
        result = hook(daemon.home, daemon.port, start)
        assert result.returncode == 0
        assert result.stderr == b""
        context = result.stdout.decode()
        assert "notes.txt" in context
        assert "memq search" in context
        assert len(context) / 4 <= 2000  # within the default budget
        cli = daemon.memq("context", "--cwd", start["cwd"])
        assert cli.returncode == 0, cli.stderr
        assert cli.stdout.strip() == context.strip()

    def test_an_unknown_project_gets_no_context(self, daemon: Daemon) -> None:
        """A session in a project memq knows nothing about prints nothing."""
        start = {**sample("SessionStart"), "cwd": "/nowhere/known"}
        result = hook(daemon.home, daemon.port, start)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    def test_the_context_budget_setting_holds_for_the_session_and_memq_context(
        self, tmp_path: Path
    ) -> None:
        """MEMQ_CONTEXT_BUDGET bounds a SessionStart's text, and memq context (the daemon's
        answer, and the file's with no daemon) shows the same text by default."""
        budget = 250  # the captured runs make ~320 tokens of context
        with running_daemon(tmp_path / "home", env={"MEMQ_CONTEXT_BUDGET": str(budget)}) as d:
            remember_the_captured_runs(d)
            start = {**sample("SessionStart"), "session_id": "brand-new-session"}
            context = hook(d.home, d.port, start).stdout.decode()
            assert len(context) / 4 <= budget
            assert "#S" in context or "#P" in context  # records, not only the frame
            unbounded = d.memq("context", "--cwd", start["cwd"], "--budget", "2000")
            assert len(unbounded.stdout) / 4 > budget  # the setting, not the memory, bounds it
            through_daemon = d.memq("context", "--cwd", start["cwd"])
            assert through_daemon.stdout.strip() == context.strip()
        without_daemon = d.memq("context", "--cwd", start["cwd"])
        assert without_daemon.returncode == 0, without_daemon.stderr
        assert without_daemon.stdout.strip() == context.strip()
