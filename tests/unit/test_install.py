"""Installing memq's hook into Claude Code settings, taking it out, and the plugin folder."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from memq import __version__
from memq.events import SUBSCRIBED_EVENTS as EVENTS
from memq.exceptions import InstallError
from memq.hooks.install import (
    TIMEOUT_SECONDS,
    hooks_fragment,
    install,
    is_memq_command,
    memq_hook_command,
    merge_hooks,
    remove_memq_hooks,
    settings_path,
    uninstall,
    write_plugin,
)

COMMAND = "/opt/venv/bin/memq hook"
MOVED = "/home/me/new-venv/bin/memq hook"
ELSEWHERE = "MEMQ_HOME=/srv/memq /opt/venv/bin/memq hook"  # installed for another home
NOW = 1_700_000_000.0


def existing_settings() -> dict[str, Any]:
    """Settings a user already has: other keys, and other tools' hooks on memq's events."""
    return {
        "model": "opus",
        "permissions": {"allow": ["Bash(git status)"], "deny": []},
        "hooks": {
            "PreToolUse": [
                {"matcher": "Write|Edit", "hooks": [{"type": "command", "command": "guard.sh"}]}
            ],
            "PostToolUse": [
                {
                    "matcher": "Bash",
                    "hooks": [{"type": "command", "command": "/usr/bin/audit --log", "timeout": 5}],
                }
            ],
            "Stop": [{"hooks": [{"type": "command", "command": "notify-send done"}]}],
        },
        "env": {"FOO": "bär"},
    }


def memq_commands(settings: dict[str, Any]) -> list[tuple[str, str]]:
    """Every (event, command) pair of memq's entries, in file order."""
    return [
        (event, entry["command"])
        for event, groups in settings.get("hooks", {}).items()
        for group in groups
        for entry in group["hooks"]
        if is_memq_command(entry["command"])
    ]


def files_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


class TestIsMemqCommand:
    @pytest.mark.parametrize(
        "command",
        [
            "/opt/venv/bin/memq hook",
            "memq hook",
            "'/home/a user/.venv/bin/memq' hook",
            "/usr/bin/python3 -m memq hook",
            "'/home/a user/py/bin/python' -m memq hook",
            '"$HOME/.local/bin/memq" hook',
            "MEMQ_HOME=/srv/memq /opt/venv/bin/memq hook",
            "MEMQ_HOME='/home/a user/memq' '/home/a user/.venv/bin/memq' hook",
            "MEMQ_HOME=/srv/memq /usr/bin/python3 -m memq hook",
        ],
    )
    def test_recognises_memq_hook(self, command: str) -> None:
        """A memq console script or ``python -m memq``, followed by ``hook`` alone, perhaps
        after the ``MEMQ_HOME=`` an install for another home puts first, is memq's."""
        assert is_memq_command(command)

    @pytest.mark.parametrize(
        "command",
        [
            "",
            "memq",
            "memq status",
            "memq hook --debug",
            "memq hook SessionStart",
            "/opt/venv/bin/memq-other hook",
            "/opt/memq/bin/other hook",
            "/usr/bin/notmemq hook",
            "echo memq hook",
            "bash -c 'memq hook'",
            "python -m memqx hook",
            "python -m memq.cli hook",
            "python -m memq hook extra",
            "memq hook; rm -rf /",
            "other-tool hook",
            "'unterminated memq hook",
            "MEMQ_HOME= /opt/venv/bin/memq hook",
            "FOO=1 /opt/venv/bin/memq hook",
            "MEMQ_HOME=/srv/memq MEMQ_PORT=1 /opt/venv/bin/memq hook",
            "MEMQ_HOME=/srv/memq /opt/venv/bin/memq hook extra",
            "MEMQ_HOME=/srv/memq",
        ],
    )
    def test_rejects_everything_else(self, command: str) -> None:
        """Other tools' commands, extra words and unparsable strings are not memq's."""
        assert not is_memq_command(command)


