"""Claude Code: memq's payload is its payload, so the adapter only places the event name.

SessionStart's context is printed as plain text (Claude Code adds a SessionStart hook's stdout
to the context); a prompt's recall as ``hookSpecificOutput.additionalContext``.
"""

from __future__ import annotations

from memq.assistants.base import Adapter, hook_specific_output
from memq.events import HookEvent

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final


class ClaudeCode(Adapter):
    name = "claude-code"
    label = "Claude Code"

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        if event:
            payload["hook_event_name"] = event  # the daemon must route it as the hook does
        return payload

    def complete_turn(self, payload: dict[str, Any]) -> None:
        """The payload's own ``last_assistant_message`` when present, else the transcript's
        tail (``memq.hooks.transcript``); the last user prompt from the transcript."""
        path = payload.get("transcript_path")
        if not isinstance(path, str) or not path:
            return
        has_reply = isinstance(payload.get("last_assistant_message"), str)
        if "last_user_prompt" in payload and has_reply:
            return
        from memq.hooks.transcript import last_exchange

        exchange = last_exchange(path)
        if "last_user_prompt" not in payload and exchange.user_prompt:
            payload["last_user_prompt"] = exchange.user_prompt
        if not has_reply and exchange.assistant_message:
            payload["last_assistant_message"] = exchange.assistant_message

    def reply(self, event: str, context: str) -> str | None:
        if event == HookEvent.SESSION_START:
            return context
        if event == HookEvent.USER_PROMPT_SUBMIT:
            return hook_specific_output(event, context)
        return None


ADAPTER: Final = ClaudeCode()
