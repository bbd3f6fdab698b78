"""Cursor: its agent hooks (``hooks.json``) mapped into memq's payload.

Cursor runs each hook with JSON on stdin: the common fields ``conversation_id`` (the session),
``generation_id`` (one per user message), ``hook_event_name``, ``workspace_roots``,
``transcript_path``, plus each event's own (https://cursor.com/docs/hooks). memq maps:

- ``sessionStart`` -> SessionStart; its reply is ``{"additional_context": ...}``, which Cursor
  adds to the conversation's initial system context;
- ``beforeSubmitPrompt`` -> UserPromptSubmit (``prompt``); Cursor expects
  ``{"continue": true}`` back, and memq never says otherwise (a missing answer lets the
  prompt through too: hooks fail open);
- ``postToolUse`` / ``postToolUseFailure`` -> PostToolUse / PostToolUseFailure, the tool in
  Claude Code's names (``Shell`` -> ``Bash``, ``StrReplace`` -> ``Edit``, ...), its
  ``tool_output`` (a JSON string) parsed into ``tool_response``;
- ``afterShellExecution`` / ``afterFileEdit`` / ``afterMCPExecution`` -> PostToolUse too, for a
  Cursor without the generic tool hooks. ``memq install`` subscribes to the generic ones only:
  Cursor fires both for one shell call, and these carry no tool call id to tell them apart;
- ``stop`` -> Stop, ``sessionEnd`` -> SessionEnd. Anything else keeps its own name.

Standard library only.
"""

from __future__ import annotations

import json

from memq.assistants.base import Adapter, mark
from memq.events import HookEvent
from memq.exceptions import InvalidEventError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final

_EVENTS: Final = {
    "sessionStart": HookEvent.SESSION_START,
    "beforeSubmitPrompt": HookEvent.USER_PROMPT_SUBMIT,
    "postToolUse": HookEvent.POST_TOOL_USE,
    "postToolUseFailure": HookEvent.POST_TOOL_USE_FAILURE,
    "afterShellExecution": HookEvent.POST_TOOL_USE,
    "afterFileEdit": HookEvent.POST_TOOL_USE,
    "afterMCPExecution": HookEvent.POST_TOOL_USE,
    "stop": HookEvent.STOP,
    "sessionEnd": HookEvent.SESSION_END,
}
# What memq install subscribes to (see the module's docstring for the tool events chosen).
SUBSCRIBED: Final = (
    "sessionStart",
    "beforeSubmitPrompt",
    "postToolUse",
    "postToolUseFailure",
    "stop",
    "sessionEnd",
)
# Cursor's tools with a Claude Code twin, and the input keys each spells its way.
_TOOLS: Final = {
    "Shell": "Bash",
    "Read": "Read",
    "Write": "Write",
    "StrReplace": "Edit",
    "Edit": "Edit",
    "search_replace": "Edit",
    "MultiEdit": "MultiEdit",
    "Grep": "Grep",
    "Glob": "Glob",
    "LS": "LS",
    "ListDir": "LS",
    "WebSearch": "WebSearch",
    "WebFetch": "WebFetch",
    "Task": "Task",
    "TodoWrite": "TodoWrite",
}
_KEYS: Final = {
    "file_path": ("file_path", "path", "target_file", "filePath"),
    "content": ("content", "contents", "file_text"),
    "old_string": ("old_string", "oldString", "old_str", "old_text"),
    "new_string": ("new_string", "newString", "new_str", "new_text"),
    "pattern": ("pattern", "glob_pattern", "query"),
    "path": ("path", "target_directory", "directory"),
    "query": ("query", "search_term"),
}
_WANTED: Final = {
    "Read": ("file_path",),
    "Write": ("file_path", "content"),
    "Edit": ("file_path", "old_string", "new_string"),
    "MultiEdit": ("file_path",),
    "Grep": ("pattern", "path"),
    "Glob": ("pattern", "path"),
    "LS": ("path",),
    "WebSearch": ("query",),
}
MCP_PREFIX: Final = "MCP:"
TRANSCRIPT_TAIL: Final = 1024 * 1024  # how much of a transcript's end Stop reads
MAX_TEXT: Final = 4_000


