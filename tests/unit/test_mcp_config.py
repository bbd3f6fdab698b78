"""memq's MCP server entry in Claude Code's files (``memq.hooks.mcp_config``) and the careful
rewriting of those files (``memq.hooks.jsonfile``)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import pytest

from memq.exceptions import InstallError
from memq.hooks import jsonfile
from memq.hooks.mcp_config import (
    config_path,
    is_memq_server,
    merge_server,
    register,
    remove_server,
    server_entry,
    tool_names,
    unregister,
    user_config_path,
)

ENTRY: dict[str, Any] = {
    "type": "stdio",
    "command": "/opt/venv/bin/memq",
    "args": ["mcp"],
    "env": {},
}
MOVED: dict[str, Any] = {**ENTRY, "command": "/home/me/new-venv/bin/memq"}
FOREIGN: dict[str, Any] = {"type": "stdio", "command": "npx", "args": ["-y", "memq-clone"]}
NOW = 1_700_000_000.0


def claude_json() -> dict[str, Any]:
    """A user's ~/.claude.json: Claude Code's own keys around a server of theirs."""
    return {
        "numStartups": 12,
        "oauthAccount": {"emailAddress": "me@example.com"},
        "projects": {"/home/me/p": {"allowedTools": [], "mcpServers": {}}},
        "mcpServers": {"github": {"type": "stdio", "command": "gh-mcp", "args": [], "env": {}}},
        "tipsHistory": {"x": 3},
    }


def files_in(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


class TestServerEntry:
    def test_the_console_script_beside_the_interpreter(self, tmp_path: Path) -> None:
        """A virtualenv's bin/memq, with the one argument mcp and no environment."""
        script = tmp_path / "memq"
        script.write_text("#!/bin/sh\n")
        script.chmod(0o755)
        entry = server_entry(str(tmp_path / "python"))
        assert entry == {"type": "stdio", "command": str(script), "args": ["mcp"], "env": {}}
        assert is_memq_server(entry)

    def test_falls_back_to_python_dash_m(self, tmp_path: Path) -> None:
        entry = server_entry(str(tmp_path / "python3"))
        assert entry["command"] == str(tmp_path / "python3")
        assert entry["args"] == ["-m", "memq", "mcp"]
        assert is_memq_server(entry)

    def test_default_is_absolute(self) -> None:
        entry = server_entry()
        assert os.path.isabs(entry["command"])
        assert is_memq_server(entry)

    def test_a_home_goes_into_env_made_absolute(self, monkeypatch, tmp_path: Path) -> None:
        """Claude Code starts the server from its own environment: MEMQ_HOME rides along."""
        monkeypatch.chdir(tmp_path)
        entry = server_entry(home="data")
        assert entry["env"] == {"MEMQ_HOME": str(tmp_path / "data")}
        with pytest.raises(InstallError, match="empty"):
            server_entry(home=" ")

    def test_tool_names(self) -> None:
        assert tool_names() == [
            "mcp__memq__search",
            "mcp__memq__timeline",
            "mcp__memq__get_observations",
            "mcp__memq__recent_context",
        ]


class TestIsMemqServer:
    @pytest.mark.parametrize(
        "entry",
        [
            ENTRY,
            {"command": "/x/memq", "args": ["mcp"]},  # type defaults to stdio
            {"command": "/usr/bin/python3", "args": ["-m", "memq", "mcp"]},
            {**ENTRY, "env": {"MEMQ_HOME": "/srv/memq"}},
        ],
    )
    def test_recognises_memq_mcp(self, entry: dict[str, Any]) -> None:
        assert is_memq_server(entry)

    @pytest.mark.parametrize(
        "entry",
        [
            FOREIGN,
            {"command": "/x/memq", "args": ["mcp", "--extra"]},
            {"command": "/x/memq", "args": ["hook"]},
            {"command": "/x/memq-proxy", "args": ["mcp"]},
            {"command": "/x/memq"},
            {"type": "http", "url": "http://127.0.0.1:1/mcp"},
            {"type": "sse", "command": "/x/memq", "args": ["mcp"]},
            {"command": "", "args": ["-m", "memq", "mcp"]},
            {"command": "/x/memq", "args": "mcp"},
            "memq mcp",
            None,
        ],
    )
    def test_rejects_everything_else(self, entry: object) -> None:
        assert not is_memq_server(entry)


