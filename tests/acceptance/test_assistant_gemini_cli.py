"""Gemini CLI through the real parts: ``memq hook --assistant gemini-cli`` with the daemon up
and down, ``POST /api/events?assistant=gemini-cli``, and ``memq install --assistant
gemini-cli`` / ``memq uninstall`` on the user's and the project's ``settings.json``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memq.hooks.install import is_memq_command
from memq.hooks.mcp_config import is_memq_server
from tests.acceptance.test_hook import HEAVY, hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import run_module
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gemini-cli"
ASSISTANT = ("--assistant", "gemini-cli")
EVENTS = ("SessionStart", "BeforeAgent", "AfterTool", "AfterAgent", "SessionEnd")


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def sequence() -> list[dict[str, Any]]:
    lines = (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    return [json.loads(line)["payload"] for line in lines if line.strip()]


class TestTheHook:
    def test_the_captured_sequence_is_stored_and_processed_once(self, daemon: Daemon) -> None:
        """Every captured event through the real hook, twice: the second pass is all
        duplicates, and each session has its prompts, observations and summaries."""
        events = sequence()
        for payload in events:
            assert hook(daemon.home, daemon.port, payload, *ASSISTANT).returncode == 0
        stored = len(all_rows(daemon.home / "memq.db"))
        assert stored == len(events)
        for payload in events:
            assert hook(daemon.home, daemon.port, payload, *ASSISTANT).returncode == 0
        assert len(all_rows(daemon.home / "memq.db")) == stored
        daemon.wait_idle()
        with daemon.client() as client:
            for sid in {p["session_id"] for p in events}:
                mine = [p for p in events if p["session_id"] == sid]
                detail = client.get(f"/api/sessions/gemini-cli:{sid}").json()
                prompts = [p["prompt"] for p in mine if p["hook_event_name"] == "BeforeAgent"]
                assert [p["text"] for p in detail["prompts"]] == prompts
                # The extractor records no observation of a bare `ls -la` (a no-op).
                tools = [
                    p
                    for p in mine
                    if p["hook_event_name"] == "AfterTool"
                    and not p["tool_input"].get("command", "").startswith("ls ")
                ]
                found = client.get(f"/api/sessions/gemini-cli:{sid}/observations?limit=100")
                assert found.json()["total"] == len(tools)
                stops = [p for p in mine if p["hook_event_name"] == "AfterAgent"]
                summaries = client.get(f"/api/sessions/gemini-cli:{sid}/summaries")
                assert summaries.json()["total"] == len(stops)

    def test_the_turns_reply_comes_from_the_transcript(self, tmp_path: Path) -> None:
        """(With no daemon, so the row is read before processing empties it.)"""
        home = tmp_path / "home"
        no_spawn(home)
        transcript = tmp_path / "session.jsonl"
        transcript.write_bytes((FIXTURES / "transcript.jsonl").read_bytes())
        payload = {**sample("AfterAgent"), "transcript_path": str(transcript)}
        assert hook(home, free_port(), payload, *ASSISTANT).returncode == 0
        (row,) = all_rows(home / "memq.db")
        stored = json.loads(row["payload"])
        assert stored["last_assistant_message"].startswith("Done. The tool ran; result: {")
        assert stored["last_assistant_message"] != payload["prompt_response"]
        assert stored["last_user_prompt"] == "create hello.txt"

    @pytest.mark.parametrize("name", ["AfterTool.write_file", "AfterAgent"])
    def test_imports_only_the_standard_library(
        self, daemon: Daemon, tmp_path: Path, name: str
    ) -> None:
        """The adapter keeps the hook's start-up light (python -X importtime), the turn's
        transcript reading included."""
        transcript = tmp_path / "session.jsonl"
        transcript.write_bytes((FIXTURES / "transcript.jsonl").read_bytes())
        payload = {**sample(name), "transcript_path": str(transcript)}
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "memq", "hook", *ASSISTANT],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=30,
            check=True,
            env={**os.environ, "MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)},
        )
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.decode().splitlines()
            if line.startswith("import time:")
        }
        # The adapter itself comes through importlib, which importtime does not list; what
        # it imports with import statements is listed.
        assert "memq.hooks.run" in imported
        assert sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY) == []
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["session_id"].startswith("gemini-cli:")


class TestTheDaemonDown:
    def test_the_fallback_writes_the_rows_the_daemon_would(self, tmp_path: Path) -> None:
        """No daemon: the hook writes the rows itself; the daemon processes them once it
        starts, and the same native payloads posted to the API are duplicates."""
        home = tmp_path / "home"
        port = free_port()
        no_spawn(home)
        names = [
            "SessionStart",
            "BeforeAgent",
            "AfterTool.run_shell_command",
            "AfterTool.run_shell_command.fail",
            "AfterAgent",
        ]
        for name in names:
            result = hook(home, port, sample(name), *ASSISTANT)
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        rows = all_rows(home / "memq.db")
        assert [r["kind"] for r in rows] == [
            "event",
            "prompt",
            "observation",
            "observation",
            "summarize",
        ]
        assert "hook.fallback" in (home / "logs" / "hook.log").read_text()
        daemon = Daemon(home, port=port)
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == len(names)
            with daemon.client() as client:
                for name, row in zip(names, rows, strict=True):
                    again = client.post("/api/events?assistant=gemini-cli", json=sample(name))
                    assert again.status_code == 200, name
                    answer = again.json()
                    assert (answer["status"], answer["message_id"]) == ("duplicate", row["id"])
                sid = sample("BeforeAgent")["session_id"]
                found = client.get(f"/api/sessions/gemini-cli:{sid}/observations").json()
                assert found["total"] == 2
        finally:
            daemon.kill()


# -- install / uninstall ----------------------------------------------------------------------

OTHERS: dict[str, Any] = {
    "model": {"name": "gemini-2.5-flash"},
    "hooks": {
        "AfterTool": [
            {
                "matcher": "write_file",
                "hooks": [{"type": "command", "command": "/usr/bin/audit", "timeout": 5000}],
            }
        ],
        "BeforeTool": [{"hooks": [{"type": "command", "command": "/usr/bin/guard"}]}],
    },
    "mcpServers": {"github": {"command": "gh-mcp", "args": []}},
}


def memq(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("memq", *args, env={"HOME": str(home), "GEMINI_CLI_HOME": ""}, cwd=cwd)


def memq_hooks(settings: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    return {
        event: [e for g in groups for e in g["hooks"] if is_memq_command(e["command"])]
        for event, groups in settings.get("hooks", {}).items()
        if any(is_memq_command(e["command"]) for g in groups for e in g["hooks"])
    }


@pytest.mark.parametrize("scope", ["user", "project"])
class TestInstall:
    def paths(self, tmp_path: Path, scope: str) -> tuple[Path, Path, list[str]]:
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        base = project if scope == "project" else home
        flags = ["--project"] if scope == "project" else []
        return home, project, [str(base / ".gemini" / "settings.json"), *flags]

    def test_round_trip_keeps_everything_else(self, tmp_path: Path, scope: str) -> None:
        home, project, (settings_path, *flags) = self.paths(tmp_path, scope)
        path = Path(settings_path)
        path.parent.mkdir()
        original = json.dumps(OTHERS, indent=2) + "\n"
        path.write_text(original)

        installed = memq("install", "--assistant", "gemini-cli", *flags, home=home, cwd=project)
        assert installed.returncode == 0, installed.stderr
        assert str(path) in installed.stdout
        settings = json.loads(path.read_text())
        assert settings["model"] == OTHERS["model"]
        assert settings["mcpServers"]["github"] == OTHERS["mcpServers"]["github"]
        assert is_memq_server(settings["mcpServers"]["memq"])
        assert settings["hooks"]["AfterTool"][0] == OTHERS["hooks"]["AfterTool"][0]
        assert settings["hooks"]["BeforeTool"] == OTHERS["hooks"]["BeforeTool"]
        mine = memq_hooks(settings)
        assert sorted(mine) == sorted(EVENTS)
        for event, entries in mine.items():
            (entry,) = entries
            assert entry["command"].endswith("hook --assistant gemini-cli")
            assert (entry["type"], entry["name"]) == ("command", "memq")
            # Gemini counts hook timeouts in milliseconds: 10 would kill the hook at 10 ms.
            assert entry["timeout"] == 10_000, event
        tool_group = settings["hooks"]["AfterTool"][1]
        assert tool_group["matcher"] == "*"
        backups = list(path.parent.glob("settings.json.memq-backup-*"))
        assert [b.read_text() for b in backups] == [original]

        again = memq("install", "--assistant", "gemini", *flags, home=home, cwd=project)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout
        assert json.loads(path.read_text()) == settings

        removed = memq("uninstall", "--assistant", "gemini-cli", *flags, home=home, cwd=project)
        assert removed.returncode == 0, removed.stderr
        assert json.loads(path.read_text()) == OTHERS
        twice = memq("uninstall", "--assistant", "gemini-cli", *flags, home=home, cwd=project)
        assert "nothing changed" in twice.stdout

    def test_a_new_file_and_no_mcp(self, tmp_path: Path, scope: str) -> None:
        home, project, (settings_path, *flags) = self.paths(tmp_path, scope)
        path = Path(settings_path)
        args = ("--assistant", "gemini-cli", "--no-mcp", *flags)
        assert memq("install", *args, home=home, cwd=project).returncode == 0
        settings = json.loads(path.read_text())
        assert "mcpServers" not in settings
        assert sorted(memq_hooks(settings)) == sorted(EVENTS)
        assert memq("uninstall", *args, home=home, cwd=project).returncode == 0
        assert json.loads(path.read_text()) == {}

    def test_a_file_with_comments_is_refused_untouched(self, tmp_path: Path, scope: str) -> None:
        """Gemini reads its settings as JSON with comments; memq writes plain JSON and would
        drop them, so it changes nothing and says so."""
        home, project, (settings_path, *flags) = self.paths(tmp_path, scope)
        path = Path(settings_path)
        path.parent.mkdir()
        text = '{\n  // my model\n  "model": {"name": "gemini-2.5-pro"} /* pinned */\n}\n'
        path.write_text(text)
        for verb in ("install", "uninstall"):
            result = memq(verb, "--assistant", "gemini-cli", *flags, home=home, cwd=project)
            assert result.returncode != 0
            assert "comments" in result.stderr
        assert path.read_text() == text
        assert list(path.parent.iterdir()) == [path]


def test_a_comment_like_text_inside_a_string_is_no_comment(tmp_path: Path) -> None:
    home = tmp_path / "home"
    path = home / ".gemini" / "settings.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps({"url": "https://example.com/*x*/"}))
    assert memq("install", "--assistant", "gemini-cli", home=home, cwd=tmp_path).returncode == 0
    assert json.loads(path.read_text())["url"] == "https://example.com/*x*/"