class TestMemqHookCommand:
    def test_uses_the_console_script_beside_the_interpreter(self, tmp_path: Path) -> None:
        """With an executable ``memq`` next to Python (a venv's bin), the hook runs it."""
        bin_dir = tmp_path / "venv" / "bin"
        bin_dir.mkdir(parents=True)
        script = bin_dir / "memq"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        assert memq_hook_command(str(bin_dir / "python")) == f"{script} hook"

    def test_falls_back_to_python_dash_m(self, tmp_path: Path) -> None:
        """Without a console script, the hook runs ``<python> -m memq hook``."""
        python = tmp_path / "python3"
        assert memq_hook_command(str(python)) == f"{python} -m memq hook"

    def test_quotes_paths_with_spaces(self, tmp_path: Path) -> None:
        """A path with a space is shell-quoted, and the result is still recognised as memq's."""
        bin_dir = tmp_path / "my venv" / "bin"
        bin_dir.mkdir(parents=True)
        (bin_dir / "memq").write_text("#!/bin/sh\n")
        (bin_dir / "memq").chmod(0o755)
        command = memq_hook_command(str(bin_dir / "python"))
        assert command == f"'{bin_dir / 'memq'}' hook"
        assert is_memq_command(command)

    def test_default_is_absolute_and_recognised(self) -> None:
        """The command for the running interpreter is an absolute path that memq recognises."""
        command = memq_hook_command()
        assert is_memq_command(command)
        assert os.path.isabs(command.split()[0].strip("'"))

    def test_relative_interpreter_is_made_absolute(self, monkeypatch, tmp_path: Path) -> None:
        """A relative interpreter path becomes absolute, so the hook works from any directory."""
        monkeypatch.chdir(tmp_path)
        assert memq_hook_command("bin/python") == f"{tmp_path}/bin/python -m memq hook"

    def test_a_home_goes_first_as_memq_home(self, tmp_path: Path) -> None:
        """An install for another home than ~/.memq sets MEMQ_HOME in the command itself: the
        assistant runs hooks from its own environment, not from the installing shell's."""
        python = tmp_path / "python3"
        command = memq_hook_command(str(python), home="/srv/memq data")
        assert command == f"MEMQ_HOME='/srv/memq data' {python} -m memq hook"
        assert is_memq_command(command)

    def test_a_relative_home_is_made_absolute(self, monkeypatch, tmp_path: Path) -> None:
        """The hook runs in the project's directory: a relative home would move with it."""
        monkeypatch.chdir(tmp_path)
        command = memq_hook_command("/usr/bin/python3", home="data")
        assert command == f"MEMQ_HOME={tmp_path}/data /usr/bin/python3 -m memq hook"

    def test_a_blank_home_is_refused(self) -> None:
        """``MEMQ_HOME=`` would be no home at all."""
        with pytest.raises(InstallError, match="empty"):
            memq_hook_command("/usr/bin/python3", home=" ")


class TestHooksFragment:
    def test_shape(self) -> None:
        """One command hook per memq event; tool events match every tool, the others omit it."""
        fragment = hooks_fragment(COMMAND)
        assert list(fragment) == ["hooks"]
        assert tuple(fragment["hooks"]) == EVENTS
        assert set(EVENTS) == {
            "SessionStart",
            "UserPromptSubmit",
            "PostToolUse",
            "PostToolUseFailure",
            "Stop",
            "SessionEnd",
        }
        entry = {"type": "command", "command": COMMAND, "timeout": TIMEOUT_SECONDS}
        for event, groups in fragment["hooks"].items():
            if event in ("PostToolUse", "PostToolUseFailure"):
                assert groups == [{"matcher": "*", "hooks": [entry]}]
            else:
                assert groups == [{"hooks": [entry]}]
        assert json.loads(json.dumps(fragment)) == fragment

    def test_refuses_a_command_it_could_not_recognise_later(self) -> None:
        """A command that is not ``memq hook`` would be neither replaced nor uninstalled."""
        with pytest.raises(InstallError, match="does not run"):
            hooks_fragment("/usr/bin/something hook")


