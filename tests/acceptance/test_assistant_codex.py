"""Codex CLI through the real parts: ``memq hook --assistant codex`` with the daemon up and
down, ``POST /api/events?assistant=codex``, and ``memq install --assistant codex`` /
``memq uninstall`` on the user's and the project's ``hooks.json`` and ``config.toml``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from memq.hooks.install import is_memq_command
from memq.hooks.installers.codex import memq_handlers
from tests.acceptance.test_hook import HEAVY, hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import run_module
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures" / "codex"
ASSISTANT = ("--assistant", "codex")


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def sequence() -> list[dict[str, Any]]:
    lines = (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    return [json.loads(line)["payload"] for line in lines if line.strip()]


class TestTheHook:
    def test_the_captured_sequence_is_stored_and_processed_once(self, daemon: Daemon) -> None:
        """Every captured event through the real hook, twice: the prompts, tool calls and
        turn ends are duplicates the second time, and each session has its prompts,
        observations and summaries (an interrupted turn's too)."""
        events = sequence()
        for payload in events:
            assert hook(daemon.home, daemon.port, payload, *ASSISTANT).returncode == 0
        stored = len(all_rows(daemon.home / "memq.db"))
        assert stored == len(events)
        keyed = [
            p
            for p in events
            if p.get("tool_use_id")
            or p["hook_event_name"] in ("Stop", "Interrupt")
            or (p["hook_event_name"] == "UserPromptSubmit" and "agent_id" not in p)
        ]
        for payload in keyed:
            assert hook(daemon.home, daemon.port, payload, *ASSISTANT).returncode == 0
        assert len(all_rows(daemon.home / "memq.db")) == stored
        daemon.wait_idle()
        with daemon.client() as client:
            for sid in {p["session_id"] for p in events}:
                mine = [p for p in events if p["session_id"] == sid]
                detail = client.get(f"/api/sessions/codex:{sid}").json()
                prompts = [
                    p["prompt"]
                    for p in mine
                    if p["hook_event_name"] == "UserPromptSubmit" and "agent_id" not in p
                ]
                assert [p["text"] for p in detail["prompts"]] == prompts
                # The extractor records no observation of a bare `ls -la` (a no-op).
                tools = [
                    p
                    for p in mine
                    if p["hook_event_name"] == "PostToolUse"
                    and p["tool_input"].get("command") != "ls -la"
                ]
                found = client.get(f"/api/sessions/codex:{sid}/observations?limit=100")
                assert found.json()["total"] == len(tools)
                ends = [p for p in mine if p["hook_event_name"] in ("Stop", "Interrupt")]
                summaries = client.get(f"/api/sessions/codex:{sid}/summaries")
                assert summaries.json()["total"] == len(ends)

    def test_the_exit_code_is_read_from_the_session_file(self, tmp_path: Path) -> None:
        """(With no daemon, so the row is read before processing empties it.)"""
        home = tmp_path / "home"
        no_spawn(home)
        transcript = tmp_path / "rollout.jsonl"
        transcript.write_bytes((FIXTURES / "rollout.fail.jsonl").read_bytes())
        payload = {**sample("PostToolUse.Bash.fail"), "transcript_path": str(transcript)}
        assert hook(home, free_port(), payload, *ASSISTANT).returncode == 0
        (row,) = all_rows(home / "memq.db")
        stored = json.loads(row["payload"])
        assert stored["tool_response"] == {"stdout": "failing\n", "exit_code": 3}
        assert row["dedupe_key"] == f"tool:{payload['tool_use_id']}"

    def test_the_adapter_imports_only_the_standard_library(self, tmp_path: Path) -> None:
        """Codex's adapter, reading the session file too, adds none of the daemon's
        libraries to the hook's path. (Checked in sys.modules: importtime does not see
        importlib.import_module, which is how the hook loads an adapter.)"""
        transcript = tmp_path / "rollout.jsonl"
        transcript.write_bytes((FIXTURES / "rollout.fail.jsonl").read_bytes())
        payload = {**sample("PostToolUse.Bash.fail"), "transcript_path": str(transcript)}
        code = (
            "import json, sys; import memq.hooks.run; from memq.assistants import adapter; "
            "out = adapter('codex').to_memq(json.load(sys.stdin)); "
            "print(json.dumps([out['tool_response'], sorted(sys.modules)]))"
        )
        result = subprocess.run(
            [sys.executable, "-c", code],
            input=json.dumps(payload).encode(),
            capture_output=True,
            timeout=30,
            check=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])},
        )
        response, modules = json.loads(result.stdout)
        assert response == {"stdout": "failing\n", "exit_code": 3}
        assert "memq.assistants.codex" in modules
        assert sorted(m for m in modules if m.split(".")[0] in HEAVY or m in HEAVY) == []

    def test_a_resent_prompt_is_one_event(self, daemon: Daemon) -> None:
        """Codex's turn_id is the prompt's id: the same prompt twice is stored once."""
        for _ in range(2):
            result = hook(daemon.home, daemon.port, sample("UserPromptSubmit"), *ASSISTANT)
            assert result.returncode == 0
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["dedupe_key"] == f"prompt:{sample('UserPromptSubmit')['turn_id']}"


