"""Codex CLI's hook payloads as memq's (memq.assistants.codex) and its configuration files
(memq.hooks.installers.codex), without a daemon."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import pytest

from memq.assistants import adapter
from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import route_event
from memq.exceptions import InstallError, InvalidEventError
from memq.hooks.installers.codex import (
    codex_hooks_fragment,
    edit_tables,
    memq_handlers,
    snake_case,
    trust_hash,
)
from memq.memory.records import ObservationKind
from memq.privacy import is_skipped
from memq.processors.extract import extract_observation

FIXTURES = Path(__file__).parents[1] / "fixtures" / "codex"
CODEX = adapter("codex")
COMMAND = "/venv/bin/memq hook --assistant codex"
MAIN = "01a23f3b-0973-7de1-8be8-a7cf3bff3d1d"  # the startup/resume/fail steps' session
AGENT = "01a23f3b-318c-73f0-b263-78445438bc67"
TURN = "01a23f3b-0992-7672-b4d0-853b7728d4e5"


def fixture(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return data


def mapped(name: str, **changes: Any) -> dict[str, Any]:
    return CODEX.to_memq({**fixture(name), **changes})


# fixture -> (memq event, queue kind, dedupe key); None: the hook's own random id decides
ROUTES: dict[str, tuple[str, str, str | None]] = {
    "SessionStart": ("SessionStart", "event", None),
    "SessionStart.resume": ("SessionStart", "event", None),
    "SessionStart.compact": ("SessionStart", "event", None),
    "UserPromptSubmit": ("UserPromptSubmit", "prompt", f"prompt:{TURN}"),
    "UserPromptSubmit.subagent": ("SubagentUserPromptSubmit", "unsubscribed", None),
    "PreModelRequest": ("PreModelRequest", "unsubscribed", None),
    "PreModelRequest.sampling.subagent": ("PreModelRequest", "unsubscribed", None),
    "PreToolUse.Bash": ("PreToolUse", "unsubscribed", "PreToolUse:call_fd7d767c471c43c48cec389a"),
    "PostToolUse.Bash": ("PostToolUse", "observation", "tool:call_fd7d767c471c43c48cec389a"),
    "PostToolUse.Bash.fail": ("PostToolUse", "observation", "tool:call_2ae5be56cc8f41ed8a65a00d"),
    "PostToolUse.apply_patch": ("PostToolUse", "observation", "tool:call_apply_patch_1"),
    "PostToolUse.mcp__memq__search": ("PostToolUse", "observation", "tool:call_mcp_memq_1"),
    "PostToolUse.spawn_agent": ("PostToolUse", "observation", "tool:call_0070a45c39844525b6f9630b"),
    "PostToolUse.multi_agent_v1wait_agent": (
        "PostToolUse",
        "observation",
        "tool:call_18c6322e34eb4704bd72c65e",
    ),
    "Stop": ("Stop", "summarize", f"Stop:turn:{TURN}"),
    "Interrupt": ("Stop", "summarize", "Stop:turn:01a23f3b-4259-7d21-8375-2ae5d7902d44"),
    "SessionEnd": ("SessionEnd", "session_end", None),
    "PreCompact": ("PreCompact", "unsubscribed", None),
    "PostCompact": ("PostCompact", "unsubscribed", None),
    "SubagentStart": ("SubagentStart", "unsubscribed", None),
    "SubagentStop": ("SubagentStop", "unsubscribed", None),
}


def test_every_fixture_has_a_route() -> None:
    assert sorted(ROUTES) == sorted(p.stem for p in FIXTURES.glob("*.json"))


@pytest.mark.parametrize("name", sorted(ROUTES))
def test_each_fixture_maps_to_its_event_session_kind_and_dedupe_key(name: str) -> None:
    native = fixture(name)
    payload = CODEX.to_memq(dict(native))
    route = route_event(payload)
    event, kind, dedupe = ROUTES[name]
    assert (route.event, route.kind, route.dedupe_key) == (event, kind, dedupe)
    assert route.session_key == f"codex:{native['session_id']}"
    assert payload["memq_assistant"] == "codex"
    if event != native["hook_event_name"]:
        assert payload["memq_native"]["event"] == native["hook_event_name"]
    assert payload["cwd"] == "/home/dev/project"


def test_the_event_named_on_the_command_line_wins() -> None:
    payload = CODEX.to_memq(fixture("Interrupt"), "Interrupt")
    assert payload["hook_event_name"] == "Stop"
    assert CODEX.memq_event("Interrupt") == "Stop"
    assert CODEX.memq_event("PreToolUse") == "PreToolUse"


def test_subagent_events_stay_in_the_parents_session_but_its_prompt_is_no_prompt() -> None:
    prompt = route_event(mapped("UserPromptSubmit.subagent"))
    observation = route_event(mapped("PostToolUse.spawn_agent"))
    assert prompt.session_key == observation.session_key == f"codex:{AGENT}"
    assert not prompt.subscribed


def test_a_continued_stop_is_a_new_event() -> None:
    """A Stop after another hook made the turn go on (stop_hook_active) is not the first's
    duplicate: it keeps the hook's own id."""
    again = mapped("Stop", stop_hook_active=True)
    assert "memq_event_id" not in again
    assert route_event(again).dedupe_key is None