class TestMergeHooks:
    def test_keeps_everything_else_in_order(self) -> None:
        """Other keys, other events and other tools' entries stay, in order; memq's come last."""
        before = existing_settings()
        merged = merge_hooks(before, hooks_fragment(COMMAND))
        assert list(merged) == list(before)
        assert {k: v for k, v in merged.items() if k != "hooks"} == {
            k: v for k, v in before.items() if k != "hooks"
        }
        assert list(merged["hooks"]) == [
            "PreToolUse",
            "PostToolUse",
            "Stop",
            "SessionStart",
            "UserPromptSubmit",
            "PostToolUseFailure",
            "SessionEnd",
        ]
        assert merged["hooks"]["PreToolUse"] == before["hooks"]["PreToolUse"]
        assert merged["hooks"]["PostToolUse"][0] == before["hooks"]["PostToolUse"][0]
        assert merged["hooks"]["PostToolUse"][1]["matcher"] == "*"
        assert merged["hooks"]["Stop"][0] == before["hooks"]["Stop"][0]
        assert memq_commands(merged) == [
            ("PostToolUse", COMMAND),
            ("Stop", COMMAND),
            ("SessionStart", COMMAND),
            ("UserPromptSubmit", COMMAND),
            ("PostToolUseFailure", COMMAND),
            ("SessionEnd", COMMAND),
        ]

    def test_does_not_modify_its_argument(self) -> None:
        """The settings passed in are left as they were."""
        before = existing_settings()
        merge_hooks(before, hooks_fragment(COMMAND))
        assert before == existing_settings()

    def test_into_empty_settings_gives_the_fragment(self) -> None:
        """Merged into nothing, the result is exactly the fragment."""
        assert merge_hooks({}, hooks_fragment(COMMAND)) == hooks_fragment(COMMAND)

    def test_is_idempotent(self) -> None:
        """Merging twice gives the same object, in the same order, as merging once."""
        once = merge_hooks(existing_settings(), hooks_fragment(COMMAND))
        twice = merge_hooks(once, hooks_fragment(COMMAND))
        assert json.dumps(twice) == json.dumps(once)

    def test_new_path_replaces_the_old_in_place(self) -> None:
        """When memq moved, its entries are replaced where they stood, never duplicated."""
        once = merge_hooks(existing_settings(), hooks_fragment(COMMAND))
        once["hooks"]["Stop"].append({"hooks": [{"type": "command", "command": "later.sh"}]})
        moved = merge_hooks(once, hooks_fragment(MOVED))
        assert [command for _, command in memq_commands(moved)] == [MOVED] * len(EVENTS)
        assert [group["hooks"][0]["command"] for group in moved["hooks"]["Stop"]] == [
            "notify-send done",
            MOVED,
            "later.sh",
        ]

    def test_another_home_replaces_the_old_entries_in_place(self) -> None:
        """Installing for another home replaces memq's entries (one memq per event), and a
        later install for the default home replaces those again."""
        once = merge_hooks(existing_settings(), hooks_fragment(COMMAND))
        elsewhere = merge_hooks(once, hooks_fragment(ELSEWHERE))
        assert [command for _, command in memq_commands(elsewhere)] == [ELSEWHERE] * len(EVENTS)
        assert [event for event, _ in memq_commands(elsewhere)] == [
            event for event, _ in memq_commands(once)
        ]
        back = merge_hooks(elsewhere, hooks_fragment(COMMAND))
        assert back == once
        assert remove_memq_hooks(elsewhere) == remove_memq_hooks(once)

    def test_memq_sharing_a_group_with_another_tool(self) -> None:
        """A group holding memq's entry and another tool's keeps the other's; memq's is new."""
        settings = {
            "hooks": {
                "PostToolUse": [
                    {
                        "matcher": "*",
                        "hooks": [
                            {"type": "command", "command": "other.sh"},
                            {"type": "command", "command": COMMAND},
                        ],
                    }
                ]
            }
        }
        merged = merge_hooks(settings, hooks_fragment(MOVED))
        assert merged["hooks"]["PostToolUse"] == [
            hooks_fragment(MOVED)["hooks"]["PostToolUse"][0],
            {"matcher": "*", "hooks": [{"type": "command", "command": "other.sh"}]},
        ]

    def test_leaves_entries_it_does_not_understand(self) -> None:
        """Odd groups and entries that are not memq's pass through untouched."""
        odd: list[Any] = ["text", {"matcher": "x"}, {"hooks": "nope"}, {"hooks": [1, None]}]
        merged = merge_hooks({"hooks": {"Stop": list(odd)}}, hooks_fragment(COMMAND))
        assert merged["hooks"]["Stop"][:4] == odd

    @pytest.mark.parametrize(
        ("settings", "problem"),
        [
            ({"hooks": []}, '"hooks" is an array'),
            ({"hooks": None}, '"hooks" is null'),
            ({"hooks": {"Stop": {"hooks": []}}}, '"hooks"."Stop" is an object'),
            ({"hooks": {"PreToolUse": "guard.sh"}}, '"hooks"."PreToolUse" is a string'),
        ],
    )
    def test_refuses_the_wrong_shape(self, settings: dict[str, Any], problem: str) -> None:
        """A "hooks" that is not an object, or an event that is not a list, is refused."""
        with pytest.raises(InstallError, match=problem):
            merge_hooks(settings, hooks_fragment(COMMAND))


