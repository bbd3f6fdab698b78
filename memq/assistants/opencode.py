"""OpenCode: what memq's plugin (``memq/assistants/opencode_plugin.js``) sends, mapped into
memq's payload.

OpenCode has no command hooks; its plugins are JavaScript modules whose hooks receive OpenCode's
own objects (https://opencode.ai/docs/plugins, ``@opencode-ai/plugin``'s ``Hooks`` type).
memq's plugin passes them on nearly as they are, to ``memq hook --assistant opencode``:

- ``{"type": "session.created" | "session.deleted", "properties": {"info": Session}}``
  -> SessionStart / SessionEnd (the session's ``id``, ``directory``);
- ``{"type": "chat.message", "input": {"sessionID", ...}, "output": {"message": UserMessage,
  "parts": [TextPart, ...]}}`` -> UserPromptSubmit, the prompt its text parts, the message's
  ``id`` its dedupe key;
- ``{"type": "tool.execute.after", "input": {"tool", "sessionID", "callID", "args"},
  "output": {"title", "output", "metadata"}}`` -> PostToolUse, the tool as its Claude Code twin
  (``bash`` -> ``Bash``, ``edit`` -> ``Edit`` with ``file_path``/``old_string``/``new_string``);
- ``{"type": "message.part.updated", "properties": {"part": ToolPart}}`` of a tool whose state
  is ``error`` -> PostToolUseFailure;
- ``{"type": "session.idle", "id": "evt_...", "properties": {"sessionID"}}`` -> Stop, with
  the plugin's ``last_user_prompt`` and ``last_assistant_message`` of the turn (OpenCode's
  event ``id``, where it gives one, makes a resend a duplicate).

Every payload also carries the plugin's ``directory`` (the project). Anything else keeps its
own type as its event name. The hook's reply is the context as plain text: the plugin puts it
into the system prompt (``experimental.chat.system.transform``).

Standard library only.
"""

from __future__ import annotations

from memq.assistants.base import Adapter, mark
from memq.env import MCP_SERVER_NAME
from memq.events import HookEvent
from memq.exceptions import InvalidEventError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

_EVENTS: Final = {
    "session.created": HookEvent.SESSION_START,
    "chat.message": HookEvent.USER_PROMPT_SUBMIT,
    "tool.execute.after": HookEvent.POST_TOOL_USE,
    "message.part.updated": HookEvent.POST_TOOL_USE_FAILURE,
    "session.idle": HookEvent.STOP,
    "session.deleted": HookEvent.SESSION_END,
}
# OpenCode's built-in tools with a Claude Code twin.
_TOOLS: Final = {
    "bash": "Bash",
    "read": "Read",
    "write": "Write",
    "edit": "Edit",
    "multiedit": "MultiEdit",
    "glob": "Glob",
    "grep": "Grep",
    "list": "LS",
    "webfetch": "WebFetch",
    "websearch": "WebSearch",
    "task": "Task",
    "todowrite": "TodoWrite",
    "todoread": "TodoRead",
}
# OpenCode's camelCase argument names and Claude Code's.
_ARGUMENTS: Final = {
    "filePath": "file_path",
    "oldString": "old_string",
    "newString": "new_string",
    "replaceAll": "replace_all",
}
# OpenCode names an MCP server's tools <server>_<tool>.
_MEMQ_TOOL_PREFIX: Final = f"{MCP_SERVER_NAME}_"


class OpenCode(Adapter):
    name = "opencode"
    label = "OpenCode"

    def memq_event(self, native: str) -> str:
        return _EVENTS.get(native, native)

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        native = event or payload.get("type") or payload.get("hook_event_name")
        if not isinstance(native, str) or not native:
            raise InvalidEventError("an OpenCode plugin payload needs its type")
        session = _session_id(payload)
        if not session:
            raise InvalidEventError("an OpenCode plugin payload needs a session id")
        mapped = self.memq_event(native)
        payload["hook_event_name"] = mapped
        payload["session_id"] = session
        directory = payload.get("directory")
        info = _object(_object(payload.get("properties")).get("info"))
        cwd = info.get("directory") if isinstance(info.get("directory"), str) else directory
        if isinstance(cwd, str) and cwd:
            payload.setdefault("cwd", cwd)
        kept: dict[str, Any] = {"event": native}
        if mapped == HookEvent.USER_PROMPT_SUBMIT:
            _prompt(payload)
        elif native == "tool.execute.after":
            kept.update(_tool_after(payload))
        elif native == "message.part.updated":
            kept.update(_tool_failed(payload))
        if mapped in (HookEvent.SESSION_START, HookEvent.SESSION_END):
            # A session is created and deleted once: a resend is the same event.
            payload.setdefault("memq_event_id", session)
        elif isinstance(payload.get("id"), str) and payload["id"]:
            # OpenCode's own event id (evt_...): a resend of the event is recognised.
            payload.setdefault("memq_event_id", payload["id"])
        return mark(payload, self, kept)

    def reply(self, event: str, context: str) -> str | None:
        if event in (HookEvent.SESSION_START, HookEvent.USER_PROMPT_SUBMIT):
            return context  # the plugin adds it to the system prompt as it is
        return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _session_id(payload: dict[str, Any]) -> str | None:
    properties = _object(payload.get("properties"))
    candidates = (
        payload.get("session_id"),
        _object(properties.get("info")).get("id"),
        properties.get("sessionID"),
        _object(properties.get("part")).get("sessionID"),
        _object(payload.get("input")).get("sessionID"),
    )
    return next((c for c in candidates if isinstance(c, str) and c), None)