class TestTheDaemonDown:
    def test_the_fallback_writes_the_rows_the_daemon_would(self, tmp_path: Path) -> None:
        """No daemon: the hook writes the rows itself; the daemon processes them once it
        starts, and the same native payloads posted to the API are duplicates."""
        home = tmp_path / "home"
        port = free_port()
        no_spawn(home)
        names = [
            "UserPromptSubmit",
            "PostToolUse.Bash",
            "PostToolUse.Bash.fail",
            "PostToolUse.apply_patch",
            "Stop",
        ]
        for name in names:
            result = hook(home, port, sample(name), *ASSISTANT)
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        rows = all_rows(home / "memq.db")
        assert [r["kind"] for r in rows] == [
            "prompt",
            "observation",
            "observation",
            "observation",
            "summarize",
        ]
        assert all(r["session_id"] == f"codex:{sample(names[0])['session_id']}" for r in rows)
        assert "hook.fallback" in (home / "logs" / "hook.log").read_text()
        daemon = Daemon(home, port=port)
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == len(names)
            with daemon.client() as client:
                for name, row in zip(names, rows, strict=True):
                    again = client.post("/api/events?assistant=codex", json=sample(name))
                    assert again.status_code == 200, name
                    assert again.json() == {"status": "duplicate", "message_id": row["id"]}
                key = f"codex:{sample('Stop')['session_id']}"
                found = client.get(f"/api/sessions/{key}/observations").json()
                titles = [item["title"] for item in found["items"]]
                assert titles == [
                    "Ran `echo hello > hello.txt`",
                    "Ran `echo failing >&2; exit 3`",
                    "Edited src/app.py",
                ]
                (summary,) = client.get(f"/api/sessions/{key}/summaries").json()["items"]
                assert summary["request"] == "create hello.txt"
                assert "src/app.py" in summary["files_edited"]
        finally:
            daemon.kill()


# -- install / uninstall ----------------------------------------------------------------------

OTHER_HOOKS: dict[str, Any] = {
    "hooks": {
        "PostToolUse": [
            {
                "matcher": "Bash",
                "hooks": [{"type": "command", "command": "/usr/bin/audit", "timeout": 5}],
            }
        ],
        "PreToolUse": [{"hooks": [{"type": "command", "command": "/usr/bin/guard"}]}],
    }
}
OTHER_CONFIG = """# the user's own
model = "gpt-5"

[projects."/work/repo"]
trust_level = "trusted"

[mcp_servers.github]
command = "gh-mcp"

[hooks.state."/elsewhere/hooks.json:stop:0:0"]
trusted_hash = "sha256:theirs"
"""