class Cursor(Adapter):
    name = "cursor"
    label = "Cursor"

    def memq_event(self, native: str) -> str:
        return _EVENTS.get(native, native)

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        native = event or payload.get("hook_event_name")
        session = payload.get("conversation_id") or payload.get("session_id")
        if not isinstance(native, str) or not native:
            raise InvalidEventError("a Cursor hook payload needs hook_event_name")
        if not isinstance(session, str) or not session:
            raise InvalidEventError("a Cursor hook payload needs conversation_id")
        mapped = self.memq_event(native)
        kept: dict[str, Any] = {"event": native if mapped != native else None}
        payload["hook_event_name"] = mapped
        payload["session_id"] = session
        cwd = payload.get("cwd")
        roots = payload.get("workspace_roots")
        root = roots[0] if isinstance(roots, list) and roots else None
        if (not isinstance(cwd, str) or not cwd) and isinstance(root, str):
            # Cursor sends cwd "" (or none at all) where a workspace root says where it is.
            payload["cwd"] = root
        generation = payload.get("generation_id")
        if (
            mapped == HookEvent.USER_PROMPT_SUBMIT
            and isinstance(generation, str)
            and generation
            and generation != session  # the CLI has been seen reusing the conversation's
        ):
            payload.setdefault("prompt_id", generation)
        natural = _natural_id(mapped, payload)
        if natural:
            # One delivery of the event and a resend of it (over HTTP, after a fallback
            # write) are recognised as one: the hook only adds a random id where none is.
            payload.setdefault("memq_event_id", natural)
        if native == "afterShellExecution":
            kept.update(_shell(payload))
        elif native == "afterFileEdit":
            kept.update(_file_edit(payload))
        elif native == "afterMCPExecution":
            kept.update(_mcp(payload))
        elif mapped in (HookEvent.POST_TOOL_USE, HookEvent.POST_TOOL_USE_FAILURE):
            kept.update(_tool(payload))
        return mark(payload, self, kept)

    def complete_turn(self, payload: dict[str, Any]) -> None:
        """The turn's last prompt and reply from the tail of Cursor's transcript (JSON lines
        ``{"role": ..., "message": {"content": [blocks]}}``), when the payload names one."""
        path = payload.get("transcript_path")
        if not isinstance(path, str) or not path:
            return
        prompt, reply = _last_exchange(path)
        if prompt and "last_user_prompt" not in payload:
            payload["last_user_prompt"] = prompt
        if reply and not isinstance(payload.get("last_assistant_message"), str):
            payload["last_assistant_message"] = reply

    def reply(self, event: str, context: str) -> str | None:
        if event == HookEvent.SESSION_START:
            return json.dumps({"additional_context": context})
        if event == HookEvent.USER_PROMPT_SUBMIT:
            # beforeSubmitPrompt takes no context; the answer only lets the prompt through.
            return json.dumps({"continue": True})
        return None


def _natural_id(event: str, payload: dict[str, Any]) -> str | None:
    """An id Cursor's own fields give an event without a tool call id: a conversation
    starts and ends once; a turn (``generation_id``) stops once per follow-up."""
    if event in (HookEvent.SESSION_START, HookEvent.SESSION_END):
        return str(payload["session_id"])
    generation = payload.get("generation_id")
    loop = payload.get("loop_count")
    if (
        event == HookEvent.STOP
        and isinstance(generation, str)
        and generation
        and generation != payload["session_id"]  # then it would be the same for every turn
    ):
        return f"{generation}:{loop if isinstance(loop, int) else 0}"
    return None


def _first(source: object, keys: tuple[str, ...]) -> Any:
    if not isinstance(source, dict):
        return None
    for key in keys:
        value = source.get(key)
        if value is not None and value != "":
            return value
    return None


def _parsed(value: Any) -> Any:
    """A JSON string Cursor sends (``tool_output``, ``result_json``) as what it holds."""
    if isinstance(value, str) and value[:1] in ("{", "["):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


def _shell_response(output: Any) -> Any:
    """A shell result as Claude Code's Bash response: ``stdout`` and ``exit_code``."""
    if isinstance(output, str):
        return {"stdout": output}
    if not isinstance(output, dict):
        return output
    response = dict(output)
    text = _first(output, ("stdout", "output"))
    if isinstance(text, str):
        response["stdout"] = text
        response.pop("output", None)
    code = _first(output, ("exit_code", "exitCode"))
    if isinstance(code, int) and not isinstance(code, bool):
        response["exit_code"] = code
        response.pop("exitCode", None)
    return response


def _tool_input(tool: str, given: Any) -> Any:
    """Cursor's tool input in the keys of its Claude Code twin ``tool``."""
    if not isinstance(given, dict):
        return given
    result = dict(given)
    for key in _WANTED.get(tool, ()):
        if key not in result:
            value = _first(given, _KEYS[key])
            if value is not None:
                result[key] = value
    if tool == "MultiEdit" and isinstance(given.get("edits"), list):
        result["edits"] = [_tool_input("Edit", edit) for edit in given["edits"]]
    return result