class TestMergeAndRemove:
    def test_keeps_everything_else_in_order(self) -> None:
        original = claude_json()
        merged = merge_server(original, ENTRY)
        assert original == claude_json()  # not modified
        assert list(merged) == list(original)
        assert list(merged["mcpServers"]) == ["github", "memq"]
        assert merged["mcpServers"]["memq"] == ENTRY
        assert {k: v for k, v in merged.items() if k != "mcpServers"} == {
            k: v for k, v in original.items() if k != "mcpServers"
        }

    def test_a_new_path_replaces_the_old_in_place(self) -> None:
        config = {"mcpServers": {"memq": ENTRY, "github": {"command": "gh-mcp"}}}
        merged = merge_server(config, MOVED)
        assert list(merged["mcpServers"]) == ["memq", "github"]
        assert merged["mcpServers"]["memq"] == MOVED

    def test_into_nothing_gives_the_entry(self) -> None:
        assert merge_server({}, ENTRY) == {"mcpServers": {"memq": ENTRY}}

    def test_is_idempotent(self) -> None:
        once = merge_server(claude_json(), ENTRY)
        assert merge_server(once, ENTRY) == once

    def test_refuses_to_replace_another_server_named_memq(self) -> None:
        with pytest.raises(InstallError, match=r"another server \(npx -y memq-clone\)"):
            merge_server({"mcpServers": {"memq": FOREIGN}}, ENTRY)

    def test_refuses_an_entry_it_could_not_recognise_later(self) -> None:
        with pytest.raises(InstallError, match="does not run `memq mcp`"):
            merge_server({}, FOREIGN)

    @pytest.mark.parametrize("servers", [[], "x", 3, None])
    def test_refuses_the_wrong_shape(self, servers: object) -> None:
        with pytest.raises(InstallError, match='"mcpServers" is'):
            merge_server({"mcpServers": servers}, ENTRY)
        with pytest.raises(InstallError, match='"mcpServers" is'):
            remove_server({"mcpServers": servers})

    def test_round_trip_gives_back_the_original(self) -> None:
        cleaned, removed = remove_server(merge_server(claude_json(), ENTRY))
        assert removed
        assert cleaned == claude_json()
        assert list(cleaned) == list(claude_json())

    def test_from_nothing_removes_mcp_servers_entirely(self) -> None:
        assert remove_server(merge_server({"a": 1}, ENTRY)) == ({"a": 1}, True)

    def test_an_empty_mcp_servers_of_the_users_stays(self) -> None:
        assert remove_server({"mcpServers": {}}) == ({"mcpServers": {}}, False)

    def test_leaves_another_server_named_memq(self) -> None:
        config = {"mcpServers": {"memq": FOREIGN}}
        assert remove_server(config) == (config, False)


class TestPaths:
    def test_user_scope_follows_home(self, monkeypatch, tmp_path: Path) -> None:
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.delenv("CLAUDE_CONFIG_DIR", raising=False)
        assert user_config_path() == tmp_path / ".claude.json"
        assert config_path() == tmp_path / ".claude.json"

    def test_claude_config_dir_moves_it(self, monkeypatch, tmp_path: Path) -> None:
        """Claude Code keeps .claude.json in CLAUDE_CONFIG_DIR when that is set; blank is
        unset."""
        monkeypatch.setenv("HOME", str(tmp_path))
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", str(tmp_path / "cfg"))
        assert user_config_path() == tmp_path / "cfg" / ".claude.json"
        monkeypatch.setenv("CLAUDE_CONFIG_DIR", " ")
        assert user_config_path() == tmp_path / ".claude.json"

    def test_project_scope_is_the_current_directory(self, monkeypatch, tmp_path: Path) -> None:
        monkeypatch.chdir(tmp_path)
        assert config_path(project=True) == tmp_path / ".mcp.json"

    def test_explicit_path_wins(self, tmp_path: Path) -> None:
        assert config_path(project=True, config=tmp_path / "x.json") == tmp_path / "x.json"