def test_a_missing_transcript_is_no_error() -> None:
    for name in ("PostToolUse.Bash", "Stop", "Interrupt"):
        payload = mapped(name, transcript_path=None)
        CODEX.complete_turn(payload)
        assert route_event(payload).session_key.startswith("codex:")


@pytest.mark.parametrize("missing", ["hook_event_name", "session_id"])
def test_a_payload_without_event_or_session_is_refused(missing: str) -> None:
    payload = fixture("Stop")
    del payload[missing]
    with pytest.raises(InvalidEventError):
        CODEX.to_memq(payload)


def test_shell_output_becomes_a_command_observation() -> None:
    payload = mapped("PostToolUse.Bash")
    assert payload["tool_name"] == "Bash"
    assert payload["tool_input"] == {"command": "echo hello > hello.txt"}
    record = extract_observation(payload)
    assert (record.kind, record.title) == (ObservationKind.COMMAND, "Ran `echo hello > hello.txt`")
    assert record.command == "echo hello > hello.txt"


def test_the_exit_code_comes_from_the_transcript() -> None:
    """Codex gives the output only; the session file's CommandExecution line has the code."""
    payload = mapped("PostToolUse.Bash.fail", transcript_path=str(FIXTURES / "rollout.fail.jsonl"))
    assert payload["tool_response"] == {"stdout": "failing\n", "exit_code": 3}
    record = extract_observation(payload)
    assert record.exit_code == 3
    assert record.title == "Ran `echo failing >&2; exit 3` (exit 3)"
    assert "failing" in (record.excerpt or "")


def test_without_the_transcript_the_exit_code_is_unknown() -> None:
    payload = mapped("PostToolUse.Bash.fail")  # the capture's path: not on this machine
    assert payload["tool_response"] == {"stdout": "failing\n", "exit_code": None}
    assert "failing" in (extract_observation(payload).excerpt or "")


def test_apply_patch_becomes_an_edit_with_its_diff() -> None:
    payload = mapped("PostToolUse.apply_patch")
    assert payload["tool_name"] == "Edit"
    assert payload["tool_input"] == {
        "file_path": "src/app.py",
        "old_string": '    print("hello")\n    return 0\n',
        "new_string": '    print("hello, world")\n    return 0\n',
    }
    assert payload["memq_native"]["tool_name"] == "apply_patch"
    assert payload["memq_native"]["tool_input"]["command"].startswith("*** Begin Patch")
    record = extract_observation(payload)
    assert (record.kind, record.title) == (ObservationKind.CHANGE, "Edited src/app.py")
    assert record.files_modified == ("src/app.py",)
    assert '+    print("hello, world")' in (record.excerpt or "")


