"""Gemini CLI (``@google/gemini-cli``): its hook events in memq's shape.

Events: SessionStart, BeforeAgent (the prompt), AfterTool (one tool call), AfterAgent (the
turn's end) and SessionEnd become memq's SessionStart, UserPromptSubmit, PostToolUse (or
PostToolUseFailure), Stop and SessionEnd; BeforeTool, BeforeModel, AfterModel,
BeforeToolSelection, PreCompress and Notification keep their names (unsubscribed).

Facts relied on (Gemini CLI 0.61.0; ``tests/fixtures/gemini-cli/PROVENANCE.md``):

- every payload has ``session_id``, ``transcript_path``, ``cwd``, ``hook_event_name`` and an
  ISO ``timestamp`` made once per firing (every hook of that firing gets the same one);
- there is no turn id and no tool call id: BeforeTool and AfterTool pair only by order;
- ``AfterTool.tool_response`` is ``{"llmContent", "returnDisplay", "error"?}``: the shell's
  ``llmContent`` holds ``Output:``, ``Error:``, ``Exit Code:``, ``Signal:`` sections (inside
  ``<untrusted_context>``), an edit's ``returnDisplay`` the unified diff (``fileDiff``);
- MCP tools are called ``mcp_<server>_<tool>``, with ``mcp_context.server_name`` and
  ``tool_name`` beside them;
- ``AfterAgent.prompt_response`` is the turn's text as the CLI joined its streamed chunks,
  which can garble it; the transcript (JSON Lines, ``type: "gemini"`` messages) has it clean;
- context reaches the model only as JSON ``hookSpecificOutput.additionalContext`` (at
  SessionStart and BeforeAgent); plain text on stdout is only shown to the person.

Dedupe: the event id is the firing's ``timestamp`` with a CRC of the event, tool and tool
input, so a resent identical payload (or memq's hook registered twice) is stored once, while
two identical calls of one turn (fired at different times) stay two events.
"""

from __future__ import annotations

import json
import re
import zlib

from memq.assistants.base import Adapter, hook_specific_output, mark
from memq.env import MCP_SERVER_NAME
from memq.events import HookEvent
from memq.exceptions import InvalidEventError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, Final, TypeGuard

_EVENTS: Final = {
    "SessionStart": HookEvent.SESSION_START,
    "BeforeAgent": HookEvent.USER_PROMPT_SUBMIT,
    "AfterTool": HookEvent.POST_TOOL_USE,
    "AfterAgent": HookEvent.STOP,
    "SessionEnd": HookEvent.SESSION_END,
}
# Gemini's events memq install subscribes to, in the order written.
SUBSCRIBED: Final = tuple(_EVENTS)
TOOL_EVENTS: Final = frozenset({"AfterTool"})
# The native name of each memq event, for the reply Gemini reads.
_NATIVE: Final = {
    **{memq: native for native, memq in _EVENTS.items()},
    HookEvent.POST_TOOL_USE_FAILURE: "AfterTool",
}
# Gemini's tools with a Claude Code twin: (twin, {Claude Code's input key: Gemini's keys}).
_TWINS: Final[dict[str, tuple[str, dict[str, tuple[str, ...]]]]] = {
    "run_shell_command": (
        "Bash",
        {"command": ("command",), "run_in_background": ("is_background",)},
    ),
    "write_file": ("Write", {"file_path": ("file_path",), "content": ("content",)}),
    "replace": (
        "Edit",
        {
            "file_path": ("file_path",),
            "old_string": ("old_string",),
            "new_string": ("new_string",),
            "replace_all": ("allow_multiple",),
        },
    ),
    "read_file": ("Read", {"file_path": ("file_path", "absolute_path")}),
    "glob": ("Glob", {"pattern": ("pattern",), "path": ("dir_path", "path")}),
    "grep_search": (
        "Grep",
        {
            "pattern": ("pattern",),
            "path": ("dir_path", "path"),
            "glob": ("include_pattern", "include"),
        },
    ),
    "search_file_content": (  # grep_search's older name
        "Grep",
        {
            "pattern": ("pattern",),
            "path": ("dir_path", "path"),
            "glob": ("include", "include_pattern"),
        },
    ),
    "list_directory": ("LS", {"path": ("dir_path", "path")}),
    "web_fetch": ("WebFetch", {"prompt": ("prompt",)}),
    "google_web_search": ("WebSearch", {"query": ("query",)}),
    "write_todos": ("TodoWrite", {}),
}
_MCP_PREFIX: Final = "mcp_"
_UNTRUSTED: Final = ("<untrusted_context>", "</untrusted_context>")
_OUTPUT: Final = "Output: "
_SHELL_TAIL: Final = frozenset({"Exit Code", "Signal", "Background PIDs", "Process Group PGID"})
_HUNK: Final = re.compile(r"^@@ -(\d+)(?:,(\d+))? \+(\d+)(?:,(\d+))? @@")
_URL: Final = re.compile(r"https?://[^\s\"'<>)\]]+")
_FOUND: Final = re.compile(r"^Found (\d+) (file|match)")
# Reading the transcript's tail for the turn's reply (a session file can grow large).
MAX_TRANSCRIPT_BYTES: Final = 16 * 1024 * 1024
MAX_REPLY_CHARS: Final = 4_000


