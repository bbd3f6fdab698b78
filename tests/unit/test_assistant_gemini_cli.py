"""Gemini CLI's adapter: every captured (and documented) hook payload in memq's shape, the
observation the offline extractor makes of its tool calls, its replies and the turn's text."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from memq.assistants import adapter, gemini_cli
from memq.assistants.base import ASSISTANT_FIELD, NATIVE_FIELD
from memq.assistants.gemini_cli import ADAPTER, last_reply
from memq.env import DEFAULT_SKIP_TOOLS
from memq.events import route_event
from memq.exceptions import InvalidEventError
from memq.hooks.installers import installer
from memq.hooks.installers.gemini_cli import has_comments
from memq.privacy import is_skipped
from memq.processors.extract._call import tool_call
from memq.processors.extract.observations import describe

FIXTURES = Path(__file__).parents[1] / "fixtures" / "gemini-cli"
SESSION = "60adc496-fd57-4318-9ddb-8987c1300a2a"


def native(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


def mapped(name: str) -> dict[str, Any]:
    return ADAPTER.to_memq(native(name))


# fixture -> (memq's event, kind)
EXPECTED = {
    "SessionStart": ("SessionStart", "event"),
    "SessionStart.resume": ("SessionStart", "event"),
    "BeforeAgent": ("UserPromptSubmit", "prompt"),
    "AfterTool.run_shell_command": ("PostToolUse", "observation"),
    "AfterTool.run_shell_command.fail": ("PostToolUseFailure", "observation"),
    "AfterTool.write_file": ("PostToolUse", "observation"),
    "AfterTool.replace": ("PostToolUse", "observation"),
    "AfterTool.read_file": ("PostToolUse", "observation"),
    "AfterTool.read_file.error": ("PostToolUseFailure", "observation"),
    "AfterTool.glob": ("PostToolUse", "observation"),
    "AfterTool.mcp_memq_search": ("PostToolUse", "observation"),
    "AfterAgent": ("Stop", "summarize"),
    "SessionEnd": ("SessionEnd", "session_end"),
    "BeforeTool": ("BeforeTool", "unsubscribed"),
    "BeforeModel": ("BeforeModel", "unsubscribed"),
    "AfterModel": ("AfterModel", "unsubscribed"),
    "BeforeToolSelection": ("BeforeToolSelection", "unsubscribed"),
    "PreCompress.auto": ("PreCompress", "unsubscribed"),
    "PreCompress.manual": ("PreCompress", "unsubscribed"),
    "Notification": ("Notification", "unsubscribed"),
}


def test_every_fixture_is_expected() -> None:
    assert sorted(EXPECTED) == sorted(p.stem for p in FIXTURES.glob("*.json"))


class TestEvents:
    @pytest.mark.parametrize("name", sorted(EXPECTED))
    def test_event_session_kind_and_dedupe_key(self, name: str) -> None:
        payload = mapped(name)
        route = route_event(payload)
        event, kind = EXPECTED[name]
        raw = native(name)
        assert (route.event, route.kind) == (event, kind)
        assert route.session_key == f"gemini-cli:{raw['session_id']}"
        assert payload[ASSISTANT_FIELD] == "gemini-cli"
        assert route.dedupe_key is not None
        assert route.dedupe_key.startswith(f"{event}:{raw['timestamp']}/")
        if event != raw["hook_event_name"]:
            assert payload[NATIVE_FIELD]["event"] == raw["hook_event_name"]

    def test_the_registry_finds_the_adapter_by_either_name(self) -> None:
        assert adapter("gemini") is ADAPTER
        assert (ADAPTER.name, ADAPTER.label) == ("gemini-cli", "Gemini CLI")

    def test_the_command_lines_event_wins(self) -> None:
        payload = ADAPTER.to_memq(native("BeforeTool"), "AfterAgent")
        assert payload["hook_event_name"] == "Stop"

    @pytest.mark.parametrize("missing", ["hook_event_name", "session_id"])
    def test_a_payload_without_event_or_session_is_refused(self, missing: str) -> None:
        payload = native("BeforeAgent")
        del payload[missing]
        with pytest.raises(InvalidEventError, match=missing):
            ADAPTER.to_memq(payload)

    def test_the_prompt_is_the_users(self) -> None:
        assert mapped("BeforeAgent")["prompt"] == "create hello.txt"


class TestDedupe:
    def test_a_resent_firing_has_the_same_key(self) -> None:
        """Gemini gives every hook of one firing the same payload: a resend (or memq's
        hook registered at user and project scope) is one event."""
        first = route_event(mapped("AfterTool.run_shell_command")).dedupe_key
        again = route_event(mapped("AfterTool.run_shell_command")).dedupe_key
        assert first == again

    def test_two_identical_calls_of_a_turn_are_two_events(self) -> None:
        later = native("AfterTool.run_shell_command")
        later["timestamp"] = "2026-12-04T04:10:02.911Z"
        keys = {
            route_event(mapped("AfterTool.run_shell_command")).dedupe_key,
            route_event(ADAPTER.to_memq(later)).dedupe_key,
        }
        assert len(keys) == 2

    def test_calls_fired_in_the_same_millisecond_differ_by_their_input(self) -> None:
        other = native("AfterTool.run_shell_command")
        other["tool_input"]["command"] = "ls"
        first = route_event(mapped("AfterTool.run_shell_command")).dedupe_key
        assert route_event(ADAPTER.to_memq(other)).dedupe_key != first

    def test_without_a_timestamp_the_hook_draws_the_id(self) -> None:
        payload = native("BeforeAgent")
        del payload["timestamp"]
        assert "memq_event_id" not in ADAPTER.to_memq(payload)


class TestTools:
    @pytest.mark.parametrize(
        ("name", "tool", "fields"),
        [
            ("AfterTool.run_shell_command", "Bash", {"command": "echo hello > hello.txt"}),
            (
                "AfterTool.write_file",
                "Write",
                {"file_path": "/home/dev/project/notes.txt", "content": "hello from write_file\n"},
            ),
            (
                "AfterTool.replace",
                "Edit",
                {"old_string": "hello from write_file", "new_string": "hello, world"},
            ),
            ("AfterTool.read_file", "Read", {"file_path": "/home/dev/project/notes.txt"}),
            ("AfterTool.glob", "Glob", {"pattern": "**/*.txt", "path": "/home/dev/project"}),
        ],
    )
    def test_claude_codes_twin_and_input_keys(
        self, name: str, tool: str, fields: dict[str, Any]
    ) -> None:
        payload = mapped(name)
        assert payload["tool_name"] == tool
        assert fields.items() <= payload["tool_input"].items()
        assert payload[NATIVE_FIELD]["tool_name"] == native(name)["tool_name"]

    def test_gemini_input_keys_are_kept_beside_the_twins(self) -> None:
        tool_input = mapped("AfterTool.read_file")["tool_input"]
        assert (tool_input["start_line"], tool_input["offset"], tool_input["limit"]) == (1, 1, 20)
        assert mapped("AfterTool.replace")["tool_input"]["instruction"] == "greet the world"

    @pytest.mark.parametrize(
        ("tool", "tool_input", "expected"),
        [
            ("list_directory", {"dir_path": "src"}, ("LS", "path", "src")),
            ("grep_search", {"pattern": "x", "include_pattern": "*.py"}, ("Grep", "glob", "*.py")),
            ("search_file_content", {"pattern": "x"}, ("Grep", "pattern", "x")),
            ("google_web_search", {"query": "sqlite wal"}, ("WebSearch", "query", "sqlite wal")),
            (
                "web_fetch",
                {"prompt": "Summarise https://example.com/a?b=1 please"},
                ("WebFetch", "url", "https://example.com/a?b=1"),
            ),
            ("replace", {"allow_multiple": True}, ("Edit", "replace_all", True)),
            ("run_shell_command", {"is_background": True}, ("Bash", "run_in_background", True)),
        ],
    )
    def test_other_twins(
        self, tool: str, tool_input: dict[str, Any], expected: tuple[Any, ...]
    ) -> None:
        payload = native("AfterTool.glob")
        payload.update(tool_name=tool, tool_input=tool_input)
        result = ADAPTER.to_memq(payload)
        twin, key, value = expected
        assert (result["tool_name"], result["tool_input"][key]) == (twin, value)

    def test_a_tool_without_a_twin_keeps_its_name(self) -> None:
        payload = native("AfterTool.glob")
        payload["tool_name"] = "update_topic"
        result = ADAPTER.to_memq(payload)
        assert result["tool_name"] == "update_topic"
        assert "tool_name" not in result[NATIVE_FIELD]

    def test_memqs_own_mcp_tools_are_named_as_claude_codes_and_skipped(self) -> None:
        payload = mapped("AfterTool.mcp_memq_search")
        assert payload["tool_name"] == "mcp__memq__search"
        assert is_skipped(payload, frozenset(DEFAULT_SKIP_TOOLS))

    @pytest.mark.parametrize(
        ("tool", "context", "name"),
        [
            ("mcp_memq_get_observations", None, "mcp__memq__get_observations"),
            ("mcp_github_list_issues", None, "mcp__github__list_issues"),
            (
                "mcp_my_server_do_it",
                {"server_name": "my_server", "tool_name": "do_it"},
                "mcp__my_server__do_it",
            ),
        ],
    )
    def test_mcp_tool_names(self, tool: str, context: dict[str, str] | None, name: str) -> None:
        payload = native("AfterTool.mcp_memq_search")
        payload["tool_name"] = tool
        payload.pop("mcp_context")
        if context is not None:
            payload["mcp_context"] = context
        assert ADAPTER.to_memq(payload)["tool_name"] == name


def observation(name: str) -> Any:
    return describe(tool_call(mapped(name)))


class TestObservations:
    def test_a_shell_command(self) -> None:
        found = observation("AfterTool.run_shell_command")
        assert found.title == "Ran `echo hello > hello.txt`"
        assert (found.command, found.exit_code, found.kind.value) == (
            "echo hello > hello.txt",
            0,
            "command",
        )
        assert "PGID" not in (found.excerpt or "")

    def test_a_failing_shell_command(self) -> None:
        payload = mapped("AfterTool.run_shell_command.fail")
        assert payload["error"] == "Exit code 3\nfailing"
        assert payload["tool_response"]["stdout"] == "failing"
        found = describe(tool_call(payload))
        assert found.title == "Ran `echo failing >&2; exit 3` (exit 3)"
        assert found.exit_code == 3
        assert found.facts[0] == "failed: failing"

    def test_a_new_file(self) -> None:
        found = observation("AfterTool.write_file")
        assert found.title == "Created notes.txt"
        assert found.files_modified == ("notes.txt",)
        assert found.excerpt == "hello from write_file"

    def test_an_edit_has_its_diff(self) -> None:
        found = observation("AfterTool.replace")
        assert found.title == "Edited notes.txt"
        assert found.files_modified == ("notes.txt",)
        assert "-hello from write_file" in (found.excerpt or "")
        assert "+hello, world" in (found.excerpt or "")
        assert "1 line added, 1 removed" in found.facts

    def test_a_read(self) -> None:
        found = observation("AfterTool.read_file")
        assert (found.title, found.files_read) == ("Read notes.txt", ("notes.txt",))
        assert "hello, world" in (found.excerpt or "")

    def test_a_tool_error_is_a_failure(self) -> None:
        payload = mapped("AfterTool.read_file.error")
        assert payload["error"] == "File not found: /home/dev/project/missing.txt"
        found = describe(tool_call(payload))
        assert found.title == "Read failed: missing.txt"

    def test_a_glob_counts_its_files(self) -> None:
        found = observation("AfterTool.glob")
        assert "2 files found" in found.facts


def shell(text: str) -> dict[str, Any]:
    payload = native("AfterTool.run_shell_command")
    payload["tool_response"] = {"llmContent": text, "returnDisplay": ""}
    return ADAPTER.to_memq(payload)


class TestShellOutput:
    def test_output_lines_that_look_like_sections_stay_output(self) -> None:
        payload = shell("Output: Error: not found\nExit Code: 2\nProcess Group PGID: 7")
        response = payload["tool_response"]
        assert (response["stdout"], response["exit_code"]) == ("Error: not found", 2)
        assert payload["hook_event_name"] == "PostToolUseFailure"

    def test_a_cancelled_command_is_interrupted(self) -> None:
        payload = shell("Command was cancelled by user before it could complete.")
        assert payload["tool_response"]["interrupted"] is True
        assert payload["hook_event_name"] == "PostToolUse"

    def test_a_signal(self) -> None:
        payload = shell("Output: (empty)\nSignal: 15\nProcess Group PGID: 9")
        assert payload["tool_response"]["signal"] == "15"
        assert payload["error"] == "signal 15"


class TestReplies:
    @pytest.mark.parametrize(
        ("event", "native_name"),
        [("SessionStart", "SessionStart"), ("UserPromptSubmit", "BeforeAgent")],
    )
    def test_context_is_hook_specific_output(self, event: str, native_name: str) -> None:
        """Plain text would only be shown to the person; the JSON reaches the model."""
        printed = ADAPTER.reply(event, "memq notes")
        assert printed is not None
        assert json.loads(printed) == {
            "hookSpecificOutput": {"hookEventName": native_name, "additionalContext": "memq notes"}
        }

    @pytest.mark.parametrize("event", ["PostToolUse", "Stop", "SessionEnd"])
    def test_nothing_for_other_events(self, event: str) -> None:
        assert ADAPTER.reply(event, "x") is None

    def test_a_notice_is_shown_and_given(self) -> None:
        printed = ADAPTER.notice("SessionStart", "memq is not recording\n")
        assert printed is not None
        shown = json.loads(printed)
        assert shown["systemMessage"] == "memq is not recording"
        assert shown["hookSpecificOutput"]["additionalContext"] == "memq is not recording\n"


CLEAN = (
    'Done. The tool ran; result: {"output": "<untrusted_context>\\nOutput: (empty)\\n'
    'Process Group PGID: 16542\\n</untrusted_context>"}'
)


class TestTurn:
    def stop(self, transcript: Path | str) -> dict[str, Any]:
        payload = mapped("AfterAgent")
        payload["transcript_path"] = str(transcript)
        ADAPTER.complete_turn(payload)
        return payload

    def test_the_prompt_and_the_garbled_reply_from_the_payload(self) -> None:
        payload = mapped("AfterAgent")
        assert payload["last_user_prompt"] == "create hello.txt"
        assert payload["last_assistant_message"] == native("AfterAgent")["prompt_response"]

    def test_the_transcripts_clean_reply_wins(self) -> None:
        payload = self.stop(FIXTURES / "transcript.jsonl")
        assert payload["last_assistant_message"] == CLEAN
        assert payload["last_assistant_message"] != native("AfterAgent")["prompt_response"]

    def test_an_unreadable_transcript_keeps_the_payloads(self, tmp_path: Path) -> None:
        payload = self.stop(tmp_path / "gone.jsonl")
        assert payload["last_assistant_message"] == native("AfterAgent")["prompt_response"]

    def test_a_reply_before_the_last_prompt_is_not_this_turns(self, tmp_path: Path) -> None:
        lines = (FIXTURES / "transcript.jsonl").read_text().splitlines()
        prompt = {"id": "u2", "type": "user", "content": [{"text": "next"}]}
        transcript = tmp_path / "t.jsonl"
        transcript.write_text("\n".join([*lines, json.dumps(prompt)]) + "\n")
        assert last_reply(str(transcript)) is None

    def test_a_tool_result_is_no_prompt(self, tmp_path: Path) -> None:
        """The function response written after the first reply does not end the search."""
        lines = (FIXTURES / "transcript.jsonl").read_text().splitlines()
        transcript = tmp_path / "t.jsonl"
        transcript.write_text("\n".join(lines[:-1]) + "\n")
        assert last_reply(str(transcript)) == "I'll create the file."

    def test_nothing_is_read_past_the_limit(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A reply further back than the limit is not looked for (nor a cut line parsed)."""
        size = len((FIXTURES / "transcript.jsonl").read_bytes())
        last = (FIXTURES / "transcript.jsonl").read_text().splitlines()[-1]
        monkeypatch.setattr(gemini_cli, "MAX_TRANSCRIPT_BYTES", len(last) // 2)
        assert last_reply(str(FIXTURES / "transcript.jsonl")) is None
        monkeypatch.setattr(gemini_cli, "MAX_TRANSCRIPT_BYTES", size)
        assert last_reply(str(FIXTURES / "transcript.jsonl")) == CLEAN

    def test_a_fifo_is_not_read(self, tmp_path: Path) -> None:
        fifo = tmp_path / "pipe"
        os.mkfifo(fifo)
        assert last_reply(str(fifo)) is None

    def test_a_half_written_last_line_is_skipped(self, tmp_path: Path) -> None:
        transcript = tmp_path / "t.jsonl"
        text = (FIXTURES / "transcript.jsonl").read_text()
        transcript.write_text(text + '{"id": "x", "type": "gemini", "content": "par')
        assert last_reply(str(transcript)) == CLEAN


def test_mapping_leaves_nothing_of_geminis_behind() -> None:
    """The native payload's own fields survive the mapping (only renamed ones move)."""
    raw = native("AfterAgent")
    payload = ADAPTER.to_memq(copy.deepcopy(raw))
    for key in ("prompt", "prompt_response", "stop_hook_active", "timestamp", "cwd"):
        assert payload[key] == raw[key]


class TestInstallerFragment:
    def test_hooks_in_geminis_shape_with_milliseconds(self) -> None:
        found = installer("gemini")
        command = "/venv/bin/memq hook --assistant gemini-cli"
        server = {"type": "stdio", "command": "/venv/bin/memq", "args": ["mcp"], "env": {}}
        fragment = found.fragment(command, server)
        assert list(fragment["hooks"]) == [
            "SessionStart",
            "BeforeAgent",
            "AfterTool",
            "AfterAgent",
            "SessionEnd",
        ]
        for event, groups in fragment["hooks"].items():
            (group,) = groups
            assert group.get("matcher") == ("*" if event == "AfterTool" else None)
            (entry,) = group["hooks"]
            assert entry == {
                "name": "memq",
                "type": "command",
                "command": command,
                "timeout": 10_000,
            }
        assert fragment["mcpServers"] == {"memq": server}

    @pytest.mark.parametrize(
        ("text", "commented"),
        [
            ('{"a": 1}', False),
            ('{"url": "http://x//y", "glob": "/*a*/"}', False),
            ('{\n  // mine\n  "a": 1\n}', True),
            ('{"a": /* pinned */ 1}', True),
            ('{"quote": "a \\" // b"}', False),
        ],
    )
    def test_comments_are_found_outside_strings_only(self, text: str, commented: bool) -> None:
        assert has_comments(text) is commented