class TestRemoveMemqHooks:
    def test_round_trip_gives_back_the_original(self) -> None:
        """Install then remove gives back exactly the original object, key order included."""
        before = existing_settings()
        cleaned, removed = remove_memq_hooks(merge_hooks(before, hooks_fragment(COMMAND)))
        assert removed == len(EVENTS)
        assert json.dumps(cleaned) == json.dumps(before)

    def test_round_trip_from_nothing_removes_hooks_entirely(self) -> None:
        """Settings that had no hooks get no "hooks" key back."""
        cleaned, removed = remove_memq_hooks(merge_hooks({"model": "x"}, hooks_fragment(COMMAND)))
        assert (cleaned, removed) == ({"model": "x"}, len(EVENTS))

    def test_without_memq_entries_changes_nothing(self) -> None:
        """No memq entries: the same object back and a count of zero, empty lists kept."""
        settings = {**existing_settings(), "extra": {"hooks": {}}}
        settings["hooks"]["Notification"] = []
        cleaned, removed = remove_memq_hooks(settings)
        assert removed == 0
        assert json.dumps(cleaned) == json.dumps(settings)

    def test_removes_every_copy_and_keeps_other_entries(self) -> None:
        """Duplicated memq entries all go; another tool's entry in the same group stays."""
        settings = {
            "hooks": {
                "Stop": [
                    {"hooks": [{"type": "command", "command": COMMAND}]},
                    {
                        "hooks": [
                            {"type": "command", "command": "/usr/bin/python3 -m memq hook"},
                            {"type": "command", "command": "keep.sh"},
                        ]
                    },
                ]
            }
        }
        cleaned, removed = remove_memq_hooks(settings)
        assert removed == 2
        assert cleaned == {
            "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "keep.sh"}]}]}
        }

    def test_refuses_the_wrong_shape(self) -> None:
        """Removal checks the shape just as merging does."""
        with pytest.raises(InstallError):
            remove_memq_hooks({"hooks": ["x"]})


class TestSettingsPath:
    def test_user_scope_follows_home(self, monkeypatch, tmp_path: Path) -> None:
        """By default the file is ``$HOME/.claude/settings.json``."""
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
        assert settings_path() == tmp_path / ".claude" / "settings.json"

    def test_claude_config_dir_moves_the_user_scope(self, monkeypatch, tmp_path: Path) -> None:
        """Claude Code reads the user's settings from ``CLAUDE_CONFIG_DIR`` when it is set."""
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
        assert settings_path() == tmp_path / "cfg" / "settings.json"
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", "")
        monkeypatch.setenv("HOME", str(tmp_path))
        assert settings_path() == tmp_path / ".claude" / "settings.json"

    def test_project_scope_is_the_current_directory(self, monkeypatch, tmp_path: Path) -> None:
        """``--project`` means ``./.claude/settings.json``."""
        monkeypatch.chdir(tmp_path)
        assert settings_path(project=True) == tmp_path / ".claude" / "settings.json"

    def test_explicit_path_wins(self, tmp_path: Path) -> None:
        """``--settings PATH`` is taken as given."""
        assert settings_path(settings=tmp_path / "x.json") == tmp_path / "x.json"


