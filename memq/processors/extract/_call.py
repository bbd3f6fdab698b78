"""A hook payload's tool call, its fields checked for their types before any rule reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from memq.events import HookEvent
from memq.exceptions import InvalidInputError
from memq.processors.extract._text import integer, relative_path


@dataclass(frozen=True)
class ToolCall:
    """The parts of a PostToolUse / PostToolUseFailure payload that rules look at."""

    tool: str
    input: Mapping[str, Any]
    response: Any
    cwd: str | None
    failed: bool
    error: str

    def text(self, key: str) -> str:
        """``tool_input[key]`` when it is a string, else ''."""
        value = self.input.get(key)
        return value if isinstance(value, str) else ""

    def number(self, key: str) -> int | None:
        """``tool_input[key]`` when it is an integer."""
        return integer(self.input.get(key))

    def path(self, *keys: str) -> str:
        """The first of ``tool_input[keys]`` that is a non-empty string, made relative to
        the working directory when it lies inside it; '' when there is none."""
        for key in keys:
            value = self.text(key).strip()
            if value:
                return relative_path(value, self.cwd)
        return ""

    def response_field(self, key: str) -> Any:
        """``tool_response[key]`` when the response is an object."""
        return self.response.get(key) if isinstance(self.response, Mapping) else None

    def response_text(self, key: str) -> str:
        """``tool_response[key]`` when it is a string, else ''."""
        value = self.response_field(key)
        return value if isinstance(value, str) else ""


def tool_call_payload(payload: Any) -> Mapping[str, Any]:
    """``payload`` when it is a JSON object; else ``InvalidInputError``: without one there
    is no tool call to describe (every processor refuses it alike)."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"an observation payload must be a JSON object, not {type(payload).__name__}"
        )
    return payload


def tool_call(payload: Any) -> ToolCall:
    """The tool call in ``payload``; ``InvalidInputError`` when it is not a JSON object."""
    fields = tool_call_payload(payload)
    tool = fields.get("tool_name")
    tool_input = fields.get("tool_input")
    cwd = fields.get("cwd")
    error = fields.get("error")
    return ToolCall(
        tool=tool.strip() if isinstance(tool, str) else "",
        input=tool_input if isinstance(tool_input, Mapping) else {},
        response=fields.get("tool_response"),
        cwd=cwd if isinstance(cwd, str) and cwd else None,
        failed=fields.get("hook_event_name") == HookEvent.POST_TOOL_USE_FAILURE,
        error=error if isinstance(error, str) else "",
    )