class GeminiCli(Adapter):
    name = "gemini-cli"
    label = "Gemini CLI"

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        native = event or payload.get("hook_event_name")
        if not isinstance(native, str) or not native.strip():
            raise InvalidEventError("field 'hook_event_name' is missing")
        session_id = payload.get("session_id")
        if not isinstance(session_id, str) or not session_id.strip():
            raise InvalidEventError("field 'session_id' is missing")
        mapped = self.memq_event(native)
        payload["hook_event_name"] = mapped
        replaced: dict[str, Any] = {"event": native if native != mapped else None}
        event_id = _event_id(native, payload)
        if event_id is not None:
            payload.setdefault("memq_event_id", event_id)
        if mapped == HookEvent.POST_TOOL_USE:
            replaced.update(_map_tool_call(payload))
        elif mapped == HookEvent.STOP:
            prompt = payload.get("prompt")
            if isinstance(prompt, str) and prompt and "last_user_prompt" not in payload:
                payload["last_user_prompt"] = prompt
            reply = payload.get("prompt_response")
            if isinstance(reply, str) and reply and "last_assistant_message" not in payload:
                payload["last_assistant_message"] = reply  # the transcript's wins (complete_turn)
        return mark(payload, self, replaced)

    def memq_event(self, native: str) -> str:
        return _EVENTS.get(native, native)

    def complete_turn(self, payload: dict[str, Any]) -> None:
        """The turn's reply from the transcript (the last ``gemini`` message after the last
        prompt) in place of ``prompt_response``, which chunk joining can garble."""
        path = payload.get("transcript_path")
        if not isinstance(path, str) or not path:
            return
        reply = last_reply(path)
        if reply:
            payload["last_assistant_message"] = reply

    def reply(self, event: str, context: str) -> str | None:
        if event in (HookEvent.SESSION_START, HookEvent.USER_PROMPT_SUBMIT):
            return hook_specific_output(_NATIVE[event], context)
        return None

    def notice(self, event: str, text: str) -> str | None:
        """Shown to the person (``systemMessage``) and given to the model too: Gemini shows
        neither plain text's nor additionalContext's to both."""
        if event != HookEvent.SESSION_START:
            return None
        output = {"hookEventName": _NATIVE[event], "additionalContext": text}
        return json.dumps({"systemMessage": text.strip(), "hookSpecificOutput": output})


def _event_id(native: str, payload: dict[str, Any]) -> str | None:
    """The firing's timestamp and a CRC of what fired (see the module's docstring); None
    without a timestamp (the hook then draws a random id)."""
    stamp = payload.get("timestamp")
    if not isinstance(stamp, str) or not stamp:
        return None
    what = [native, payload.get("tool_name"), payload.get("tool_input")]
    text = json.dumps(what, sort_keys=True, ensure_ascii=False, default=str)
    return f"{stamp}/{zlib.crc32(text.encode('utf-8', 'replace')):08x}"


def _map_tool_call(payload: dict[str, Any]) -> dict[str, Any]:
    """Rename the tool (and its input keys) to Claude Code's twin, shape its response as the
    twin's, and make a failed call PostToolUseFailure; returns what was replaced."""
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    response = payload.get("tool_response")
    if not isinstance(tool, str):
        return {}
    inputs = tool_input if isinstance(tool_input, dict) else {}
    error = _error_text(response)
    twin = _TWINS.get(tool)
    if tool.startswith(_MCP_PREFIX):
        new_name = _mcp_name(tool, payload.get("mcp_context"))
    elif twin is not None:
        new_name = twin[0]
        payload["tool_input"] = _twin_input(twin[0], twin[1], inputs)
    else:
        new_name = tool
    if isinstance(response, dict):
        if new_name == "Bash":
            shaped, shell_error = _shell_response(response)
            payload["tool_response"] = shaped
            error = error or shell_error
        elif new_name in ("Write", "Edit"):
            payload["tool_response"] = _edit_response(response)
        elif new_name == "Read":
            payload["tool_response"] = _read_response(response, inputs)
        else:
            payload["tool_response"] = _text_response(response, new_name)
    if error:
        payload["hook_event_name"] = HookEvent.POST_TOOL_USE_FAILURE
        payload["error"] = error
    payload["tool_name"] = new_name
    return {"tool_name": tool if new_name != tool else None}


