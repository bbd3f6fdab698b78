"""What memq's OpenCode plugin sends, as memq's payload (memq.assistants.opencode), and the
plugin file and opencode.json the installer writes (memq.hooks.installers.opencode)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memq.assistants import adapter
from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import route_event
from memq.exceptions import InstallError, InvalidEventError
from memq.hooks.installers.opencode import (
    INSTALLER,
    MARKER,
    merge_server,
    plugin_text,
    remove_server,
    server_entry,
)
from memq.memory.records import ObservationKind
from memq.privacy import is_skipped
from memq.processors.extract import extract_observation

FIXTURES = Path(__file__).parents[1] / "fixtures" / "opencode"
SESSION = "ses_dbe0025e1ffe2i5PVNAdFpMNV0"
KEY = f"opencode:{SESSION}"
OPENCODE = adapter("opencode")
COMMAND = "MEMQ_HOME='/data/my memq' /venv/bin/memq hook --assistant opencode"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def mapped(name: str) -> dict[str, Any]:
    return OPENCODE.to_memq(fixture(name))


ROUTES = {
    "session.created": ("SessionStart", "event", f"SessionStart:{SESSION}"),
    "chat.message": ("UserPromptSubmit", "prompt", "prompt:msg_241ffdaee001ZANLMkMM2ASZLX"),
    "tool.execute.after.bash": ("PostToolUse", "observation", "tool:call_fake_1"),
    "tool.execute.after.bash.failed": ("PostToolUse", "observation", "tool:call_fake_24"),
    "tool.execute.after.write": ("PostToolUse", "observation", "tool:call_fake_21"),
    "tool.execute.after.edit": ("PostToolUse", "observation", "tool:call_fake_22"),
    "tool.execute.after.read": ("PostToolUse", "observation", "tool:call_fake_23"),
    "tool.execute.after.memq_search": ("PostToolUse", "observation", "tool:call_fake_9"),
    "message.part.updated.error": ("PostToolUseFailure", "observation", "tool:call_fake_25"),
    "session.idle": ("Stop", "summarize", "Stop:evt_241ffecc2001WZ9fmwq7jdjI5F"),
    "session.deleted": ("SessionEnd", "session_end", f"SessionEnd:{SESSION}"),
}


def test_every_fixture_has_a_route() -> None:
    assert sorted(ROUTES) == sorted(p.stem for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_fixture_maps_to_its_event_session_kind_and_key(name: str) -> None:
    payload = mapped(name)
    route = route_event(payload)
    assert (route.event, route.kind, route.dedupe_key) == ROUTES[name]
    assert route.session_key == KEY
    assert payload["cwd"] == "/home/dev/shop"
    native = fixture(name)["type"]
    assert payload["memq_native"]["event"] == native
    assert OPENCODE.memq_event(native) == route.event


def test_the_prompt_is_the_text_the_user_wrote() -> None:
    payload = fixture("chat.message")
    payload["output"]["parts"].append(
        {"type": "text", "text": "<file contents>", "synthetic": True}
    )
    assert OPENCODE.to_memq(payload)["prompt"] == '"Say hello using the shell"'


def test_stop_carries_the_turns_last_prompt_and_reply() -> None:
    payload = mapped("session.idle")
    assert payload["last_user_prompt"] == '"Say hello using the shell"'
    assert payload["last_assistant_message"] == "Done: the tool said hello."


@pytest.mark.parametrize(
    ("name", "tool", "tool_input"),
    [
        ("tool.execute.after.bash", "Bash", {"command": "echo hello-from-tool"}),
        (
            "tool.execute.after.edit",
            "Edit",
            {"file_path": "/home/dev/shop/notes.txt", "old_string": "beta", "new_string": "gamma"},
        ),
        ("tool.execute.after.write", "Write", {"content": "alpha\nbeta\n"}),
        ("tool.execute.after.read", "Read", {"file_path": "/home/dev/shop/notes.txt"}),
        ("tool.execute.after.memq_search", "mcp__memq__search", {"query": "greeting"}),
        ("message.part.updated.error", "Read", {"file_path": "/home/dev/shop/does-not-exist.txt"}),
    ],
)
def test_tools_come_out_as_their_claude_code_twins(
    name: str, tool: str, tool_input: dict[str, Any]
) -> None:
    payload = mapped(name)
    assert payload["tool_name"] == tool
    assert {k: payload["tool_input"][k] for k in tool_input} == tool_input
    given = fixture(name)
    native = given["input"]["tool"] if "input" in given else given["properties"]["part"]["tool"]
    assert payload["memq_native"]["tool_name"] == native


def test_memqs_own_mcp_tools_are_skipped() -> None:
    assert is_skipped(mapped("tool.execute.after.memq_search"), DEFAULT_SKIP_TOOLS)
    other = fixture("tool.execute.after.memq_search")
    other["input"]["tool"] = "linear_search"
    assert not is_skipped(OPENCODE.to_memq(other), DEFAULT_SKIP_TOOLS)


@pytest.mark.parametrize(
    ("name", "kind", "title", "fact"),
    [
        ("tool.execute.after.bash", ObservationKind.COMMAND, "Ran `echo hello-from-tool`", None),
        (
            "tool.execute.after.bash.failed",
            ObservationKind.COMMAND,
            "Ran `ls missing-dir` (exit 2)",
            "exit code 2",
        ),
        ("tool.execute.after.write", ObservationKind.CHANGE, "Wrote notes.txt", "2 lines written"),
        (
            "tool.execute.after.edit",
            ObservationKind.CHANGE,
            "Edited notes.txt",
            "1 line added, 1 removed",
        ),
        ("tool.execute.after.read", ObservationKind.DISCOVERY, "Read notes.txt", None),
        (
            "message.part.updated.error",
            ObservationKind.DISCOVERY,
            "Read failed: does-not-exist.txt",
            "failed: File not found: /home/dev/shop/does-not-exist.txt",
        ),
    ],
)
def test_the_extractor_describes_each_tool_event(
    name: str, kind: ObservationKind, title: str, fact: str | None
) -> None:
    record = extract_observation(mapped(name))
    assert (record.kind, record.title) == (kind, title)
    if fact is not None:
        assert fact in record.facts
    if name == "tool.execute.after.bash":
        assert record.exit_code == 0
        assert "hello-from-tool" in (record.excerpt or "")
    if name == "tool.execute.after.edit":
        assert record.files_modified == ("notes.txt",)
        assert "+gamma" in (record.excerpt or "")


def test_a_part_that_is_no_failed_tool_stays_unsubscribed() -> None:
    payload = fixture("message.part.updated.error")
    payload["properties"]["part"]["state"]["status"] = "completed"
    route = route_event(OPENCODE.to_memq(payload))
    assert (route.event, route.kind) == ("message.part.updated", "unsubscribed")


def test_replies_are_the_context_itself_for_the_plugin() -> None:
    assert OPENCODE.reply("SessionStart", "memory") == "memory"
    assert OPENCODE.reply("UserPromptSubmit", "recall") == "recall"
    assert OPENCODE.reply("Stop", "x") is None


@pytest.mark.parametrize(
    "payload",
    [
        {"properties": {"sessionID": SESSION}},
        {"type": "session.idle", "properties": {}},
    ],
)
def test_a_payload_without_type_or_session_is_refused(payload: dict[str, Any]) -> None:
    with pytest.raises(InvalidEventError):
        OPENCODE.to_memq(payload)


# -- the plugin file and opencode.json ---------------------------------------------------------


def test_the_plugin_runs_the_hook_command_and_says_it_is_memqs() -> None:
    text = plugin_text(COMMAND)
    assert text.startswith(MARKER)
    assert f"const MEMQ_HOOK = {json.dumps(COMMAND)}" in text
    assert "__MEMQ_HOOK_COMMAND__" not in text
    with pytest.raises(InstallError):
        plugin_text("/usr/bin/python -c 'import os'")


def test_paths_follow_xdg_and_the_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    user = INSTALLER.config_path(project=False, cwd=tmp_path)
    assert user == tmp_path / "xdg" / "opencode" / "plugins" / "memq.js"
    assert INSTALLER.mcp_path(user, project=False) == tmp_path / "xdg/opencode/opencode.json"
    project = INSTALLER.config_path(project=True, cwd=tmp_path / "p")
    assert project == tmp_path / "p" / ".opencode" / "plugins" / "memq.js"
    assert INSTALLER.mcp_path(project, project=True) == tmp_path / "p" / "opencode.json"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert INSTALLER.config_path(project=False, cwd=tmp_path) == (
        tmp_path / "home" / ".config" / "opencode" / "plugins" / "memq.js"
    )


SERVER = {"type": "stdio", "command": "/venv/bin/memq", "args": ["mcp"], "env": {"MEMQ_HOME": "/d"}}


def test_the_mcp_entry_is_opencodes_local_server() -> None:
    entry = server_entry(SERVER)
    assert entry == {
        "type": "local",
        "command": ["/venv/bin/memq", "mcp"],
        "environment": {"MEMQ_HOME": "/d"},
        "enabled": True,
    }
    config = {"$schema": "https://opencode.ai/config.json", "mcp": {"other": {"type": "remote"}}}
    merged = merge_server(config, entry)
    assert list(merged["mcp"]) == ["other", "memq"]
    assert merge_server(merged, entry) == merged
    assert remove_server(merged) == (config, True)
    assert remove_server(config) == (config, False)
    alone, _ = remove_server(merge_server({}, entry))
    assert alone == {}
    theirs = {"mcp": {"memq": {"type": "local", "command": ["other-memq", "serve"]}}}
    with pytest.raises(InstallError):
        merge_server(theirs, entry)
    assert remove_server(theirs) == (theirs, False)