class TestInstall:
    def test_creates_the_file_and_its_directory(self, tmp_path: Path) -> None:
        """A missing file is created (with its directory), 2-space indented, ending in newline."""
        path = tmp_path / ".claude" / "settings.json"
        result = install(path, COMMAND)
        assert (result.changed, result.created, result.backup) == (True, True, None)
        assert result.path == path
        text = path.read_text()
        assert text == json.dumps(hooks_fragment(COMMAND), indent=2) + "\n"
        assert files_in(path.parent) == {"settings.json"}

    def test_merges_and_backs_up_the_previous_file(self, tmp_path: Path) -> None:
        """An existing file is merged, and the backup holds exactly its previous bytes."""
        path = tmp_path / "settings.json"
        original = json.dumps(existing_settings(), indent=4, ensure_ascii=False) + "\n"
        path.write_text(original)
        result = install(path, COMMAND, now=NOW)
        assert result.changed
        assert not result.created
        assert result.backup is not None
        assert result.backup.name.startswith("settings.json.memq-backup-")
        assert result.backup.read_text() == original
        written = json.loads(path.read_text())
        assert written == merge_hooks(existing_settings(), hooks_fragment(COMMAND))
        assert path.read_text().endswith("}\n")
        assert '\n  "model": "opus"' in path.read_text()
        assert "bär" in path.read_text()
        assert files_in(tmp_path) == {"settings.json", result.backup.name}

    def test_keeps_a_missing_trailing_newline_missing(self, tmp_path: Path) -> None:
        """A file without a final newline is rewritten without one."""
        path = tmp_path / "settings.json"
        path.write_text('{"model": "opus"}')
        install(path, COMMAND)
        assert path.read_text().endswith("}")

    def test_second_install_changes_nothing(self, tmp_path: Path) -> None:
        """Installing again with the same command writes nothing and makes no backup."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(existing_settings()))
        install(path, COMMAND, now=NOW)
        after_first = path.read_bytes()
        names = files_in(tmp_path)
        again = install(path, COMMAND, now=NOW)
        assert (again.changed, again.backup) == (False, None)
        assert path.read_bytes() == after_first
        assert files_in(tmp_path) == names

    def test_new_path_rewrites_with_a_fresh_backup(self, tmp_path: Path) -> None:
        """A changed command replaces memq's entries; backups never overwrite each other."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(existing_settings()))
        first = install(path, COMMAND, now=NOW)
        installed = path.read_bytes()
        second = install(path, MOVED, now=NOW)
        assert first.backup is not None
        assert second.backup is not None
        assert second.backup != first.backup
        assert second.backup.read_bytes() == installed
        assert {c for _, c in memq_commands(json.loads(path.read_text()))} == {MOVED}

    def test_empty_file_counts_as_empty_settings(self, tmp_path: Path) -> None:
        """A blank file is treated as ``{}`` (and backed up before it is filled)."""
        path = tmp_path / "settings.json"
        path.write_text("  \n")
        result = install(path, COMMAND)
        assert json.loads(path.read_text()) == hooks_fragment(COMMAND)
        assert result.backup is not None

    def test_keeps_permissions(self, tmp_path: Path) -> None:
        """The rewritten file and its backup keep the original's mode (settings hold secrets)."""
        path = tmp_path / "settings.json"
        path.write_text("{}")
        path.chmod(0o600)
        result = install(path, COMMAND)
        assert result.backup is not None
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(result.backup.stat().st_mode) == 0o600

    def test_writes_through_a_symlink(self, tmp_path: Path) -> None:
        """A symlinked settings file (dotfiles) stays a symlink; its target gets the change."""
        real = tmp_path / "dotfiles" / "settings.json"
        real.parent.mkdir()
        real.write_text("{}\n")
        link = tmp_path / "settings.json"
        link.symlink_to(real)
        result = install(link, COMMAND)
        assert link.is_symlink()
        assert result.path == real
        assert json.loads(real.read_text()) == hooks_fragment(COMMAND)

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            ('{"model": "opus",}', "not valid JSON"),
            ("{not json", "not valid JSON"),
            ("[1, 2]", "holds an array, not a JSON object"),
            ('"text"', "holds a string"),
            ('{"hooks": []}', '"hooks" is an array'),
            ('{"hooks": {"Stop": "x"}}', '"hooks"."Stop" is a string'),
        ],
    )
    def test_refuses_and_leaves_the_file_alone(
        self, tmp_path: Path, content: str, problem: str
    ) -> None:
        """A file Claude Code would not accept is refused: bytes unchanged, no backup."""
        path = tmp_path / "settings.json"
        path.write_text(content)
        with pytest.raises(InstallError, match=problem) as caught:
            install(path, COMMAND)
        assert str(path) in str(caught.value)
        assert "left unchanged" in str(caught.value)
        assert path.read_text() == content
        assert files_in(tmp_path) == {"settings.json"}

    def test_refuses_a_file_that_is_not_utf8(self, tmp_path: Path) -> None:
        """Bytes that are not UTF-8 are refused unchanged."""
        path = tmp_path / "settings.json"
        path.write_bytes(b'{"x": "\xff"}')
        with pytest.raises(InstallError, match="not UTF-8"):
            install(path, COMMAND)
        assert path.read_bytes() == b'{"x": "\xff"}'
        assert files_in(tmp_path) == {"settings.json"}

    def test_unreachable_place_is_an_install_error(self, tmp_path: Path) -> None:
        """A settings path under a regular file fails with InstallError, not OSError."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(InstallError, match="cannot read"):
            install(blocker / "settings.json", COMMAND)


class TestUninstall:
    def test_round_trip_restores_the_original(self, tmp_path: Path) -> None:
        """Install then uninstall leaves the original object, same keys in the same order."""
        path = tmp_path / "settings.json"
        path.write_text(json.dumps(existing_settings(), indent=2, ensure_ascii=False) + "\n")
        original = path.read_text()
        install(path, COMMAND, now=NOW)
        installed = path.read_bytes()
        result = uninstall(path, now=NOW)
        assert (result.existed, result.removed) == (True, len(EVENTS))
        assert result.backup is not None
        assert result.backup.read_bytes() == installed
        assert path.read_text() == original

    def test_missing_file_is_left_missing(self, tmp_path: Path) -> None:
        """Without a settings file there is nothing to do and nothing is written."""
        result = uninstall(tmp_path / ".claude" / "settings.json")
        assert (result.existed, result.removed, result.backup) == (False, 0, None)
        assert files_in(tmp_path) == set()

    def test_no_memq_entries_writes_nothing(self, tmp_path: Path) -> None:
        """A file without memq's entries keeps its bytes and gets no backup."""
        path = tmp_path / "settings.json"
        content = json.dumps(existing_settings(), indent=4)
        path.write_text(content)
        result = uninstall(path)
        assert (result.existed, result.removed, result.backup) == (True, 0, None)
        assert path.read_text() == content
        assert files_in(tmp_path) == {"settings.json"}

    def test_refuses_invalid_json(self, tmp_path: Path) -> None:
        """Invalid JSON is refused with the file untouched and no backup."""
        path = tmp_path / "settings.json"
        path.write_text("{oops")
        with pytest.raises(InstallError, match="not valid JSON"):
            uninstall(path)
        assert path.read_text() == "{oops"
        assert files_in(tmp_path) == {"settings.json"}