def _prompt(payload: dict[str, Any]) -> None:
    """chat.message: the prompt is its text parts the user wrote (not OpenCode's own)."""
    output = _object(payload.get("output"))
    parts = output.get("parts")
    texts = [
        part["text"]
        for part in (parts if isinstance(parts, list) else [])
        if isinstance(part, dict)
        and part.get("type") == "text"
        and isinstance(part.get("text"), str)
        and not part.get("synthetic")
        and not part.get("ignored")
    ]
    payload.setdefault("prompt", "\n".join(texts))
    message_id = _object(payload.get("input")).get("messageID") or _object(
        output.get("message")
    ).get("id")
    if isinstance(message_id, str) and message_id:
        payload.setdefault("prompt_id", message_id)


def _tool_name(native: str) -> str:
    if native.startswith(_MEMQ_TOOL_PREFIX):
        return f"mcp__{MCP_SERVER_NAME}__{native.removeprefix(_MEMQ_TOOL_PREFIX)}"
    return _TOOLS.get(native, native)


def _arguments(args: Any) -> Any:
    """OpenCode's tool arguments in Claude Code's names (``filePath`` -> ``file_path``)."""
    if isinstance(args, list):
        return [_arguments(item) for item in args]
    if not isinstance(args, dict):
        return args
    return {_ARGUMENTS.get(key, key): _arguments(value) for key, value in args.items()}


def _tool_after(payload: dict[str, Any]) -> dict[str, Any]:
    """tool.execute.after: ``input.tool``/``args``/``callID``, ``output.output``/``metadata``."""
    given = _object(payload.get("input"))
    output = _object(payload.get("output"))
    native = given.get("tool")
    tool = _tool_name(native) if isinstance(native, str) else ""
    payload["tool_name"] = tool
    payload["tool_input"] = _arguments(given.get("args"))
    if isinstance(given.get("callID"), str):
        payload["tool_use_id"] = given["callID"]
    metadata = _object(output.get("metadata"))
    text = output.get("output")
    response: dict[str, Any] = {}
    if tool == "Bash":
        response["stdout"] = text if isinstance(text, str) else metadata.get("output", "")
        exit_code = metadata.get("exit")
        if isinstance(exit_code, int) and not isinstance(exit_code, bool):
            response["exit_code"] = exit_code
    else:
        response["output"] = text if isinstance(text, str) else ""
        if isinstance(output.get("title"), str):
            response["title"] = output["title"]
    payload["tool_response"] = response
    return {"tool_name": native if tool != native else None}


def _tool_failed(payload: dict[str, Any]) -> dict[str, Any]:
    """A tool part whose state is ``error``: the call failed (OpenCode runs no
    tool.execute.after then)."""
    part = _object(_object(payload.get("properties")).get("part"))
    state = _object(part.get("state"))
    if part.get("type") != "tool" or state.get("status") != "error":
        # Only a failed tool's part means something to memq: anything else stays native.
        payload["hook_event_name"] = "message.part.updated"
        return {"event": None}
    native = part.get("tool")
    tool = _tool_name(native) if isinstance(native, str) else ""
    payload["tool_name"] = tool
    payload["tool_input"] = _arguments(state.get("input"))
    if isinstance(part.get("callID"), str):
        payload["tool_use_id"] = part["callID"]
    error = state.get("error")
    payload["error"] = error if isinstance(error, str) else "failed"
    return {"tool_name": native if tool != native else None}


ADAPTER: Final = OpenCode()