def test_a_patch_adding_one_file_is_a_write_and_several_files_a_multi_edit() -> None:
    added = (
        "*** Begin Patch\n*** Add File: /home/dev/project/docs/new.md\n+# New\n+text\n*** End Patch"
    )
    payload = mapped("PostToolUse.apply_patch", tool_input={"command": added})
    assert payload["tool_name"] == "Write"
    assert payload["tool_input"]["content"] == "# New\ntext\n"
    record = extract_observation(payload)
    assert (record.title, record.files_modified) == ("Created docs/new.md", ("docs/new.md",))

    several = (
        "*** Begin Patch\n*** Update File: a.py\n@@\n-x = 1\n+x = 2\n"
        "*** Delete File: old.py\n*** Update File: b.py\n*** Move to: c.py\n@@\n-y\n+z\n"
        "*** End Patch\n"
    )
    payload = mapped("PostToolUse.apply_patch", tool_input={"command": several})
    assert payload["tool_name"] == "MultiEdit"
    assert [e["file_path"] for e in payload["tool_input"]["edits"]] == ["a.py", "old.py", "c.py"]
    record = extract_observation(payload)
    assert record.title == "Edited a.py and 2 more"
    assert "3 edits" in record.facts


def test_other_tools_answer_json_as_text_and_keep_their_names() -> None:
    payload = mapped("PostToolUse.spawn_agent")
    assert payload["tool_name"] == "spawn_agent"
    assert payload["tool_response"] == {
        "agent_id": "01a23f3b-3411-7392-afb8-396b664cee30",
        "nickname": "Hume",
    }
    assert extract_observation(payload).title == "Used spawn_agent"
    image = mapped("PostToolUse.Bash", tool_name="view_image", tool_input={"path": "shot.png"})
    assert (image["tool_name"], image["tool_input"]) == ("Read", {"file_path": "shot.png"})


def test_memqs_own_tools_are_skipped() -> None:
    payload = mapped("PostToolUse.mcp__memq__search")
    assert payload["tool_name"] == "mcp__memq__search"
    assert is_skipped(payload, DEFAULT_SKIP_TOOLS)
    assert not is_skipped(mapped("PostToolUse.Bash"), DEFAULT_SKIP_TOOLS)


def test_an_interrupted_turn_takes_its_reply_from_the_transcript_when_there_is_one(
    tmp_path: Path,
) -> None:
    turn = fixture("Interrupt")["turn_id"]
    transcript = tmp_path / "rollout.jsonl"
    body = {"type": "task_complete", "turn_id": turn, "last_agent_message": "Stopped halfway."}
    line = {"type": "event_msg", "payload": body}
    transcript.write_text("not json\n" + json.dumps(line) + "\n")
    payload = mapped("Interrupt", transcript_path=str(transcript))
    CODEX.complete_turn(payload)
    assert payload["last_assistant_message"] == "Stopped halfway."
    stop = mapped("Stop", transcript_path=str(transcript))
    CODEX.complete_turn(stop)
    assert stop["last_assistant_message"].startswith("Done. The tool ran")  # its own wins


def test_replies_follow_codexs_output_schemas() -> None:
    """hookSpecificOutput with hookEventName and additionalContext only (the schemas'
    additionalProperties is false); nothing for the events that take no context."""
    for event in ("SessionStart", "UserPromptSubmit"):
        reply = json.loads(CODEX.reply(event, "memory") or "")
        assert reply == {
            "hookSpecificOutput": {"hookEventName": event, "additionalContext": "memory"}
        }
    for event in ("PostToolUse", "Stop", "SessionEnd"):
        assert CODEX.reply(event, "memory") is None
    notice = json.loads(CODEX.notice("SessionStart", "damaged\n") or "")
    assert notice["systemMessage"] == "damaged"
    assert set(notice) == {"systemMessage", "hookSpecificOutput"}
    assert CODEX.notice("Stop", "x") is None


# -- the installer's pure parts ----------------------------------------------------------------


def test_the_fragment_subscribes_memqs_events_with_codexs_timeouts() -> None:
    hooks = codex_hooks_fragment(COMMAND)["hooks"]
    assert list(hooks) == [
        "SessionStart",
        "UserPromptSubmit",
        "PostToolUse",
        "Stop",
        "Interrupt",
        "SessionEnd",
    ]
    assert hooks["PostToolUse"][0]["matcher"] == "*"
    assert "matcher" not in hooks["Stop"][0]
    timeouts = {event: groups[0]["hooks"][0]["timeout"] for event, groups in hooks.items()}
    assert timeouts["SessionEnd"] == timeouts["Interrupt"] == 3
    assert timeouts["Stop"] == 10
    with pytest.raises(InstallError):
        codex_hooks_fragment("/usr/bin/other-tool")