def _mcp_name(tool: str, context: object) -> str:
    """``mcp__<server>__<tool>`` as Claude Code names MCP tools (memq's own are skipped by
    that name), from ``mcp_context`` when given, else from ``mcp_<server>_<tool>``."""
    if isinstance(context, dict):
        server, name = context.get("server_name"), context.get("tool_name")
        if isinstance(server, str) and server and isinstance(name, str) and name:
            return f"mcp__{server}__{name}"
    server, _, name = tool[len(_MCP_PREFIX) :].partition("_")
    if tool.startswith(f"{_MCP_PREFIX}{MCP_SERVER_NAME}_"):
        server, name = MCP_SERVER_NAME, tool[len(_MCP_PREFIX) + len(MCP_SERVER_NAME) + 1 :]
    return f"mcp__{server}__{name}" if server and name else tool


def _twin_input(
    twin: str, keys: dict[str, tuple[str, ...]], inputs: dict[str, Any]
) -> dict[str, Any]:
    """Gemini's input with the twin's keys added (Gemini's own are kept: nothing is lost)."""
    shaped = dict(inputs)
    for key, natives in keys.items():
        value = next((inputs[name] for name in natives if name in inputs), None)
        if value is not None:
            shaped[key] = value
    if twin == "Read":
        start, end = inputs.get("start_line"), inputs.get("end_line")
        if _is_int(start):
            shaped["offset"] = start
            if _is_int(end) and end >= start:
                shaped["limit"] = end - start + 1
    elif twin == "WebFetch":
        prompt = inputs.get("prompt")
        url = _URL.search(prompt) if isinstance(prompt, str) else None
        if url is not None and "url" not in inputs:
            shaped["url"] = url.group(0)
    elif twin == "TodoWrite":
        todos = inputs.get("todos")
        if isinstance(todos, list):
            shaped["todos"] = [
                {"content": t.get("description"), **t} if isinstance(t, dict) else t for t in todos
            ]
    return shaped


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _error_text(response: object) -> str:
    """The message of the response's ``error`` (a tool that failed), or ''."""
    if not isinstance(response, dict):
        return ""
    error = response.get("error")
    if isinstance(error, dict):
        message = error.get("message")
        kind = error.get("type")
        text = message if isinstance(message, str) and message else ""
        return text or (kind if isinstance(kind, str) else "failed")
    return error if isinstance(error, str) else ""


def _llm_text(response: dict[str, Any]) -> str | None:
    """``llmContent`` as text: a string, or the text parts of a part list; None else."""
    content = response.get("llmContent")
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
    return "\n".join(texts) if texts else None


def _unwrapped(text: str) -> str:
    text = text.strip()
    opening, closing = _UNTRUSTED
    if text.startswith(opening) and text.endswith(closing):
        return text[len(opening) : -len(closing)].strip("\n")
    return text


