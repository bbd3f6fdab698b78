"""The frame every assistant's adapter plugs into: the registry, ``memq hook``'s arguments,
the session key a payload's ``memq_assistant`` makes, and the hook command install writes."""

from __future__ import annotations

import json
from typing import Any

import pytest

from memq import assistants
from memq.assistants.base import ASSISTANT_FIELD, NATIVE_FIELD, Adapter, mark
from memq.events import route_event
from memq.exceptions import InvalidEventError, UnknownAssistantError
from memq.hooks.install import hooks_fragment, is_memq_command, memq_hook_command
from memq.hooks.run import parse_arguments, printed_context


class TestRegistry:
    @pytest.mark.parametrize(
        ("typed", "name"),
        [
            ("claude-code", "claude-code"),
            ("claude", "claude-code"),
            ("Codex", "codex"),
            ("gemini", "gemini-cli"),
            (" gemini-cli ", "gemini-cli"),
            ("cursor", "cursor"),
            ("opencode", "opencode"),
        ],
    )
    def test_names_and_aliases(self, typed: str, name: str) -> None:
        assert assistants.canonical_name(typed) == name

    def test_an_unknown_assistant_names_the_known_ones(self) -> None:
        with pytest.raises(UnknownAssistantError, match=r"'copilot'.*claude-code, codex"):
            assistants.canonical_name("copilot")

    def test_the_claude_code_adapter_is_the_default(self) -> None:
        adapter = assistants.adapter()
        assert (adapter.name, adapter.label) == ("claude-code", "Claude Code")


class TestHookArguments:
    @pytest.mark.parametrize(
        ("argv", "parsed"),
        [
            ([], (None, None, None)),
            (["Stop"], ("Stop", None, None)),
            (["--assistant", "codex"], (None, "codex", None)),
            (["--assistant=gemini", "AfterTool"], ("AfterTool", "gemini-cli", None)),
            (["Stop", "--assistant", "claude"], ("Stop", "claude-code", None)),
        ],
    )
    def test_event_and_assistant_in_any_order(
        self, argv: list[str], parsed: tuple[str | None, str | None, str | None]
    ) -> None:
        assert parse_arguments(argv) == parsed

    @pytest.mark.parametrize(
        ("argv", "problem"),
        [
            (["--assistant"], "--assistant needs a name"),
            (["--assistant", "copilot"], "unknown assistant 'copilot'"),
            (["--verbose"], "unknown option '--verbose'"),
            (["Stop", "SessionEnd"], "more than one event"),
        ],
    )
    def test_a_problem_is_returned_not_raised(self, argv: list[str], problem: str) -> None:
        """The event still goes out (as Claude Code's); the problem goes to hook.log."""
        *_, found = parse_arguments(argv)
        assert found is not None
        assert problem in found


def payload(**fields: Any) -> dict[str, Any]:
    return {"hook_event_name": "UserPromptSubmit", "session_id": "s-1", "prompt": "hi", **fields}


class TestSessionKey:
    def test_a_payload_without_an_assistant_is_claude_codes(self) -> None:
        assert route_event(payload()).session_key == "claude-code:s-1"

    @pytest.mark.parametrize("name", ["codex", "gemini-cli", "cursor", "opencode"])
    def test_the_assistant_field_makes_the_key(self, name: str) -> None:
        route = route_event(payload(**{ASSISTANT_FIELD: name}))
        assert (route.session_key, route.kind) == (f"{name}:s-1", "prompt")

    def test_an_unknown_assistant_is_refused(self) -> None:
        with pytest.raises(InvalidEventError, match=ASSISTANT_FIELD):
            route_event(payload(**{ASSISTANT_FIELD: "copilot"}))

    def test_a_mistyped_assistant_is_refused(self) -> None:
        with pytest.raises(InvalidEventError, match="must be a string"):
            route_event(payload(**{ASSISTANT_FIELD: 7}))


class Native(Adapter):
    name = "codex"
    label = "Test"


class TestMark:
    def test_mark_keeps_only_what_the_mapping_replaced(self) -> None:
        marked = mark({"x": 1}, Native(), {"event": "AfterTool", "tool_name": None})
        assert marked == {"x": 1, ASSISTANT_FIELD: "codex", NATIVE_FIELD: {"event": "AfterTool"}}

    def test_nothing_replaced_adds_no_native_field(self) -> None:
        assert NATIVE_FIELD not in mark({}, Native(), {})


class TestClaudeCodeReplies:
    def test_session_start_is_plain_text(self) -> None:
        assert printed_context("SessionStart", "notes") == "notes"

    def test_a_prompts_recall_is_hook_specific_output(self) -> None:
        printed = printed_context("UserPromptSubmit", "notes")
        assert printed is not None
        assert json.loads(printed) == {
            "hookSpecificOutput": {
                "hookEventName": "UserPromptSubmit",
                "additionalContext": "notes",
            }
        }

    def test_other_events_print_nothing(self) -> None:
        assert printed_context("PostToolUse", "notes") is None


class TestHookCommand:
    def test_claude_codes_command_names_no_assistant(self) -> None:
        command = memq_hook_command("/venv/bin/python", assistant="claude-code")
        assert "--assistant" not in command
        assert is_memq_command(command)

    def test_another_assistants_command_names_it(self) -> None:
        command = memq_hook_command("/venv/bin/python", home="/h", assistant="gemini-cli")
        assert command.endswith("hook --assistant gemini-cli")
        assert is_memq_command(command)

    @pytest.mark.parametrize(
        "command",
        [
            "/venv/bin/memq hook --assistant copilot",
            "/venv/bin/memq hook --assistant",
            "/venv/bin/memq hook codex",
            "/venv/bin/memq hook --verbose codex",
        ],
    )
    def test_other_words_are_not_memqs(self, command: str) -> None:
        assert not is_memq_command(command)

    def test_a_fragment_for_other_events_and_units(self) -> None:
        command = "/venv/bin/memq hook --assistant gemini-cli"
        fragment = hooks_fragment(
            command,
            timeout=10_000,
            events=("BeforeAgent", "AfterTool"),
            tool_events=("AfterTool",),
            extra={"name": "memq"},
        )
        entry = {"name": "memq", "type": "command", "command": command, "timeout": 10_000}
        assert fragment == {
            "hooks": {
                "BeforeAgent": [{"hooks": [entry]}],
                "AfterTool": [{"matcher": "*", "hooks": [entry]}],
            }
        }