def test_trust_hashes_are_the_ones_codex_reports() -> None:
    """Values that ``codex app-server``'s hooks/list gave as currentHash (0.171.0) for these
    handlers: SessionEnd's timeout is hashed as clamped to 3 s; UserPromptSubmit's matcher
    is ignored."""
    command = "/venv/bin/memq hook --assistant codex"
    entry = {"type": "command", "command": command, "timeout": 10}
    assert trust_hash("PostToolUse", entry, "*") == (
        "sha256:89701c5f34541443219d2eb16867837d34d8a24f63ffdd6b8af45b58fd7d78ca"
    )
    assert trust_hash("SessionStart", entry, None) == (
        "sha256:9015beff5f0d78734727c5977cf8a4e8cf022d9d0711612ecf4f2c4572183158"
    )
    assert trust_hash("SessionEnd", entry, None) == (
        "sha256:e1bbc3b6a8828c705cc04241697478a4c22f8f959a5d68036d8f073b4f0280f0"
    )
    assert trust_hash("Interrupt", entry, None) == (
        "sha256:c77a94886ef0f597f9386bc160d5fad447af5b8e7ecb2a90638892bac84b8bd2"
    )
    assert trust_hash("UserPromptSubmit", entry, "x") == (
        "sha256:d353f7934fe40078206c22aa3532d2de7cfb673062f15e4612837ae83487fee9"
    )
    assert snake_case("UserPromptSubmit") == "user_prompt_submit"


def test_memqs_handlers_are_found_with_their_places() -> None:
    config = {
        "hooks": {
            "Stop": [
                {"hooks": [{"type": "command", "command": "notify-send done"}]},
                {
                    "hooks": [
                        {"type": "command", "command": "true"},
                        {"type": "command", "command": COMMAND},
                    ]
                },
            ]
        }
    }
    (handler,) = memq_handlers(config)
    assert (handler.event, handler.group, handler.index) == ("Stop", 1, 1)
    assert handler.key(Path("/h/hooks.json")) == "/h/hooks.json:stop:1:1"


ORIGINAL = """# mine
model = "o3"  # a comment

[projects."/work/p"]
trust_level = "trusted"

[hooks.state."/elsewhere/hooks.json:stop:0:0"]
trusted_hash = "sha256:theirs"
"""


def test_tables_are_appended_replaced_and_removed_leaving_the_rest_as_it_was() -> None:
    server = {"command": "/venv/bin/memq", "args": ["mcp"], "env": {"MEMQ_HOME": "/h"}}
    key = ("hooks", "state", "/u/.codex/hooks.json:stop:0:0")
    added = edit_tables(ORIGINAL, {("mcp_servers", "memq"): server, key: {"trusted_hash": "a"}})
    assert added.startswith(ORIGINAL)
    parsed = tomllib.loads(added)
    assert parsed["mcp_servers"]["memq"] == server
    assert parsed["hooks"]["state"]["/u/.codex/hooks.json:stop:0:0"] == {"trusted_hash": "a"}
    replaced = edit_tables(added, {key: {"trusted_hash": "b"}})
    assert replaced == added.replace('"a"', '"b"')
    removed = edit_tables(replaced, {("mcp_servers", "memq"): None, key: None})
    assert removed == ORIGINAL


def test_a_table_memq_cannot_edit_by_its_lines_is_refused() -> None:
    inline = 'mcp_servers = { memq = { command = "/venv/bin/memq", args = ["mcp"] } }\n'
    with pytest.raises(InstallError, match="cannot edit"):
        edit_tables(inline, {("mcp_servers", "memq"): {"command": "x", "args": []}})
    with pytest.raises(InstallError, match="not valid TOML"):
        edit_tables("a = \n", {})