def _mcp_name(tool: str, server: Any) -> str:
    """``mcp__<server>__<tool>`` for Cursor's ``MCP:<tool>`` / ``MCP:<server>:<tool>`` (the
    server from ``mcp_server_name`` when the name lacks it)."""
    rest = tool.removeprefix(MCP_PREFIX)
    named, sep, bare = rest.partition(":")
    if sep:
        server, rest = named, bare
    if not isinstance(server, str) or not server:
        return tool
    return f"mcp__{server}__{rest}"


def _tool(payload: dict[str, Any]) -> dict[str, Any]:
    """postToolUse / postToolUseFailure: the tool as its twin, the output parsed."""
    native = payload.get("tool_name")
    if not isinstance(native, str):
        return {}
    kept: dict[str, Any] = {}
    twin = _TOOLS.get(native)
    server = payload.get("mcp_server_name")
    if twin is None and (native.startswith(MCP_PREFIX) or isinstance(server, str)):
        candidate = _mcp_name(native, server)
        twin = candidate if candidate != native else None
    if twin is not None and twin != native:
        payload["tool_name"] = twin
        kept["tool_name"] = native
    tool = payload["tool_name"]
    tool_input = _parsed(payload.get("tool_input"))
    mapped_input = _tool_input(tool, tool_input)
    if mapped_input != payload.get("tool_input"):
        payload["tool_input"] = mapped_input
    if "tool_output" in payload:
        output = _parsed(payload.pop("tool_output"))
        payload["tool_response"] = _shell_response(output) if tool == "Bash" else output
    message = payload.get("error_message")
    if payload.get("hook_event_name") == HookEvent.POST_TOOL_USE_FAILURE and message:
        payload.setdefault("error", message)
    return kept


def _shell(payload: dict[str, Any]) -> dict[str, Any]:
    """afterShellExecution: ``command``, ``output`` -> Bash."""
    payload["tool_name"] = "Bash"
    payload["tool_input"] = {"command": payload.get("command") or ""}
    payload["tool_response"] = _shell_response(payload.get("output"))
    return {"tool_name": "Shell"}


def _file_edit(payload: dict[str, Any]) -> dict[str, Any]:
    """afterFileEdit: ``file_path``, ``edits`` -> Edit (MultiEdit for several edits)."""
    edits = payload.get("edits")
    path = payload.get("file_path") or ""
    pairs = [
        {"old_string": edit.get("old_string", ""), "new_string": edit.get("new_string", "")}
        for edit in (edits if isinstance(edits, list) else [])
        if isinstance(edit, dict)
    ]
    if len(pairs) == 1:
        payload["tool_name"] = "Edit"
        payload["tool_input"] = {"file_path": path, **pairs[0]}
    else:
        payload["tool_name"] = "MultiEdit"
        payload["tool_input"] = {"file_path": path, "edits": pairs}
    return {"tool_name": "afterFileEdit"}


def _mcp(payload: dict[str, Any]) -> dict[str, Any]:
    """afterMCPExecution: ``tool_name`` of ``mcp_server_name``, ``tool_input`` and
    ``result_json`` as JSON strings."""
    native = payload.get("tool_name")
    tool = native if isinstance(native, str) else ""
    payload["tool_name"] = _mcp_name(tool, payload.get("mcp_server_name"))
    payload["tool_input"] = _parsed(payload.get("tool_input"))
    if "result_json" in payload:
        payload["tool_response"] = _parsed(payload.pop("result_json"))
    return {"tool_name": native} if payload["tool_name"] != native else {}


def _last_exchange(path: str) -> tuple[str | None, str | None]:
    """The last user text and the last assistant text in the transcript's tail; never
    raises (a missing or odd file gives nothing)."""
    from memq.hooks.transcript import records_from_end

    prompt: str | None = None
    reply: str | None = None
    for entry in records_from_end(path, max_bytes=TRANSCRIPT_TAIL):
        if prompt and reply:
            break
        role = entry.get("role")
        text = _text_of(entry.get("message"))
        if not text:
            continue
        if role == "assistant" and reply is None:
            reply = text[:MAX_TEXT]
        elif role == "user" and prompt is None:
            prompt = text[:MAX_TEXT]
    return prompt, reply


def _text_of(message: Any) -> str:
    content = message.get("content") if isinstance(message, dict) else None
    if isinstance(content, str):
        return content.strip()
    if not isinstance(content, list):
        return ""
    texts = [
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    ]
    return "\n".join(texts).strip()


ADAPTER: Final = Cursor()
