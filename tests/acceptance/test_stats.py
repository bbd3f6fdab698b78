"""Issue 12, knowing whether memory is used: the real daemon records what a SessionStart
showed and what the model read through the MCP server's API calls; ``memq stats`` shows the
figures, from the daemon and from the file when the daemon is down."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

from memq.config import Settings
from memq.mcp.reader import MemoryApi
from tests.acceptance.conftest import sample
from tests.acceptance.test_memory import remember_the_captured_runs
from tests.helpers.daemon import Daemon

START = {**sample("SessionStart"), "session_id": "stats-session"}
PROJECT = START["cwd"]  # no git above it: the directory is the project
SESSION = "claude-code:stats-session"
MCP = {"X-Memq-Via": "mcp", "X-Memq-Project": PROJECT}


def used_memory(daemon: Daemon) -> str:
    """A session starts (its context is injected), then the model searches and fetches one
    of the records the context showed, through the API as the MCP server calls it. Reads
    without the MCP headers (a person's CLI) are not the model's. Returns the context."""
    remember_the_captured_runs(daemon)
    with daemon.client() as client:
        started = client.post("/api/events", json=START)
        assert started.status_code == 200
        context: str = started.json()["additionalContext"]
        shown = re.findall(r"#[SP]?\d+", context)
        assert shown, context
        assert client.get("/api/search", params={"q": "notes"}).status_code == 200
        assert client.get("/api/search", params={"q": "notes"}, headers=MCP).status_code == 200
        got = client.get("/api/records", params={"ids": shown[0]}, headers=MCP)
        assert got.status_code == 200, got.text
        index = client.get(
            "/api/records", params={"ids": shown[0], "purpose": "index"}, headers=MCP
        )
        assert index.status_code == 200
    return context


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


class TestStats:
    def test_the_daemon_counts_an_injection_and_the_models_reads(self, daemon: Daemon) -> None:
        """The captured runs' own SessionStarts are injections too; the new session's one
        context, one search and one fetch of a shown record are a hit and a ref hit."""
        context = used_memory(daemon)
        result = daemon.memq("stats", "--json")
        assert result.returncode == 0, result.stderr
        body = json.loads(result.stdout)
        overall = body["overall"]
        assert overall["injections"] > 1
        assert overall["by_source"]["startup"] >= 1  # the others depend on processing's pace
        assert (overall["fetches"], overall["searches"], overall["records_fetched"]) == (2, 1, 1)
        assert [row["project"] for row in body["projects"]] == [PROJECT]
        newest = body["sessions"][0]
        assert (newest["session_key"], newest["project"]) == (SESSION, PROJECT)
        assert (newest["injections"], newest["by_source"]["startup"]) == (1, 1)
        assert newest["tokens"] >= len(context) // 4
        assert (newest["searches"], newest["records_fetched"]) == (1, 1)
        assert (newest["hit_rate"], newest["ref_hit_rate"]) == (1.0, 1.0)
        assert overall["hits"] == 1

        table = daemon.memq("stats", "--project", PROJECT)
        assert table.returncode == 0, table.stderr
        assert PROJECT in table.stdout
        assert SESSION in table.stdout
        assert "100%" in table.stdout  # the new session's hit rate
        assert daemon.memq("stats", "--project", "/somewhere/else", "--json").returncode == 0

    def test_the_figures_without_the_daemon(self, daemon: Daemon) -> None:
        """Stopped, the daemon has written what it recorded; memq stats reads the file
        read-only and prints the same figures."""
        used_memory(daemon)
        running = json.loads(daemon.memq("stats", "--json").stdout)
        assert daemon.stop() == 0
        database = daemon.home / "memq.db"
        before = digest(database)
        offline = daemon.memq("stats", "--json")
        assert offline.returncode == 0, offline.stderr
        assert "reading" in offline.stderr
        assert json.loads(offline.stdout) == running
        assert daemon.memq("stats").returncode == 0
        assert digest(database) == before

    def test_the_mcp_servers_own_reads_are_the_models(self, daemon: Daemon) -> None:
        """Through the MCP server's reader (``memq.mcp.reader``), as its tools call the API:
        a timeline around a shown record and a fetch of it count; a read to index records
        (the search tool's cost hints) does not."""
        remember_the_captured_runs(daemon)
        with daemon.client() as client:
            context = client.post("/api/events", json=START).json()["additionalContext"]
        ref = re.findall(r"#\d+", context)[0]
        api = MemoryApi(Settings.from_env(daemon.env, only=("port",)))
        api.timeline(ref, current=PROJECT, before=1, after=1)
        api.records([ref], current=PROJECT)
        api.records([ref], current=PROJECT, for_index=True)
        body = json.loads(daemon.memq("stats", "--json").stdout)
        newest = body["sessions"][0]
        assert newest["session_key"] == SESSION
        assert newest["by_tool"] == {
            "search": 0,
            "timeline": 1,
            "get_observations": 1,
            "recent_context": 0,
        }
        assert (newest["records_fetched"], newest["ref_hit_rate"]) == (2, 1.0)

    def test_deleting_a_session_deletes_its_figures(self, daemon: Daemon) -> None:
        """Its injections and the model's reads attributed to it (their queries) go too."""
        used_memory(daemon)
        with daemon.client() as client:
            assert client.delete(f"/api/sessions/{SESSION}").status_code == 200
        body = json.loads(daemon.memq("stats", "--json").stdout)
        assert SESSION not in [row["session_key"] for row in body["sessions"]]
        assert body["overall"]["fetches"] == 0

    def test_a_bad_parameter_is_refused(self, daemon: Daemon) -> None:
        with daemon.client() as client:
            answer = client.get("/api/stats", params={"sessions": "-1"})
        assert answer.status_code == 422
        assert "sessions" in answer.json()["error"]
        refused = daemon.memq("stats", "--sessions", "many")
        assert refused.returncode == 2
        assert "--sessions" in refused.stderr
