"""What every assistant's adapter does: turn its hook payload into memq's, and memq's
context into the reply it reads.

memq's own payload is Claude Code's shape (the first assistant memq served), so the queue,
the processors and the memory read one shape whatever sent it:

- ``hook_event_name``: one of ``memq.events.HookEvent`` for what memq subscribes to
  (SessionStart, UserPromptSubmit, PostToolUse, PostToolUseFailure, Stop, SessionEnd), or the
  assistant's own name for anything else (kept in the queue as "unsubscribed");
- ``session_id``, ``cwd``, ``transcript_path`` (may be absent or null), ``prompt``,
  ``tool_name`` / ``tool_input`` / ``tool_response`` / ``tool_use_id`` in Claude Code's
  names where a tool has a Claude Code twin (``run_shell_command`` becomes ``Bash`` with
  ``tool_input.command``), ``last_assistant_message`` for a turn's end;
- ``memq_assistant``: the adapter's ``name`` (absent means Claude Code), which makes the
  session key ``<name>:<session_id>``;
- ``memq_native``: what the mapping replaced (the assistant's event name, tool name, ...), so
  nothing the assistant said is lost.

Standard library only, and cheap: adapters run in ``memq hook`` on every tool call.
"""

from __future__ import annotations

import json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

ASSISTANT_FIELD: Final = "memq_assistant"
NATIVE_FIELD: Final = "memq_native"


class Adapter:
    """One assistant's mapping. Subclasses set the names and override what differs."""

    name: str = ""  # the session key's prefix, e.g. "codex"
    label: str = ""  # for people, e.g. "Codex CLI"

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        """memq's payload for one of the assistant's hook payloads (``event``: the event
        name given on ``memq hook``'s command line, which wins over the payload's).

        The payload may be changed in place and returned. Raises ``InvalidEventError`` for
        a payload that names no event or no session."""
        raise NotImplementedError

    def memq_event(self, native: str) -> str:
        """memq's name (a ``HookEvent``) for one of the assistant's event names; the name
        itself for an event memq does not map."""
        return native

    def complete_turn(self, payload: dict[str, Any]) -> None:
        """Give memq's Stop payload the turn's last prompt (``last_user_prompt``) and reply
        (``last_assistant_message``) where the payload lacks them and the assistant keeps
        them somewhere the hook can read (its transcript). By default nothing."""

    def reply(self, event: str, context: str) -> str | None:
        """What the hook prints so that the assistant takes ``context`` (memq's text for a
        mapped ``event``: SessionStart's memory, a prompt's recall); None where this
        assistant takes no context for that event."""
        raise NotImplementedError

    def notice(self, event: str, text: str) -> str | None:
        """What the hook prints to tell the person something at ``event`` (a damaged
        database at SessionStart): by default the same as context."""
        return self.reply(event, text)


def mark(payload: dict[str, Any], adapter: Adapter, native: dict[str, Any]) -> dict[str, Any]:
    """``payload`` tagged with its assistant, and what the mapping replaced kept under
    ``memq_native`` (only the fields that differ; an empty dict adds nothing)."""
    payload[ASSISTANT_FIELD] = adapter.name
    kept = {key: value for key, value in native.items() if value is not None}
    if kept:
        payload[NATIVE_FIELD] = kept
    return payload


def hook_specific_output(event: str, context: str) -> str:
    """The JSON reply Claude Code, Codex CLI and Gemini CLI all read context from:
    ``{"hookSpecificOutput": {"hookEventName": event, "additionalContext": context}}``."""
    output = {"hookEventName": event, "additionalContext": context}
    return json.dumps({"hookSpecificOutput": output})
