"""Cursor as a memq client, through the real ``memq hook --assistant cursor``, the real daemon
and ``memq install --assistant cursor`` (Cursor itself has no CLI that can run here)."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from memq.hooks.install import is_memq_command
from tests.acceptance.test_hook import hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import run_module
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cursor"
CONVERSATION = "5b0c3a3e-6f1e-4c2a-9d57-2f7f1a0c9e11"
KEY = f"cursor:{CONVERSATION}"
ASSISTANT = ("--assistant", "cursor")
TURN = ["sessionStart", "beforeSubmitPrompt", "postToolUse.Shell", "postToolUse.Write", "stop"]


def sample(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    data.update(changes)
    return data


class TestThroughTheHook:
    def test_a_turn_is_remembered_and_the_next_session_is_given_it(self, daemon: Daemon) -> None:
        for name in TURN:
            assert hook(daemon.home, daemon.port, sample(name), *ASSISTANT).returncode == 0
        status = daemon.wait_idle()
        assert status["counts"]["processed"] == len(TURN)
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{KEY}").json()
            assert [p["text"] for p in detail["prompts"]] == ["Fix the failing cart total test"]
            observations = client.get(f"/api/sessions/{KEY}/observations").json()
            assert observations["total"] == 2
            titles = {o["title"] for o in observations["items"]}
            assert "Ran `pytest tests/test_cart.py -q` (exit 1)" in titles
            assert client.get(f"/api/sessions/{KEY}/summaries").json()["total"] == 1

        other = "0f3a9c2e-1b7d-4e55-8a21-9c0d4e6b7f88"
        start = sample("sessionStart", conversation_id=other, session_id=other, generation_id=other)
        result = hook(daemon.home, daemon.port, start, *ASSISTANT)
        assert (result.returncode, result.stderr) == (0, b"")
        reply = json.loads(result.stdout)
        assert list(reply) == ["additional_context"]
        assert "money.py" in reply["additional_context"]

    def test_a_prompt_is_never_blocked(self, daemon: Daemon) -> None:
        """beforeSubmitPrompt: silence (Cursor fails open), or ``{"continue": true}``."""
        result = hook(daemon.home, daemon.port, sample("beforeSubmitPrompt"), *ASSISTANT)
        assert result.returncode == 0
        assert result.stdout in (b"", b'{"continue": true}')


class TestWithTheDaemonDown:
    def test_the_fallback_writes_the_same_rows_and_a_resend_is_a_duplicate(
        self, tmp_path: Path
    ) -> None:
        home, port = tmp_path / "home", free_port()
        no_spawn(home)
        for name in TURN:
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
        assert {r["session_id"] for r in rows} == {KEY}
        assert "hook.fallback" in (home / "logs" / "hook.log").read_text()

        daemon = Daemon(home, port=port)
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == len(TURN)
            with daemon.client() as client:
                for name, row in zip(TURN, rows, strict=True):
                    again = client.post("/api/events?assistant=cursor", json=sample(name))
                    assert again.status_code == 200, name
                    answer = again.json()
                    assert (answer["status"], answer["message_id"]) == ("duplicate", row["id"])
        finally:
            daemon.kill()


class TestThroughTheApi:
    def test_native_payloads_are_mapped_stored_and_processed_once(self, daemon: Daemon) -> None:
        with daemon.client() as client:
            for name in TURN:
                answer = client.post("/api/events?assistant=cursor", json=sample(name))
                assert answer.status_code in (200, 202), answer.text
            daemon.wait_idle()
            again = client.post("/api/events?assistant=cursor", json=sample("postToolUse.Shell"))
            assert again.json()["status"] == "duplicate"
            observations = client.get(f"/api/sessions/{KEY}/observations").json()
            assert observations["total"] == 2
            assert {o["tool_name"] for o in observations["items"]} == {"Bash", "Write"}
        rows = all_rows(daemon.home / "memq.db")
        assert [r["kind"] for r in rows] == [
            "event",
            "prompt",
            "observation",
            "observation",
            "summarize",
        ]


# -- memq install / uninstall --assistant cursor ----------------------------------------------

THEIRS: dict[str, Any] = {
    "version": 1,
    "hooks": {
        "afterFileEdit": [{"command": "./hooks/format.sh"}],
        "stop": [{"command": "./hooks/audit.sh", "loop_limit": 10}],
    },
}
THEIR_SERVERS: dict[str, Any] = {
    "mcpServers": {"linear": {"url": "https://mcp.linear.app/sse"}},
}


def memq(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module("memq", *args, env={"HOME": str(home)}, cwd=cwd)


def memq_commands(config: dict[str, Any]) -> dict[str, list[str]]:
    return {
        event: [e["command"] for e in entries if is_memq_command(e["command"])]
        for event, entries in config.get("hooks", {}).items()
        if any(is_memq_command(e["command"]) for e in entries)
    }


@pytest.mark.parametrize("scope", ["user", "project"])
def test_install_and_uninstall_round_trip(tmp_path: Path, scope: str) -> None:
    home, project = tmp_path / "home", tmp_path / "project"
    project.mkdir()
    base = (home if scope == "user" else project) / ".cursor"
    base.mkdir(parents=True)
    hooks_file, mcp_file = base / "hooks.json", base / "mcp.json"
    original = json.dumps(THEIRS, indent=2) + "\n"
    hooks_file.write_text(original)
    mcp_file.write_text(json.dumps(THEIR_SERVERS, indent=2) + "\n")
    os.chmod(hooks_file, 0o640)
    scope_args = ("--project",) if scope == "project" else ()

    installed = memq("install", "--assistant", "cursor", *scope_args, home=home, cwd=project)
    assert installed.returncode == 0, installed.stderr
    assert "backup of the previous file" in installed.stdout
    config = json.loads(hooks_file.read_text())
    assert config["version"] == 1
    assert config["hooks"]["afterFileEdit"] == THEIRS["hooks"]["afterFileEdit"]
    assert config["hooks"]["stop"][0] == THEIRS["hooks"]["stop"][0]
    assert set(memq_commands(config)) == {
        "sessionStart",
        "beforeSubmitPrompt",
        "postToolUse",
        "postToolUseFailure",
        "stop",
        "sessionEnd",
    }
    command = config["hooks"]["stop"][1]["command"]
    assert command.endswith("memq hook --assistant cursor")
    assert oct(hooks_file.stat().st_mode & 0o777) == oct(0o640)  # mode kept
    backups = sorted(base.glob("hooks.json.memq-backup-*"))
    assert [b.read_text() for b in backups] == [original]
    servers = json.loads(mcp_file.read_text())["mcpServers"]
    assert list(servers) == ["linear", "memq"]
    assert servers["memq"]["args"][-1] == "mcp"
    assert "type" not in servers["memq"]

    again = memq("install", "--assistant", "cursor", *scope_args, home=home, cwd=project)
    assert again.returncode == 0, again.stderr
    assert "already in" in again.stdout
    assert json.loads(hooks_file.read_text()) == config
    assert sorted(base.glob("hooks.json.memq-backup-*")) == backups  # nothing written

    removed = memq("uninstall", "--assistant", "cursor", *scope_args, home=home, cwd=project)
    assert removed.returncode == 0, removed.stderr
    assert json.loads(hooks_file.read_text()) == THEIRS
    assert json.loads(mcp_file.read_text()) == THEIR_SERVERS
    twice = memq("uninstall", "--assistant", "cursor", *scope_args, home=home, cwd=project)
    assert "nothing changed" in twice.stdout


def test_install_creates_the_files_and_uninstall_leaves_them_empty(tmp_path: Path) -> None:
    installed = memq("install", "--assistant", "cursor", home=tmp_path, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    hooks_file = tmp_path / ".cursor" / "hooks.json"
    config = json.loads(hooks_file.read_text())
    assert next(iter(config)) == "version"
    assert memq("uninstall", "--assistant", "cursor", home=tmp_path, cwd=tmp_path).returncode == 0
    assert json.loads(hooks_file.read_text()) == {"version": 1}


def test_a_broken_hooks_file_is_refused_untouched(tmp_path: Path) -> None:
    hooks_file = tmp_path / ".cursor" / "hooks.json"
    hooks_file.parent.mkdir()
    hooks_file.write_text('{"version": 1, "hooks": []}')
    result = memq("install", "--assistant", "cursor", home=tmp_path, cwd=tmp_path)
    assert result.returncode != 0
    assert hooks_file.read_text() == '{"version": 1, "hooks": []}'
    assert not (tmp_path / ".cursor" / "mcp.json").exists()
