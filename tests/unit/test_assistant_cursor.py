"""Cursor's hook payloads as memq's (memq.assistants.cursor) and its hooks.json shape
(memq.hooks.installers.cursor), without a daemon."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memq.assistants import adapter
from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import route_event
from memq.exceptions import InstallError, InvalidEventError
from memq.hooks.installers.cursor import hooks_fragment, merge, remove, server_entry
from memq.memory.records import ObservationKind
from memq.privacy import is_skipped
from memq.processors.extract import extract_observation

FIXTURES = Path(__file__).parents[1] / "fixtures" / "cursor"
CONVERSATION = "5b0c3a3e-6f1e-4c2a-9d57-2f7f1a0c9e11"
KEY = f"cursor:{CONVERSATION}"
CURSOR = adapter("cursor")
COMMAND = "/venv/bin/memq hook --assistant cursor"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def mapped(name: str) -> dict[str, Any]:
    return CURSOR.to_memq(fixture(name))


# fixture -> (memq event, queue kind, dedupe key)
ROUTES = {
    "sessionStart": ("SessionStart", "event", f"SessionStart:{CONVERSATION}"),
    "beforeSubmitPrompt": (
        "UserPromptSubmit",
        "prompt",
        "prompt:a41d2f0b-0c6e-4c8b-8f0e-5d3c9b7e2a10",
    ),
    "postToolUse.Shell": ("PostToolUse", "observation", "tool:toolu_01Shell9a8b7c"),
    "postToolUse.Read": ("PostToolUse", "observation", "tool:toolu_01Read4d5e6f"),
    "postToolUse.Write": ("PostToolUse", "observation", "tool:toolu_01Write7a8b9c"),
    "postToolUseFailure": ("PostToolUseFailure", "observation", "tool:toolu_01Fail0a1b2c"),
    "afterShellExecution": ("PostToolUse", "observation", None),
    "afterFileEdit": ("PostToolUse", "observation", None),
    "afterMCPExecution": ("PostToolUse", "observation", None),
    "preToolUse": ("preToolUse", "unsubscribed", "preToolUse:toolu_01Pre3c4d5e"),
    "stop": ("Stop", "summarize", "Stop:a41d2f0b-0c6e-4c8b-8f0e-5d3c9b7e2a10:0"),
    "sessionEnd": ("SessionEnd", "session_end", f"SessionEnd:{CONVERSATION}"),
}


def test_every_fixture_has_a_route() -> None:
    assert sorted(ROUTES) == sorted(p.stem for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_fixture_maps_to_its_event_session_kind_and_key(name: str) -> None:
    payload = mapped(name)
    route = route_event(payload)
    event, kind, dedupe = ROUTES[name]
    assert (route.event, route.kind, route.dedupe_key) == (event, kind, dedupe)
    assert route.session_key == KEY
    assert payload["memq_assistant"] == "cursor"
    assert payload["cwd"] == "/home/dev/shop"  # Cursor's "" (or none): the workspace root
    native = fixture(name)["hook_event_name"]
    if event != native:
        assert payload["memq_native"]["event"] == native
    assert CURSOR.memq_event(native) == event


def test_the_event_on_the_command_line_wins() -> None:
    payload = CURSOR.to_memq(fixture("sessionEnd"), "stop")
    assert payload["hook_event_name"] == "Stop"


@pytest.mark.parametrize(
    ("name", "tool", "native", "tool_input"),
    [
        ("postToolUse.Shell", "Bash", "Shell", {"command": "pytest tests/test_cart.py -q"}),
        ("postToolUse.Read", "Read", None, {"file_path": "/home/dev/shop/src/cart.py"}),
        ("postToolUseFailure", "Bash", "Shell", {"command": "npm test"}),
        ("afterShellExecution", "Bash", "Shell", {"command": "git status --short"}),
        (
            "afterFileEdit",
            "Edit",
            "afterFileEdit",
            {
                "file_path": "/home/dev/shop/src/cart.py",
                "old_string": "return total",
                "new_string": "return round(total, 2)",
            },
        ),
        ("afterMCPExecution", "mcp__memq__search", "search", {"query": "cart rounding"}),
    ],
)
def test_tools_come_out_as_their_claude_code_twins(
    name: str, tool: str, native: str | None, tool_input: dict[str, Any]
) -> None:
    payload = mapped(name)
    assert payload["tool_name"] == tool
    assert payload.get("memq_native", {}).get("tool_name") == native
    assert {k: payload["tool_input"][k] for k in tool_input} == tool_input


def test_tool_output_is_parsed_into_a_bash_response() -> None:
    payload = mapped("postToolUse.Shell")
    assert "tool_output" not in payload
    assert payload["tool_response"] == {"stdout": "1 failed, 3 passed in 0.12s\n", "exit_code": 1}


def test_memqs_own_mcp_tools_are_skipped_like_claude_codes() -> None:
    assert is_skipped(mapped("afterMCPExecution"), DEFAULT_SKIP_TOOLS)
    other = fixture("afterMCPExecution") | {"mcp_server_name": "linear"}
    assert not is_skipped(CURSOR.to_memq(other), DEFAULT_SKIP_TOOLS)
    generic = fixture("postToolUse.Read") | {"tool_name": "MCP:memq:timeline"}
    assert CURSOR.to_memq(generic)["tool_name"] == "mcp__memq__timeline"


@pytest.mark.parametrize(
    ("name", "kind", "title", "fact"),
    [
        (
            "postToolUse.Shell",
            ObservationKind.COMMAND,
            "Ran `pytest tests/test_cart.py -q` (exit 1)",
            "exit code 1",
        ),
        ("postToolUse.Read", ObservationKind.DISCOVERY, "Read src/cart.py", None),
        ("postToolUse.Write", ObservationKind.CHANGE, "Wrote src/money.py", "2 lines written"),
        (
            "postToolUseFailure",
            ObservationKind.COMMAND,
            "Ran `npm test` (failed)",
            "failed: Command timed out after 30s",
        ),
        ("afterShellExecution", ObservationKind.COMMAND, "Ran `git status --short`", None),
        ("afterFileEdit", ObservationKind.CHANGE, "Edited src/cart.py", "1 line added, 1 removed"),
    ],
)
def test_the_extractor_describes_each_tool_event(
    name: str, kind: ObservationKind, title: str, fact: str | None
) -> None:
    record = extract_observation(mapped(name))
    assert (record.kind, record.title) == (kind, title)
    if fact is not None:
        assert fact in record.facts
    if name == "postToolUse.Shell":
        assert record.exit_code == 1
        assert "1 failed, 3 passed" in (record.excerpt or "")
    if name == "afterFileEdit":
        assert record.files_modified == ("src/cart.py",)
        assert "+return round(total, 2)" in (record.excerpt or "")


def test_several_edits_are_a_multi_edit() -> None:
    payload = fixture("afterFileEdit")
    payload["edits"].append({"old_string": "a = 1", "new_string": "a = 2"})
    record = extract_observation(CURSOR.to_memq(payload))
    assert record.tool_name == "MultiEdit"
    assert "2 edits" in record.facts


def test_replies_follow_cursors_output_schema() -> None:
    assert json.loads(CURSOR.reply("SessionStart", "memory") or "") == {
        "additional_context": "memory"
    }
    assert json.loads(CURSOR.reply("UserPromptSubmit", "recall") or "") == {"continue": True}
    assert CURSOR.reply("Stop", "x") is None
    assert json.loads(CURSOR.notice("SessionStart", "damaged") or "") == {
        "additional_context": "damaged"
    }


def test_no_id_is_taken_from_a_generation_that_is_the_conversation() -> None:
    """The CLI has been seen sending the conversation's id as every generation's: turns
    would then share their ids, and a later one be dropped as a duplicate."""
    payload = fixture("beforeSubmitPrompt") | {"generation_id": CONVERSATION}
    assert "prompt_id" not in CURSOR.to_memq(payload)
    stop = CURSOR.to_memq(fixture("stop") | {"generation_id": CONVERSATION})
    assert "memq_event_id" not in stop


@pytest.mark.parametrize("missing", ["hook_event_name", "conversation_id"])
def test_a_payload_without_event_or_session_is_refused(missing: str) -> None:
    payload = fixture("stop")
    del payload[missing]
    with pytest.raises(InvalidEventError):
        CURSOR.to_memq(payload)


def test_stop_takes_the_last_exchange_from_the_transcript(tmp_path: Path) -> None:
    transcript = tmp_path / "t.jsonl"
    lines = [
        {"role": "user", "message": {"content": [{"type": "text", "text": "old prompt"}]}},
        {"role": "user", "message": {"content": [{"type": "text", "text": "fix the total"}]}},
        {"role": "assistant", "message": {"content": [{"type": "tool_use", "name": "Shell"}]}},
        {"role": "assistant", "message": {"content": [{"type": "text", "text": "Fixed it."}]}},
    ]
    transcript.write_text("\n".join(json.dumps(line) for line in lines) + "\n{half")
    payload = CURSOR.to_memq(fixture("stop") | {"transcript_path": str(transcript)})
    CURSOR.complete_turn(payload)
    assert payload["last_user_prompt"] == "fix the total"
    assert payload["last_assistant_message"] == "Fixed it."
    missing = CURSOR.to_memq(fixture("stop") | {"transcript_path": str(tmp_path / "none")})
    CURSOR.complete_turn(missing)
    assert "last_assistant_message" not in missing


# -- hooks.json --------------------------------------------------------------------------------

OTHERS: dict[str, Any] = {
    "version": 1,
    "hooks": {
        "afterFileEdit": [{"command": "./hooks/format.sh"}],
        "stop": [{"command": "./hooks/audit.sh", "loop_limit": 10}],
    },
    "x-mine": True,
}


def test_merge_adds_memq_after_others_and_keeps_them() -> None:
    merged = merge(OTHERS, hooks_fragment(COMMAND))
    assert merged["x-mine"] is True
    assert merged["hooks"]["afterFileEdit"] == [{"command": "./hooks/format.sh"}]
    assert merged["hooks"]["stop"] == [
        {"command": "./hooks/audit.sh", "loop_limit": 10},
        {"command": COMMAND, "timeout": 10},
    ]
    assert set(merged["hooks"]) == {
        "afterFileEdit",
        "stop",
        "sessionStart",
        "beforeSubmitPrompt",
        "postToolUse",
        "postToolUseFailure",
        "sessionEnd",
    }
    assert merge(merged, hooks_fragment(COMMAND)) == merged  # idempotent
    assert OTHERS["hooks"]["stop"] == [{"command": "./hooks/audit.sh", "loop_limit": 10}]


def test_a_new_command_replaces_memqs_entry_where_it_stood() -> None:
    first = merge({"hooks": {"stop": [{"command": "a"}]}}, hooks_fragment(COMMAND))
    first["hooks"]["stop"].append({"command": "b"})
    other = "MEMQ_HOME=/data /venv/bin/memq hook --assistant cursor"
    again = merge(first, hooks_fragment(other))
    assert again["hooks"]["stop"] == [
        {"command": "a"},
        {"command": other, "timeout": 10},
        {"command": "b"},
    ]


def test_a_new_file_starts_with_the_version() -> None:
    merged = merge({}, hooks_fragment(COMMAND))
    assert next(iter(merged)) == "version"
    assert merged["version"] == 1


def test_remove_takes_out_exactly_memqs_entries() -> None:
    merged = merge(OTHERS, hooks_fragment(COMMAND))
    cleaned, removed = remove(merged)
    assert removed == 6
    assert cleaned == OTHERS
    assert remove(cleaned) == (OTHERS, 0)
    empty = {"version": 1, "hooks": {"stop": []}}
    assert remove(empty) == (empty, 0)  # an empty list that was there stays


@pytest.mark.parametrize("broken", [{"hooks": []}, {"hooks": {"stop": {"command": "x"}}}])
def test_a_file_not_shaped_like_cursors_is_refused(broken: dict[str, Any]) -> None:
    with pytest.raises(InstallError):
        merge(broken, hooks_fragment(COMMAND))


def test_only_memq_hook_commands_are_written() -> None:
    with pytest.raises(InstallError):
        hooks_fragment("/usr/bin/memq-lookalike hook")


def test_the_mcp_entry_is_cursors_stdio_shape() -> None:
    entry = {"type": "stdio", "command": "/venv/bin/memq", "args": ["mcp"], "env": {}}
    assert server_entry(entry) == {"command": "/venv/bin/memq", "args": ["mcp"], "env": {}}