def memq(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return run_module(
        "memq", *args, env={"HOME": str(home), "CODEX_HOME": "", "MEMQ_HOME": ""}, cwd=cwd
    )


@pytest.mark.parametrize("scope", ["user", "project"])
class TestInstall:
    def paths(self, tmp_path: Path, scope: str) -> tuple[Path, Path, Path, list[str]]:
        """The hooks.json, the config.toml with the MCP server, the user's config.toml."""
        home, project = tmp_path / "home", tmp_path / "project"
        (home / ".codex").mkdir(parents=True)
        project.mkdir()
        user_config = home / ".codex" / "config.toml"
        if scope == "user":
            return home / ".codex" / "hooks.json", user_config, user_config, []
        base = project / ".codex"
        return base / "hooks.json", base / "config.toml", user_config, ["--project"]

    def test_install_and_uninstall_keep_everything_else(self, tmp_path: Path, scope: str) -> None:
        hooks_path, mcp_path, user_config, flags = self.paths(tmp_path, scope)
        home, project = tmp_path / "home", tmp_path / "project"
        hooks_path.parent.mkdir(parents=True, exist_ok=True)
        hooks_path.write_text(json.dumps(OTHER_HOOKS, indent=2) + "\n")
        user_config.write_text(OTHER_CONFIG)
        if mcp_path != user_config:
            mcp_path.write_text('[mcp_servers.docs]\ncommand = "docs-mcp"\n')
        before = {p: p.read_bytes() for p in {hooks_path, mcp_path, user_config}}

        done = memq("install", "--assistant", "codex", *flags, home=home, cwd=project)
        assert done.returncode == 0, done.stderr
        assert "backup of the previous file" in done.stdout
        assert len(list(hooks_path.parent.glob("hooks.json.memq-backup-*"))) == 1
        hooks = json.loads(hooks_path.read_text())
        for event, groups in OTHER_HOOKS["hooks"].items():
            assert hooks["hooks"][event][: len(groups)] == groups  # theirs first, as they were
        handlers = memq_handlers(hooks)
        assert sorted(h.event for h in handlers) == sorted(
            ["SessionStart", "UserPromptSubmit", "PostToolUse", "Stop", "Interrupt", "SessionEnd"]
        )
        assert all(is_memq_command(h.command) for h in handlers)
        state = tomllib.loads(user_config.read_text())["hooks"]["state"]
        real = hooks_path.resolve()
        for handler in handlers:
            assert state[handler.key(real)] == {"trusted_hash": handler.trust_hash}
        assert state["/elsewhere/hooks.json:stop:0:0"] == {"trusted_hash": "sha256:theirs"}
        assert user_config.read_text().startswith(OTHER_CONFIG)
        servers = tomllib.loads(mcp_path.read_text())["mcp_servers"]
        assert servers["memq"]["args"] == ["mcp"]
        assert Path(servers["memq"]["command"]).name in ("memq", "python", "python3")
        assert len(servers) == 2  # github's (user) or docs' (project) too

        again = memq("install", "--assistant", "codex", *flags, home=home, cwd=project)
        assert again.returncode == 0, again.stderr
        assert "nothing changed" in again.stdout
        assert "backup" not in again.stdout
        after_install = {p: p.read_bytes() for p in before}

        gone = memq("uninstall", "--assistant", "codex", *flags, home=home, cwd=project)
        assert gone.returncode == 0, gone.stderr
        assert "removed memq's hooks" in gone.stdout
        for path, content in before.items():
            if path == hooks_path:
                assert json.loads(path.read_text()) == OTHER_HOOKS
            else:
                assert path.read_bytes() == content, path  # byte for byte
        assert after_install != before
        nothing = memq("uninstall", "--assistant", "codex", *flags, home=home, cwd=project)
        assert nothing.returncode == 0
        assert "nothing changed" in nothing.stdout

    def test_a_foreign_memq_server_is_refused_untouched(self, tmp_path: Path, scope: str) -> None:
        hooks_path, mcp_path, _, flags = self.paths(tmp_path, scope)
        home, project = tmp_path / "home", tmp_path / "project"
        mcp_path.parent.mkdir(parents=True, exist_ok=True)
        mcp_path.write_text('[mcp_servers.memq]\ncommand = "someone-elses-memq"\n')
        refused = memq("install", "--assistant", "codex", *flags, home=home, cwd=project)
        assert refused.returncode != 0
        assert "another server" in refused.stderr
        assert not hooks_path.exists()
        assert mcp_path.read_text() == '[mcp_servers.memq]\ncommand = "someone-elses-memq"\n'
        no_mcp = memq("install", "--assistant", "codex", "--no-mcp", *flags, home=home, cwd=project)
        assert no_mcp.returncode == 0, no_mcp.stderr
        assert hooks_path.exists()
        assert "someone-elses-memq" in mcp_path.read_text()


def test_codex_home_is_respected(tmp_path: Path) -> None:
    home, elsewhere = tmp_path / "home", tmp_path / "codex-home"
    home.mkdir()
    done = run_module(
        "memq",
        "install",
        "--assistant",
        "codex",
        env={"HOME": str(home), "CODEX_HOME": str(elsewhere), "MEMQ_HOME": ""},
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert (elsewhere / "hooks.json").exists()
    state = tomllib.loads((elsewhere / "config.toml").read_text())["hooks"]["state"]
    assert all(key.startswith(f"{elsewhere.resolve()}/hooks.json:") for key in state)
    assert not (home / ".codex").exists()


def test_trust_follows_memqs_hooks_when_they_move(tmp_path: Path) -> None:
    """Codex keys trust by place: when memq's handler moves (the person removed a group
    before it), installing again trusts the new place and drops memq's old entry."""
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".codex").mkdir(parents=True)
    project.mkdir()
    hooks_path = home / ".codex" / "hooks.json"
    theirs = {"hooks": [{"type": "command", "command": "/usr/bin/notify"}]}
    hooks_path.write_text(json.dumps({"hooks": {"Stop": [theirs]}}))
    assert memq("install", "--assistant", "codex", home=home, cwd=project).returncode == 0
    config = home / ".codex" / "config.toml"
    real = hooks_path.resolve()
    with config.open("a") as file:
        file.write(f'\n[hooks.state."{real}:stop:0:0"]\ntrusted_hash = "sha256:notify"\n')
    state = tomllib.loads(config.read_text())["hooks"]["state"]
    assert f"{real}:stop:1:0" in state
    hooks = json.loads(hooks_path.read_text())
    hooks["hooks"]["Stop"] = hooks["hooks"]["Stop"][1:]  # theirs removed by hand
    hooks_path.write_text(json.dumps(hooks))
    assert memq("install", "--assistant", "codex", home=home, cwd=project).returncode == 0
    state = tomllib.loads(config.read_text())["hooks"]["state"]
    (stop,) = [h for h in memq_handlers(json.loads(hooks_path.read_text())) if h.event == "Stop"]
    assert state[f"{real}:stop:0:0"] == {"trusted_hash": stop.trust_hash}
    assert f"{real}:stop:1:0" not in state
    gone = memq("uninstall", "--assistant", "codex", home=home, cwd=project)
    assert gone.returncode == 0, gone.stderr
    assert "hooks" not in tomllib.loads(config.read_text())
