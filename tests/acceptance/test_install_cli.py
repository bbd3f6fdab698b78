"""``memq install`` and ``memq uninstall`` through the real command, as a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from memq.events import SUBSCRIBED_EVENTS as EVENTS
from memq.hooks.install import is_memq_command
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


def memq(*args: str, home: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``python -m memq ARGS`` with its own HOME, so the real user settings are never read."""
    return run_module("memq", *args, env={"HOME": str(home)}, cwd=cwd)


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
        assert list(fragment) == ["hooks"]
        assert tuple(fragment["hooks"]) == EVENTS
        assert list(tmp_path.iterdir()) == []

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
