"""``memq install`` and ``memq uninstall`` through the real command, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from memq.events import SUBSCRIBED_EVENTS as EVENTS
from memq.hooks.install import is_memq_command
from memq.hooks.mcp_config import is_memq_server
from tests.helpers.processes import run_module

ORIGINAL: dict[str, Any] = {
    "model": "opus",
    "hooks": {
        "PostToolUse": [
            {"matcher": "Bash", "hooks": [{"type": "command", "command": "/usr/bin/audit"}]}
        ]
    },
    "env": {"LANG": "C"},
}


def memq(*args: str, home: Path, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memq ARGS`` with its own HOME (and no CLAUDE_CONFIG_DIR), so the real
    user's files are never read."""
    return run_module(
        "memq", *args, env={"HOME": str(home), "CLAUDE_CONFIG_DIR": "", **env}, cwd=cwd
    )


def memq_entries(settings: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """Every (event, entry) of memq's hooks in a settings object."""
    return [
        (event, entry)
        for event, groups in settings.get("hooks", {}).items()
        for group in groups
        for entry in group["hooks"]
        if is_memq_command(entry["command"])
    ]


class TestInstallUninstall:
    def test_install_then_uninstall_round_trip(self, tmp_path: Path) -> None:
        """install merges memq's hooks beside the others and backs up; uninstall restores."""
        path = tmp_path / "settings.json"
        original = json.dumps(ORIGINAL, indent=2) + "\n"
        path.write_text(original)

        installed = memq("install", "--settings", str(path), home=tmp_path, cwd=tmp_path)
        assert installed.returncode == 0, installed.stderr
        assert "installed" in installed.stdout
        assert "backup" in installed.stdout
        settings = json.loads(path.read_text())
        assert settings["model"] == "opus"
        assert settings["env"] == {"LANG": "C"}
        assert settings["hooks"]["PostToolUse"][0] == ORIGINAL["hooks"]["PostToolUse"][0]
        entries = memq_entries(settings)
        assert [event for event, _ in entries] == [
            "PostToolUse",
            *(event for event in EVENTS if event != "PostToolUse"),
        ]
        command = entries[0][1]["command"]
        assert os.path.isabs(command.split()[0].strip("'"))
        backups = sorted(tmp_path.glob("settings.json.memq-backup-*"))
        assert [backup.read_text() for backup in backups] == [original]

        again = memq("install", "--settings", str(path), home=tmp_path, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert "already installed" in again.stdout
        assert len(memq_entries(json.loads(path.read_text()))) == len(EVENTS)

        removed = memq("uninstall", "--settings", str(path), home=tmp_path, cwd=tmp_path)
        assert removed.returncode == 0, removed.stderr
        assert f"removed {len(EVENTS)}" in removed.stdout
        assert path.read_text() == original

        nothing = memq("uninstall", "--settings", str(path), home=tmp_path, cwd=tmp_path)
        assert nothing.returncode == 0, nothing.stderr
        assert "no memq hooks" in nothing.stdout
        assert path.read_text() == original

    def test_a_recorded_database_url_is_printed_without_its_password(self, tmp_path: Path) -> None:
        """The settings file keeps the URL whole (private to the user); the terminal never
        shows its password."""
        memq_home = tmp_path / "memq-home"
        url = "postgresql://memq:s3cret-pw@db.example:5432/memq"
        installed = memq(
            "install",
            "--settings",
            str(tmp_path / "settings.json"),
            "--no-mcp",
            home=tmp_path,
            cwd=tmp_path,
            MEMQ_HOME=str(memq_home),
            MEMQ_DATABASE_URL=url,
        )
        assert installed.returncode == 0, installed.stderr
        assert "database_url" in installed.stdout
        assert "s3cret-pw" not in installed.stdout + installed.stderr
        assert url in (memq_home / "settings.toml").read_text()

    def test_invalid_json_is_refused_untouched(self, tmp_path: Path) -> None:
        """Invalid JSON: a non-zero exit, the reason on stderr, the file and folder unchanged."""
        path = tmp_path / "settings.json"
        path.write_text('{"model": "opus",')
        for verb in ("install", "uninstall"):
            result = memq(verb, "--settings", str(path), home=tmp_path, cwd=tmp_path)
            assert result.returncode != 0
            assert "not valid JSON" in result.stderr
            assert path.read_text() == '{"model": "opus",'
            assert [p.name for p in tmp_path.iterdir()] == ["settings.json"]

    def test_user_and_project_scopes(self, tmp_path: Path) -> None:
        """Without options the file is $HOME/.claude/settings.json; --project uses ./.claude/."""
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        user = memq("install", home=home, cwd=project)
        assert user.returncode == 0, user.stderr
        assert len(memq_entries(json.loads((home / ".claude" / "settings.json").read_text()))) == 6
        assert not (project / ".claude").exists()

        local = memq("install", "--project", home=home, cwd=project)
        assert local.returncode == 0, local.stderr
        assert (project / ".claude" / "settings.json").is_file()

        gone = memq("uninstall", "--project", home=home, cwd=project)
        assert gone.returncode == 0, gone.stderr
        assert json.loads((project / ".claude" / "settings.json").read_text()) == {}
        assert (home / ".claude" / "settings.json").is_file()

    def test_print_changes_nothing(self, tmp_path: Path) -> None:
        """--print writes the hooks fragment to stdout and creates no file."""
        result = memq("install", "--print", home=tmp_path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        fragment = json.loads(result.stdout)
        assert list(fragment) == ["hooks", "mcpServers"]
        assert tuple(fragment["hooks"]) == EVENTS
        assert is_memq_server(fragment["mcpServers"]["memq"])
        assert list(tmp_path.iterdir()) == []
        hooks_only = memq("install", "--print", "--no-mcp", home=tmp_path, cwd=tmp_path)
        assert list(json.loads(hooks_only.stdout)) == ["hooks"]

    def test_plugin_writes_a_folder_and_no_settings(self, tmp_path: Path) -> None:
        """--plugin DIR writes the plugin manifest and hooks.json and touches no settings."""
        plugin = tmp_path / "memq-plugin"
        result = memq("install", "--plugin", str(plugin), home=tmp_path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        manifest = json.loads((plugin / ".claude-plugin" / "plugin.json").read_text())
        assert manifest["name"] == "memq"
        hooks = json.loads((plugin / "hooks" / "hooks.json").read_text())
        assert tuple(hooks["hooks"]) == EVENTS
        assert not (tmp_path / ".claude").exists()

    def test_conflicting_options_are_a_usage_error(self, tmp_path: Path) -> None:
        """--project with --settings, or --print with --plugin, is rejected by the parser."""
        both = memq("install", "--project", "--settings", "x", home=tmp_path, cwd=tmp_path)
        assert both.returncode == 2
        output = memq("install", "--print", "--plugin", "x", home=tmp_path, cwd=tmp_path)
        assert output.returncode == 2
        assert list(tmp_path.iterdir()) == []


# -- the MCP server ---------------------------------------------------------------------------

CLAUDE_JSON: dict[str, Any] = {
    "numStartups": 7,
    "installMethod": "npm",
    "oauthAccount": {"emailAddress": "me@example.com", "organizationUuid": "1234"},
    "projects": {
        "/home/me/p": {"allowedTools": [], "mcpServers": {}, "hasTrustDialogAccepted": True}
    },
    "mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": [], "env": {}}},
    "cachedChangelog": "é" * 3,
}


def servers(path: Path) -> dict[str, Any]:
    found: dict[str, Any] = json.loads(path.read_text()).get("mcpServers", {})
    return found


class TestMcpServer:
    def test_user_scope_keeps_claude_json_and_round_trips(self, tmp_path: Path) -> None:
        """install adds memq's server to ~/.claude.json beside the hooks, keeping every other
        key, their order and the file's mode; uninstall gives the same bytes back."""
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        path = home / ".claude.json"
        original = json.dumps(CLAUDE_JSON, indent=2, ensure_ascii=False)
        path.write_text(original)
        path.chmod(0o600)

        installed = memq("install", home=home, cwd=project)
        assert installed.returncode == 0, installed.stderr
        assert f"memq MCP server registered in {path}" in installed.stdout
        assert "mcp__memq__search" in installed.stdout
        data = json.loads(path.read_text())
        assert list(data) == list(CLAUDE_JSON)
        assert {k: v for k, v in data.items() if k != "mcpServers"} == {
            k: v for k, v in CLAUDE_JSON.items() if k != "mcpServers"
        }
        assert list(data["mcpServers"]) == ["github", "memq"]
        entry = data["mcpServers"]["memq"]
        assert is_memq_server(entry)
        assert os.path.isabs(entry["command"])
        assert entry["env"] == {}  # the default home needs no MEMQ_HOME
        assert (path.stat().st_mode & 0o777) == 0o600
        assert (home / ".claude" / "settings.json").is_file()  # the hooks, as before

        again = memq("install", home=home, cwd=project)
        assert "memq MCP server already registered" in again.stdout

        removed = memq("uninstall", home=home, cwd=project)
        assert removed.returncode == 0, removed.stderr
        assert f"removed memq's MCP server from {path}" in removed.stdout
        assert path.read_text() == original
        assert (path.stat().st_mode & 0o777) == 0o600

    def test_invalid_claude_json_is_refused_before_anything_is_written(
        self, tmp_path: Path
    ) -> None:
        """~/.claude.json that is not JSON: install and uninstall say so and change nothing,
        the hooks' settings included."""
        path = tmp_path / ".claude.json"
        path.write_text('{"numStartups": 7,')
        for verb in ("install", "uninstall"):
            result = memq(verb, home=tmp_path, cwd=tmp_path)
            assert result.returncode == 1
            assert f"{path}: not valid JSON" in result.stderr
            assert path.read_text() == '{"numStartups": 7,'
            assert [p.name for p in tmp_path.iterdir()] == [".claude.json"]

    def test_another_server_named_memq_is_never_replaced_or_removed(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        content = json.dumps({"mcpServers": {"memq": {"command": "npx", "args": ["memq-x"]}}})
        path.write_text(content)
        refused = memq("install", home=tmp_path, cwd=tmp_path)
        assert refused.returncode == 1
        assert "another server (npx memq-x)" in refused.stderr
        assert [p.name for p in tmp_path.iterdir()] == [".claude.json"]
        kept = memq("uninstall", home=tmp_path, cwd=tmp_path)
        assert kept.returncode == 0, kept.stderr
        assert "runs something else (npx memq-x); left as it is" in kept.stdout
        assert path.read_text() == content

    def test_project_scope_writes_mcp_json(self, tmp_path: Path) -> None:
        """--project: ./.mcp.json beside ./.claude/settings.json; the user's files untouched."""
        home, project = tmp_path / "home", tmp_path / "project"
        home.mkdir()
        project.mkdir()
        installed = memq("install", "--project", home=home, cwd=project)
        assert installed.returncode == 0, installed.stderr
        assert is_memq_server(servers(project / ".mcp.json")["memq"])
        assert list(home.iterdir()) == []
        removed = memq("uninstall", "--project", home=home, cwd=project)
        assert removed.returncode == 0, removed.stderr
        assert json.loads((project / ".mcp.json").read_text()) == {}

    def test_another_home_goes_into_the_entrys_env(self, tmp_path: Path) -> None:
        """Installed for a MEMQ_HOME other than the default, the server is told it, as the
        hook command is."""
        data = tmp_path / "data"
        installed = memq("install", home=tmp_path, cwd=tmp_path, MEMQ_HOME=str(data))
        assert installed.returncode == 0, installed.stderr
        entry = servers(tmp_path / ".claude.json")["memq"]
        assert entry["env"] == {"MEMQ_HOME": str(data)}
        assert f"environment: MEMQ_HOME={data}" in installed.stdout

    def test_mcp_config_and_no_mcp(self, tmp_path: Path) -> None:
        """--mcp-config PATH registers there instead; --no-mcp leaves the server out."""
        other = tmp_path / "elsewhere.json"
        chosen = memq("install", "--mcp-config", str(other), home=tmp_path, cwd=tmp_path)
        assert chosen.returncode == 0, chosen.stderr
        assert is_memq_server(servers(other)["memq"])
        assert not (tmp_path / ".claude.json").exists()
        hooks_only = memq("install", "--no-mcp", home=tmp_path, cwd=tmp_path)
        assert hooks_only.returncode == 0, hooks_only.stderr
        assert "MCP" not in hooks_only.stdout
        assert not (tmp_path / ".claude.json").exists()
        both = memq("install", "--no-mcp", "--mcp-config", "x", home=tmp_path, cwd=tmp_path)
        assert both.returncode == 2

    def test_claude_config_dir_moves_both_files(self, tmp_path: Path) -> None:
        """With CLAUDE_CONFIG_DIR, Claude Code's settings.json and .claude.json are in it."""
        config = tmp_path / "cfg"
        result = memq("install", home=tmp_path, cwd=tmp_path, CLAUDE_CONFIG_DIR=str(config))
        assert result.returncode == 0, result.stderr
        assert sorted(p.name for p in config.iterdir()) == [".claude.json", "settings.json"]

    def test_plugin_carries_the_server(self, tmp_path: Path) -> None:
        plugin = tmp_path / "memq-plugin"
        result = memq("install", "--plugin", str(plugin), home=tmp_path, cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert is_memq_server(servers(plugin / ".mcp.json")["memq"])
        assert "mcp__plugin_memq_memq__" in result.stdout
        assert not (tmp_path / ".claude.json").exists()

    def test_the_registered_command_starts_memq_mcp_in_a_bare_environment(
        self, tmp_path: Path
    ) -> None:
        """The entry as written, started the way Claude Code starts it (its env only, no
        MEMQ_*, no PYTHONPATH), answers MCP's initialize as the server named memq."""
        data = tmp_path / "data"
        installed = memq("install", home=tmp_path, cwd=tmp_path, MEMQ_HOME=str(data))
        assert installed.returncode == 0, installed.stderr
        entry = servers(tmp_path / ".claude.json")["memq"]
        env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), **entry["env"]}
        initialize = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "initialize",
            "params": {
                "protocolVersion": "2025-06-18",
                "capabilities": {},
                "clientInfo": {"name": "memq-test", "version": "0"},
            },
        }
        answer = subprocess.run(
            [entry["command"], *entry["args"]],
            input=json.dumps(initialize) + "\n",
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        first = answer.stdout.splitlines()[0] if answer.stdout else ""
        assert first, f"no answer (exit {answer.returncode}): {answer.stderr}"
        assert json.loads(first)["result"]["serverInfo"]["name"] == "memq"