class TestWritePlugin:
    def test_writes_manifest_and_hooks(self, tmp_path: Path, monkeypatch) -> None:
        """The folder holds a manifest named memq and hooks.json with memq's hooks, nothing else."""
        monkeypatch.setenv("HOME", str(tmp_path / "home"))
        plugin = tmp_path / "plugin"
        written = write_plugin(plugin, COMMAND)
        assert written == [
            plugin / ".claude-plugin" / "plugin.json",
            plugin / "hooks" / "hooks.json",
        ]
        manifest = json.loads(written[0].read_text())
        assert manifest["name"] == "memq"
        assert manifest["version"] == __version__
        assert manifest["description"]
        hooks = json.loads(written[1].read_text())
        assert hooks["hooks"] == hooks_fragment(COMMAND)["hooks"]
        assert set(hooks) <= {"description", "hooks"}
        assert "CLAUDE_PLUGIN_ROOT" not in written[1].read_text()
        assert sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file()) == [
            "plugin/.claude-plugin/plugin.json",
            "plugin/hooks/hooks.json",
        ]

    def test_with_a_server_writes_the_plugins_mcp_json(self, tmp_path: Path) -> None:
        """The MCP server goes into .mcp.json at the plugin's root, named memq."""
        server = {"type": "stdio", "command": "/opt/venv/bin/memq", "args": ["mcp"], "env": {}}
        written = write_plugin(tmp_path, COMMAND, server=server)
        assert written[-1] == tmp_path / ".mcp.json"
        assert json.loads(written[-1].read_text()) == {"mcpServers": {"memq": server}}

    def test_rewriting_replaces_the_command(self, tmp_path: Path) -> None:
        """Writing the plugin again (memq moved) replaces its hooks."""
        write_plugin(tmp_path, COMMAND)
        write_plugin(tmp_path, MOVED)
        hooks = json.loads((tmp_path / "hooks" / "hooks.json").read_text())
        assert hooks["hooks"] == hooks_fragment(MOVED)["hooks"]

    def test_unwritable_place_is_an_install_error(self, tmp_path: Path) -> None:
        """A plugin folder that cannot be created fails with InstallError, not OSError."""
        blocker = tmp_path / "file"
        blocker.write_text("")
        with pytest.raises(InstallError, match="cannot write"):
            write_plugin(blocker, COMMAND)