def _shell_response(response: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """Claude Code's Bash response (``stdout``, ``stderr``, ``interrupted``, with
    ``exit_code``) from the shell's ``llmContent``; and the failure's text (Claude Code's
    ``Exit code N`` line, then the output) when the command did not succeed."""
    text = _llm_text(response)
    if text is None:
        return response, ""
    body = _unwrapped(text)
    if not body.startswith(_OUTPUT):
        # Cancelled, timed out or sent to the background: the message is all there is.
        return {"stdout": body, "stderr": "", "interrupted": "cancelled" in body}, ""
    lines = body[len(_OUTPUT) :].split("\n")
    # The one-line sections follow the output in a fixed order: read them from the end, so
    # that the output's own lines never count as one.
    sections: dict[str, str] = {}
    while len(lines) > 1:
        name, colon, value = lines[-1].partition(": ")
        if not colon or name not in _SHELL_TAIL or name in sections:
            break
        sections[name] = value.strip()
        lines.pop()
    output = "\n".join(lines)
    error = ""
    if output.startswith("(empty)\nError: "):  # the shell could not run the command
        output, error = "", output[len("(empty)\nError: ") :].strip()
    output = "" if output == "(empty)" else output
    code = sections.get("Exit Code", "")
    exit_code = int(code) if re.fullmatch(r"-?\d{1,10}", code) else None
    signal = sections.get("Signal", "")
    shaped: dict[str, Any] = {"stdout": output, "stderr": "", "interrupted": bool(signal)}
    if exit_code is not None or not (signal or error):
        shaped["exit_code"] = exit_code if exit_code is not None else 0
    for key, value in (("error", error), ("signal", signal)):
        if value:
            shaped[key] = value
    if sections.get("Background PIDs"):
        shaped["background_pids"] = sections["Background PIDs"]
    if exit_code in (0, None) and not (signal or error):
        return shaped, ""
    head = f"Exit code {exit_code}" if exit_code is not None else error or f"signal {signal}"
    return shaped, "\n".join(part for part in (head, output) if part)


def _edit_response(response: dict[str, Any]) -> dict[str, Any]:
    """Claude Code's Write/Edit response (``type``, ``filePath``, ``structuredPatch``,
    ``originalFile``) from Gemini's ``returnDisplay`` file diff."""
    display = response.get("returnDisplay")
    if not isinstance(display, dict) or not isinstance(display.get("fileDiff"), str):
        return _text_response(response, "")
    new_file = display.get("isNewFile") is True
    shaped: dict[str, Any] = {
        "type": "create" if new_file else "update",
        "filePath": display.get("filePath"),
        # A new file's head is its content, as for Claude Code's "create".
        "structuredPatch": [] if new_file else _hunks(display["fileDiff"]),
        "originalFile": None if new_file else display.get("originalContent"),
    }
    message = _llm_text(response)
    if message:
        shaped["message"] = message
    if isinstance(display.get("diffStat"), dict):
        shaped["diffStat"] = display["diffStat"]
    return shaped


def _hunks(diff: str) -> list[dict[str, Any]]:
    """A unified diff's hunks as Claude Code's ``structuredPatch``."""
    hunks: list[dict[str, Any]] = []
    for line in diff.splitlines():
        header = _HUNK.match(line)
        if header is not None:
            old_start, old_lines, new_start, new_lines = header.groups()
            hunks.append(
                {
                    "oldStart": int(old_start),
                    "oldLines": int(old_lines) if old_lines is not None else 1,
                    "newStart": int(new_start),
                    "newLines": int(new_lines) if new_lines is not None else 1,
                    "lines": [],
                }
            )
        elif hunks and line[:1] in (" ", "-", "+"):
            hunks[-1]["lines"].append(line)
    return hunks


def _read_response(response: dict[str, Any], inputs: dict[str, Any]) -> dict[str, Any]:
    """Claude Code's Read response (``file.content``) when the file came back as text."""
    text = _llm_text(response)
    if text is None:
        return response  # an image or a PDF: kept as Gemini gave it
    path = inputs.get("file_path") or inputs.get("absolute_path")
    return {"type": "text", "file": {"filePath": path, "content": text}}


def _text_response(response: dict[str, Any], tool: str) -> dict[str, Any]:
    """``content`` (the model's text), the display when it says something else, and the
    counts Glob and Grep report in Claude Code's names."""
    text = _llm_text(response)
    if text is None:
        return response
    shaped: dict[str, Any] = {"content": text}
    display = response.get("returnDisplay")
    if display and display != text:
        shaped["display"] = display
    error = response.get("error")
    if error:
        shaped["error"] = error
    found = _FOUND.match(text)
    if found is not None and tool in ("Glob", "Grep"):
        field = "numFiles" if found.group(2) == "file" else "numMatches"
        shaped[field] = int(found.group(1))
    return shaped


def last_reply(path: str) -> str | None:
    """The text of the last ``gemini`` message after the transcript's last prompt; None when
    the turn has none there yet (or the file cannot be read). Never raises."""
    from memq.hooks.transcript import records_from_end

    for record in records_from_end(path, max_bytes=MAX_TRANSCRIPT_BYTES):
        kind = record.get("type")
        if kind == "user" and _message_text(record.get("content")) is not None:
            return None  # the turn's prompt, and no reply after it
        if kind == "gemini":
            text = _message_text(record.get("content"))
            if text:
                return text[:MAX_REPLY_CHARS]
    return None


def _message_text(content: object) -> str | None:
    """A message's text: a string, or the ``text`` of its parts (a tool's result has none)."""
    if isinstance(content, str):
        return content.strip() or None
    if not isinstance(content, list):
        return None
    texts = [p["text"] for p in content if isinstance(p, dict) and isinstance(p.get("text"), str)]
    joined = "\n".join(texts).strip()
    return joined or None


ADAPTER: Final = GeminiCli()
