"""Codex CLI: its hooks (``hooks.json``) mapped into memq's payload.

Codex runs each command hook with JSON on stdin in nearly Claude Code's shape: ``session_id``,
``cwd``, ``transcript_path`` (may be null), ``hook_event_name``, and on turn-scoped events
``turn_id`` and ``model``. memq maps:

- ``SessionStart`` -> SessionStart (every ``source``: startup, resume, clear, compact);
- ``UserPromptSubmit`` -> UserPromptSubmit, ``prompt_id`` = ``turn_id`` so a resent prompt is
  one event. A subagent's (it carries ``agent_id`` and the parent's ``session_id``; its prompt
  is the parent's ``spawn_agent`` message) becomes ``SubagentUserPromptSubmit``, kept but not
  a prompt of the parent's session;
- ``PostToolUse`` -> PostToolUse. ``tool_response`` is a string: for ``Bash`` the command's
  output only, given as ``{"stdout": ..., "exit_code": N}``, the exit code read from the
  transcript's ``CommandExecution`` item (null when there is none to read). ``apply_patch``
  (``{"command": patch}``) becomes Write / Edit / MultiEdit from the patch's file sections;
  ``view_image`` becomes Read. MCP tools already come as ``mcp__<server>__<tool>``;
- ``Stop`` -> Stop (it has ``last_assistant_message``), keyed by its turn;
- ``Interrupt`` -> Stop too: an interrupted turn gets no Stop, and in ``codex exec`` the session
  ends right after, so without it the turn's observations would never be summarized;
- ``SessionEnd`` -> SessionEnd. Anything else (PreToolUse, PreModelRequest, PreCompact,
  PostCompact, SubagentStart, SubagentStop, PermissionRequest, ...) keeps its own name.

Context goes back as ``{"hookSpecificOutput": {"hookEventName": ..., "additionalContext":
...}}`` for SessionStart and UserPromptSubmit, the only fields Codex's strict output schemas
take there besides ``continue``, ``stopReason``, ``suppressOutput``, ``systemMessage``.

Standard library only.
"""

from __future__ import annotations

import json

from memq.assistants.base import Adapter, hook_specific_output, mark
from memq.events import HookEvent
from memq.exceptions import InvalidEventError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any, Final

_EVENTS: Final = {
    "SessionStart": HookEvent.SESSION_START,
    "UserPromptSubmit": HookEvent.USER_PROMPT_SUBMIT,
    "PostToolUse": HookEvent.POST_TOOL_USE,
    "Stop": HookEvent.STOP,
    "Interrupt": HookEvent.STOP,
    "SessionEnd": HookEvent.SESSION_END,
}
INTERRUPT: Final = "Interrupt"
SUBAGENT_PREFIX: Final = "Subagent"  # a subagent's prompt: SubagentUserPromptSubmit
# Codex's events memq install subscribes to, in order (memq's own, plus Interrupt).
SUBSCRIBED: Final = (
    "SessionStart",
    "UserPromptSubmit",
    "PostToolUse",
    "Stop",
    "Interrupt",
    "SessionEnd",
)
BASH: Final = "Bash"
APPLY_PATCH: Final = "apply_patch"
TRANSCRIPT_TAIL: Final = 512 * 1024  # how much of the transcript's end a tool call reads
MAX_TEXT: Final = 4_000


class Codex(Adapter):
    name = "codex"
    label = "Codex CLI"

    def memq_event(self, native: str) -> str:
        return _EVENTS.get(native, native)

    def to_memq(self, payload: dict[str, Any], event: str | None = None) -> dict[str, Any]:
        native = event or payload.get("hook_event_name")
        if not isinstance(native, str) or not native:
            raise InvalidEventError("a Codex hook payload needs hook_event_name")
        session = payload.get("session_id")
        if not isinstance(session, str) or not session:
            raise InvalidEventError("a Codex hook payload needs session_id")
        mapped = self.memq_event(native)
        if mapped == HookEvent.USER_PROMPT_SUBMIT and payload.get("agent_id"):
            mapped = SUBAGENT_PREFIX + native
        kept: dict[str, Any] = {"event": native if mapped != native else None}
        payload["hook_event_name"] = mapped
        turn = payload.get("turn_id")
        turn = turn if isinstance(turn, str) and turn else None
        if mapped == HookEvent.USER_PROMPT_SUBMIT and turn:
            payload.setdefault("prompt_id", turn)
        elif mapped == HookEvent.STOP and turn and payload.get("stop_hook_active") is not True:
            # One Stop (or Interrupt) per turn; a Stop after another hook made the turn go on
            # (stop_hook_active) is a new one and keeps the hook's own id.
            payload.setdefault("memq_event_id", f"turn:{turn}")
        elif mapped == HookEvent.POST_TOOL_USE:
            kept.update(_tool(payload))
        return mark(payload, self, kept)

    def complete_turn(self, payload: dict[str, Any]) -> None:
        """Codex's Stop carries ``last_assistant_message``; where it does not (an
        interrupted turn), the turn's ``task_complete`` line in the transcript's tail."""
        if isinstance(payload.get("last_assistant_message"), str):
            return
        turn = payload.get("turn_id")
        if not isinstance(turn, str) or not turn:
            return
        for entry in _tail_entries(payload.get("transcript_path"), turn):
            body = entry.get("payload")
            if isinstance(body, dict) and body.get("type") == "task_complete":
                message = body.get("last_agent_message")
                if isinstance(message, str) and message.strip():
                    payload["last_assistant_message"] = message[:MAX_TEXT]
                return

    def reply(self, event: str, context: str) -> str | None:
        if event in (HookEvent.SESSION_START, HookEvent.USER_PROMPT_SUBMIT):
            return hook_specific_output(event, context)
        return None

    def notice(self, event: str, text: str) -> str | None:
        """For the person as well as the model: ``systemMessage`` is shown in Codex."""
        if event != HookEvent.SESSION_START:
            return None
        output = {"hookEventName": event, "additionalContext": text}
        return json.dumps({"systemMessage": text.strip(), "hookSpecificOutput": output})