class TestRegister:
    def test_creates_a_private_user_file(self, tmp_path: Path) -> None:
        """A new ~/.claude.json is the user's alone (0600), as Claude Code creates it."""
        path = tmp_path / ".claude.json"
        result = register(path, ENTRY)
        assert (result.changed, result.created, result.backup) == (True, True, None)
        assert json.loads(path.read_text()) == {"mcpServers": {"memq": ENTRY}}
        assert stat.S_IMODE(path.stat().st_mode) == 0o600

    def test_a_project_file_gets_the_usual_mode(self, tmp_path: Path) -> None:
        path = tmp_path / ".mcp.json"
        register(path, ENTRY)
        assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~_umask()

    def test_keeps_every_other_key_mode_and_backs_up(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        original = json.dumps(claude_json(), indent=2)  # no newline at the end
        path.write_text(original)
        path.chmod(0o640)
        result = register(path, ENTRY, now=NOW)
        assert result.changed
        assert not result.created
        written = path.read_text()
        assert not written.endswith("\n")
        assert json.loads(written) == merge_server(claude_json(), ENTRY)
        assert stat.S_IMODE(path.stat().st_mode) == 0o640
        assert result.backup is not None
        assert result.backup.read_text() == original
        assert stat.S_IMODE(result.backup.stat().st_mode) == 0o640

    def test_second_register_changes_nothing(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        register(path, ENTRY)
        before = files_in(tmp_path)
        again = register(path, ENTRY)
        assert not again.changed
        assert files_in(tmp_path) == before

    @pytest.mark.parametrize(
        ("content", "problem"),
        [
            ('{"numStartups": 1,', "not valid JSON"),
            ("[1, 2]", "not a JSON object"),
            ('{"mcpServers": []}', '"mcpServers" is'),
            (json.dumps({"mcpServers": {"memq": FOREIGN}}), "another server"),
        ],
    )
    def test_refuses_and_leaves_the_file_alone(
        self, tmp_path: Path, content: str, problem: str
    ) -> None:
        path = tmp_path / ".claude.json"
        path.write_text(content)
        with pytest.raises(InstallError, match=problem) as caught:
            register(path, ENTRY)
        assert str(path) in str(caught.value)
        assert path.read_text() == content
        assert files_in(tmp_path) == {".claude.json"}

    def test_writes_through_a_symlink(self, tmp_path: Path) -> None:
        real = tmp_path / "dotfiles" / "claude.json"
        real.parent.mkdir()
        real.write_text("{}")
        link = tmp_path / ".claude.json"
        link.symlink_to(real)
        register(link, ENTRY)
        assert link.is_symlink()
        assert json.loads(real.read_text()) == {"mcpServers": {"memq": ENTRY}}


class TestUnregister:
    def test_round_trip_restores_the_original(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        original = json.dumps(claude_json(), indent=2) + "\n"
        path.write_text(original)
        register(path, ENTRY)
        result = unregister(path)
        assert (result.existed, result.removed, result.other) == (True, True, None)
        assert path.read_text() == original

    def test_missing_file_is_left_missing(self, tmp_path: Path) -> None:
        result = unregister(tmp_path / ".claude.json")
        assert (result.existed, result.removed) == (False, False)
        assert list(tmp_path.iterdir()) == []

    def test_another_server_named_memq_stays_and_is_reported(self, tmp_path: Path) -> None:
        path = tmp_path / ".mcp.json"
        content = json.dumps({"mcpServers": {"memq": FOREIGN}})
        path.write_text(content)
        result = unregister(path)
        assert (result.removed, result.other) == (False, FOREIGN)
        assert path.read_text() == content

    def test_refuses_invalid_json(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        path.write_text("{")
        with pytest.raises(InstallError, match="not valid JSON"):
            unregister(path)
        assert path.read_text() == "{"


class TestConcurrentWriter:
    def test_a_change_made_meanwhile_is_kept(self, tmp_path: Path) -> None:
        """Claude Code rewriting the file between memq's read and its rename: memq reads
        again and applies its change on top, losing nothing of the other write."""
        path = tmp_path / ".claude.json"
        path.write_text(json.dumps({"numStartups": 1}))
        calls = 0

        def change(data: dict[str, Any]) -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:  # the other writer gets in after memq's read
                path.write_text(json.dumps({"numStartups": 2, "theirs": True}))
            return merge_server(data, ENTRY)

        result = jsonfile.update(path, change, now=NOW)
        assert calls == 2
        assert json.loads(path.read_text()) == {
            "numStartups": 2,
            "theirs": True,
            "mcpServers": {"memq": ENTRY},
        }
        assert result.backup is not None
        assert json.loads(result.backup.read_text()) == {"numStartups": 2, "theirs": True}
        assert files_in(tmp_path) == {".claude.json", result.backup.name}

    def test_a_file_that_never_settles_is_refused_unchanged(self, tmp_path: Path) -> None:
        path = tmp_path / ".claude.json"
        path.write_text("{}")
        count = 0

        def change(data: dict[str, Any]) -> dict[str, Any]:
            nonlocal count
            count += 1
            path.write_text(json.dumps({"n": count}))
            return merge_server(data, ENTRY)

        with pytest.raises(InstallError, match="kept changing"):
            jsonfile.update(path, change)
        assert json.loads(path.read_text()) == {"n": jsonfile.ATTEMPTS}
        assert files_in(tmp_path) == {".claude.json"}  # no backup, no temporary file left


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