# -- tools ---------------------------------------------------------------------------------------


def _tool(payload: dict[str, Any]) -> dict[str, Any]:
    """Put a PostToolUse's tool in Claude Code's names; what it replaced, for memq_native."""
    tool = payload.get("tool_name")
    given = payload.get("tool_input")
    response = payload.get("tool_response")
    if tool == BASH:
        if isinstance(response, str):
            # exit_code null: not known (no transcript to read it from), not 0.
            payload["tool_response"] = {"stdout": response, "exit_code": _exit_code(payload)}
        return {}
    if tool == APPLY_PATCH and isinstance(given, dict) and isinstance(given.get("command"), str):
        mapped = _patch_call(given["command"])
        if mapped is None:
            return {}
        name, tool_input, created = mapped
        payload["tool_name"] = name
        payload["tool_input"] = tool_input
        text = response if isinstance(response, str) else ""
        payload["tool_response"] = {"type": "create", "output": text} if created else text
        return {"tool_name": tool, "tool_input": given}
    if tool == "view_image" and isinstance(given, dict) and isinstance(given.get("path"), str):
        payload["tool_name"] = "Read"
        payload["tool_input"] = {"file_path": given["path"]}
        return {"tool_name": tool, "tool_input": given}
    if isinstance(response, str) and response[:1] in ("{", "["):
        # Codex's own tools answer JSON as text (spawn_agent, wait_agent, ...).
        payload["tool_response"] = _parsed(response)
    return {}


def _parsed(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def _exit_code(payload: dict[str, Any]) -> int | None:
    """The exit code of the shell call ``tool_use_id`` from the transcript's tail (Codex
    writes the call's ``item_completed`` line before it runs PostToolUse); None if not there."""
    call = payload.get("tool_use_id")
    if not isinstance(call, str) or not call:
        return None
    for entry in _tail_entries(payload.get("transcript_path"), call):
        body = entry.get("payload")
        item = body.get("item") if isinstance(body, dict) else None
        if isinstance(item, dict) and item.get("id") == call and "exit_code" in item:
            code = item["exit_code"]
            return code if isinstance(code, int) and not isinstance(code, bool) else None
    return None


def _tail_entries(path: object, needle: str) -> Iterator[dict[str, object]]:
    """The JSON lines of the transcript's tail that mention ``needle``, newest first; never
    raises (a missing or odd file gives nothing)."""
    from memq.hooks.transcript import records_from_end

    return records_from_end(path, max_bytes=TRANSCRIPT_TAIL, needle=needle.encode())


# -- apply_patch ---------------------------------------------------------------------------------

_ADD: Final = "*** Add File: "
_UPDATE: Final = "*** Update File: "
_DELETE: Final = "*** Delete File: "
_MOVE: Final = "*** Move to: "


def _patch_call(patch: str) -> tuple[str, dict[str, Any], bool] | None:
    """Claude Code's tool for an ``apply_patch`` patch: (name, input, creates a file). One
    added file is a Write, one updated file an Edit (its removed and context lines the old
    text, its added and context lines the new), several files a MultiEdit. None when the
    text holds no file section."""
    files = _patch_files(patch)
    if not files:
        return None
    if len(files) == 1:
        only = files[0]
        if only["op"] == "add":
            return "Write", {"file_path": only["path"], "content": only["new"]}, True
        edit = {"file_path": only["path"], "old_string": only["old"], "new_string": only["new"]}
        return "Edit", edit, False
    edits = [
        {"file_path": f["path"], "old_string": f["old"], "new_string": f["new"]} for f in files
    ]
    return "MultiEdit", {"file_path": files[0]["path"], "edits": edits}, False


def _patch_files(patch: str) -> list[dict[str, str]]:
    files: list[dict[str, str]] = []
    old: list[str] = []
    new: list[str] = []

    def close() -> None:
        if files:
            files[-1]["old"] = "".join(old)
            files[-1]["new"] = "".join(new)
        old.clear()
        new.clear()

    for line in patch.splitlines(keepends=True):
        bare = line.rstrip("\r\n")
        for prefix, op in ((_ADD, "add"), (_UPDATE, "update"), (_DELETE, "delete")):
            if bare.startswith(prefix):
                close()
                files.append({"op": op, "path": bare[len(prefix) :].strip()})
                break
        else:
            if not files or bare.startswith("*** "):
                if bare.startswith(_MOVE) and files:
                    files[-1]["path"] = bare[len(_MOVE) :].strip()
                continue
            if bare.startswith("@@"):
                continue
            sign, text = line[:1], line[1:]
            if sign == "+":
                new.append(text)
            elif sign == "-":
                old.append(text)
            elif sign == " ":
                old.append(text)
                new.append(text)
    close()
    return [f for f in files if f["path"]]


ADAPTER: Final = Codex()
