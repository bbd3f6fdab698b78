"""The offline processor: memory records from hook payloads by rules, without a model.

Deterministic: the result depends only on the message and the context (no clock, no network,
no file system), so a replayed message gives an equal result. Hook payloads are taken as the
assistant sent them, so every field is checked for its type before use: a missing or odd field
makes a vaguer record, never an error. Only an observation payload that is not a JSON object
is refused (``InvalidInputError``): there is no tool call in it to describe.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from memq.events import HookEvent
from memq.exceptions import InvalidInputError
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    ProcessResult,
    SessionContext,
    SummaryRecord,
)
from memq.queue import Message, MessageKind

EXCERPT_CHARS: Final = 300
TITLE_TARGET_CHARS: Final = 80  # a command, path or pattern inside a title
FACT_CHARS: Final = 160
MAX_FACTS: Final = 6
NARRATIVE_CHARS: Final = 600
SUMMARY_TEXT_CHARS: Final = 2000
SUMMARY_LINES: Final = 20
_MAX_DEPTH: Final = 6  # how deep to look into a tool response for text
# Integers from a payload outside this range are garbage (an exit code, a count), and some
# would not even fit an SQLite INTEGER.
_INT_RANGE: Final = range(-(2**31), 2**32)

_EXIT_CODE_LINE: Final = re.compile(r"^\s*Exit code (-?\d{1,10})\s*$", re.MULTILINE)
_WINDOWS_ABSOLUTE: Final = re.compile(r"^[A-Za-z]:[\\/]")

TOOL_KINDS: Final[Mapping[str, ObservationKind]] = MappingProxyType(
    {
        "Write": ObservationKind.CHANGE,
        "Edit": ObservationKind.CHANGE,
        "MultiEdit": ObservationKind.CHANGE,
        "NotebookEdit": ObservationKind.CHANGE,
        "Read": ObservationKind.DISCOVERY,
        "LS": ObservationKind.DISCOVERY,
        "Glob": ObservationKind.SEARCH,
        "Grep": ObservationKind.SEARCH,
        "Bash": ObservationKind.COMMAND,
        "WebFetch": ObservationKind.WEB,
        "WebSearch": ObservationKind.WEB,
        "Task": ObservationKind.DISCOVERY,
        "Agent": ObservationKind.DISCOVERY,
        "TodoWrite": ObservationKind.OTHER,
        "TaskCreate": ObservationKind.OTHER,
        "TaskUpdate": ObservationKind.OTHER,
    }
)


class ExtractProcessor:
    """The default processor: offline, deterministic, rule-based."""

    name: str = "extract"

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        """An observation for a tool call, a summary for a summarize request, else nothing."""
        if message.kind is MessageKind.OBSERVATION:
            return ProcessResult(observation=extract_observation(message.payload))
        if message.kind is MessageKind.SUMMARIZE:
            return ProcessResult(summary=summarize(message.payload, context))
        return ProcessResult()


# -- observations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _ToolCall:
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
        return _integer(self.input.get(key))

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


@dataclass(frozen=True)
class _Described:
    """What a tool's rule says about one call."""

    title: str
    target: str = ""  # what the tool acted on, for the failure title
    subtitle: str = ""
    narrative: str = ""
    facts: Sequence[str] = ()
    files_read: Sequence[str] = ()
    files_modified: Sequence[str] = ()
    command: str | None = None
    exit_code: int | None = None
    failure_title: str | None = None  # set by rules that word their own failures


def extract_observation(payload: Any) -> ObservationRecord:
    """An observation from a Claude Code ``PostToolUse`` or ``PostToolUseFailure`` payload.

    Raises ``InvalidInputError`` when ``payload`` is not a JSON object.
    """
    call = _tool_call(tool_call_payload(payload))
    kind = TOOL_KINDS.get(call.tool, ObservationKind.OTHER)
    rule = _RULES.get(call.tool, _describe_other)
    described = rule(call)
    facts = list(described.facts)
    title = described.title
    files_modified = described.files_modified
    if call.failed:
        title = described.failure_title or _failure_title(call.tool, described.target)
        reason = _failure_reason(call.error)
        facts.insert(0, f"failed: {reason}" if reason else "failed")  # first: never capped
        files_modified = ()  # a failed call changed nothing; the title names its target
    return ObservationRecord(
        kind=kind,
        title=_clip_line(title, 2 * TITLE_TARGET_CHARS),
        subtitle=_clip_line(described.subtitle, 2 * TITLE_TARGET_CHARS),
        narrative=described.narrative,
        facts=tuple(_clip_line(f, FACT_CHARS) for f in _unique(facts) if f)[:MAX_FACTS],
        concepts=(),
        files_read=tuple(_unique(described.files_read)),
        files_modified=tuple(_unique(files_modified)),
        tool_name=call.tool if call.tool else None,
        command=described.command,
        exit_code=described.exit_code,
        excerpt=_excerpt(call),
    )


def tool_call_payload(payload: Any) -> Mapping[str, Any]:
    """``payload`` when it is a JSON object; else ``InvalidInputError``: without one there
    is no tool call to describe (every processor refuses it alike)."""
    if not isinstance(payload, Mapping):
        raise InvalidInputError(
            f"an observation payload must be a JSON object, not {type(payload).__name__}"
        )
    return payload


def _failure_title(tool: str, target: str) -> str:
    tool = tool or "A tool"
    return f"{tool} failed: {target}" if target else f"{tool} failed"


def _tool_call(payload: Mapping[str, Any]) -> _ToolCall:
    tool = payload.get("tool_name")
    tool_input = payload.get("tool_input")
    cwd = payload.get("cwd")
    error = payload.get("error")
    return _ToolCall(
        tool=tool.strip() if isinstance(tool, str) else "",
        input=tool_input if isinstance(tool_input, Mapping) else {},
        response=payload.get("tool_response"),
        cwd=cwd if isinstance(cwd, str) and cwd else None,
        failed=payload.get("hook_event_name") == HookEvent.POST_TOOL_USE_FAILURE,
        error=error if isinstance(error, str) else "",
    )


def _describe_write(call: _ToolCall) -> _Described:
    path = call.path("file_path", "path")
    created = call.response_field("type") == "create"
    content = call.text("content")
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    facts = [f"{lines} line{'s' if lines != 1 else ''} written"] if content else []
    verb = "Created" if created else "Wrote"
    return _Described(
        title=f"{verb} {_target(path)}" if path else "Wrote a file",
        target=_target(path),
        facts=facts,
        files_modified=[path] if path else [],
    )


def _describe_edit(call: _ToolCall) -> _Described:
    paths = [call.path("file_path", "path", "notebook_path")]
    facts: list[str] = []
    edits = call.input.get("edits")
    if isinstance(edits, list):
        facts.append(f"{len(edits)} edit{'s' if len(edits) != 1 else ''}")
        paths += [
            relative_path(edit["file_path"], call.cwd)
            for edit in edits
            if isinstance(edit, Mapping) and isinstance(edit.get("file_path"), str)
        ]
    if call.input.get("replace_all") is True:
        facts.append("replaced every occurrence")
    paths = [p for p in _unique(paths) if p]
    edit_mode = call.text("edit_mode")
    if edit_mode:
        facts.append(f"cell {edit_mode}")
    noun = "notebook" if call.tool == "NotebookEdit" else "file"
    if not paths:
        title = f"Edited a {noun}"
    else:
        title = f"Edited {'notebook ' if noun == 'notebook' else ''}{_target(paths[0])}"
        if len(paths) > 1:
            title += f" and {len(paths) - 1} more"
    return _Described(
        title=title,
        target=_target(paths[0]) if paths else "",
        facts=facts,
        files_modified=paths,
    )


def _describe_read(call: _ToolCall) -> _Described:
    path = call.path("file_path", "path", "notebook_path")
    offset, limit = call.number("offset"), call.number("limit")
    subtitle = ""
    if offset is not None and limit is not None:
        subtitle = f"lines {offset}-{offset + limit - 1}"
    elif offset is not None:
        subtitle = f"from line {offset}"
    elif limit is not None:
        subtitle = f"first {limit} lines"
    return _Described(
        title=f"Read {_target(path)}" if path else "Read a file",
        target=_target(path),
        subtitle=subtitle,
        files_read=[path] if path else [],
    )


def _describe_ls(call: _ToolCall) -> _Described:
    path = call.path("path", "file_path")
    return _Described(
        title=f"Listed {_target(path)}" if path else "Listed a directory",
        target=_target(path),
        files_read=[path] if path else [],
    )


def _describe_search(call: _ToolCall) -> _Described:
    pattern = call.text("pattern")
    path = call.path("path")
    where = f" in {_target(path)}" if path and path != "." else ""
    quoted = f"'{_target(pattern)}'"
    if call.tool == "Glob":
        title = f"Searched for files matching {quoted}{where}" if pattern else "Searched files"
    else:
        title = f"Searched for {quoted}{where}" if pattern else f"Searched{where}"
    facts = [f"{name}: {call.text(name)}" for name in ("glob", "type") if call.text(name)]
    files = _integer(call.response_field("numFiles"))
    matches = _integer(call.response_field("numMatches"))
    if matches is not None:
        facts.append(f"{matches} match{'es' if matches != 1 else ''}")
    if files is not None:
        facts.append(f"{files} file{'s' if files != 1 else ''} found")
    return _Described(
        title=title,
        target=quoted if pattern else _target(path),
        facts=facts,
        files_read=[path] if path else [],
    )


def _describe_bash(call: _ToolCall) -> _Described:
    command = call.text("command").strip()
    interrupted = call.response_field("interrupted") is True
    exit_code = _exit_code(call, interrupted=interrupted)
    shown = f"`{_target(command)}`" if command else "a command"
    outcome = ""
    if exit_code not in (0, None):
        outcome = f" (exit {exit_code})"
    elif interrupted:
        outcome = " (interrupted)"
    elif call.failed:
        outcome = " (failed)"
    facts = []
    if exit_code is not None:
        facts.append(f"exit code {exit_code}")
    if interrupted:
        facts.append("interrupted")
    stderr = _first_line(call.response_field("stderr"))
    if stderr:
        facts.append(f"stderr: {stderr}")
    return _Described(
        title=f"Ran {shown}{outcome}",
        target=shown,
        subtitle=call.text("description"),
        facts=facts,
        command=command or None,
        exit_code=exit_code,
        failure_title=f"Ran {shown}{outcome}",
    )


def _describe_web_fetch(call: _ToolCall) -> _Described:
    url = call.text("url").strip()
    facts = []
    status = _integer(call.response_field("code"))
    if status is not None:
        facts.append(f"HTTP {status}")
    return _Described(
        title=f"Fetched {_target(url)}" if url else "Fetched a web page",
        target=_target(url),
        subtitle=call.text("prompt"),
        facts=facts,
    )


def _describe_web_search(call: _ToolCall) -> _Described:
    query = call.text("query").strip()
    return _Described(
        title=f"Searched the web for '{_target(query)}'" if query else "Searched the web",
        target=f"'{_target(query)}'" if query else "",
    )


def _describe_agent(call: _ToolCall) -> _Described:
    description = call.text("description").strip()
    agent_type = call.text("subagent_type").strip()
    facts = [f"agent: {agent_type}"] if agent_type else []
    status = call.response_field("status")
    if isinstance(status, str) and status:
        facts.append(f"status: {status}")
    answer = _response_text(call.response_field("content"), 0) or (
        call.response if isinstance(call.response, str) else ""
    )
    return _Described(
        title=f"Ran agent: {_target(description)}" if description else "Ran an agent",
        target=_target(description),
        subtitle=agent_type,
        narrative=_clip_block(answer, NARRATIVE_CHARS),
        facts=facts,
    )


def _describe_todo_write(call: _ToolCall) -> _Described:
    todos = call.input.get("todos")
    facts = []
    if isinstance(todos, list):
        done = sum(1 for t in todos if isinstance(t, Mapping) and t.get("status") == "completed")
        facts.append(f"{done} of {len(todos)} todos completed")
    return _Described(title="Updated the todo list", facts=facts)


def _describe_task_create(call: _ToolCall) -> _Described:
    subject = call.text("subject").strip()
    return _Described(
        title=f"Created task: {_target(subject)}" if subject else "Created a task",
        target=_target(subject),
        subtitle=call.text("description"),
    )


def _describe_task_update(call: _ToolCall) -> _Described:
    task_id = call.text("taskId").strip() or (
        str(n) if (n := call.number("taskId")) is not None else ""
    )
    status = call.text("status").strip()
    name = f"task {_target(task_id)}" if task_id else "a task"
    title = f"Updated {name}" + (f": {_target(status)}" if status else "")
    facts = []
    change = call.response_field("statusChange")
    if isinstance(change, Mapping):
        before, after = change.get("from"), change.get("to")
        if isinstance(before, str) and isinstance(after, str):
            facts.append(f"status {before} -> {after}")
    return _Described(title=title, target=name, facts=facts)


def _describe_other(call: _ToolCall) -> _Described:
    tool = call.tool or "an unknown tool"
    return _Described(title=f"Used {_target(tool)}", target="")


_RULES: Final[Mapping[str, Callable[[_ToolCall], _Described]]] = MappingProxyType(
    {
        "Write": _describe_write,
        "Edit": _describe_edit,
        "MultiEdit": _describe_edit,
        "NotebookEdit": _describe_edit,
        "Read": _describe_read,
        "LS": _describe_ls,
        "Glob": _describe_search,
        "Grep": _describe_search,
        "Bash": _describe_bash,
        "WebFetch": _describe_web_fetch,
        "WebSearch": _describe_web_search,
        "Task": _describe_agent,
        "Agent": _describe_agent,
        "TodoWrite": _describe_todo_write,
        "TaskCreate": _describe_task_create,
        "TaskUpdate": _describe_task_update,
    }
)


def _exit_code(call: _ToolCall, *, interrupted: bool) -> int | None:
    """From the response if it has one; from a failure's "Exit code N" line; 0 for a plain
    success; None when unknown (an interrupted command, a failure without a code)."""
    for key in ("exit_code", "exitCode", "returncode", "code"):
        code = _integer(call.response_field(key))
        if code is not None:
            return code
    if call.failed:
        match = _EXIT_CODE_LINE.search(call.error)
        code = int(match.group(1)) if match else None
        return code if code is not None and code in _INT_RANGE else None
    return None if interrupted else 0


def _failure_reason(error: str) -> str:
    """The first line of a failure's error that says more than its exit code."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    for line in lines:
        if not _EXIT_CODE_LINE.match(line):
            return line
    return lines[0] if lines else ""


def _excerpt(call: _ToolCall) -> str:
    parts = (call.error.strip(), _response_text(call.response, 0).strip())
    return _clip_block("\n".join(p for p in _unique(parts) if p), EXCERPT_CHARS)


def _response_text(value: Any, depth: int) -> str:
    """The human-readable text in a tool response: a string, stdout and stderr, content
    blocks, or the first field that holds text. '' for anything else."""
    if isinstance(value, str):
        return value
    if depth >= _MAX_DEPTH:
        return ""
    texts: list[str] = []
    if isinstance(value, list):
        texts = [_response_text(item, depth + 1) for item in value[:20]]
    elif isinstance(value, Mapping):
        streams = [value.get(key) for key in ("stdout", "stderr")]
        if any(isinstance(stream, str) for stream in streams):
            texts = [stream for stream in streams if isinstance(stream, str)]
        else:
            fields = (
                *("error", "text", "content", "result", "output", "message", "file"),
                *("newString", "filenames"),
            )
            found = (_response_text(value.get(key), depth + 1) for key in fields)
            texts = [next((text for text in found if text.strip()), "")]
    return "\n".join(text for text in texts if text.strip())


# -- summaries ---------------------------------------------------------------------------------

_INVESTIGATION_KINDS: Final = frozenset(
    {ObservationKind.DISCOVERY, ObservationKind.SEARCH, ObservationKind.WEB}
)


def summarize(payload: Any, context: SessionContext) -> SummaryRecord:
    """A summary of the batch that a ``Stop`` payload closes, from the session's prompts and
    observations since its last summary."""
    fields = payload if isinstance(payload, Mapping) else {}
    prompts = [p.text.strip() for p in context.prompts if p.text.strip()]
    last_prompt = fields.get("last_user_prompt")
    if not prompts and isinstance(last_prompt, str) and last_prompt.strip():
        prompts = [last_prompt.strip()]
    observations = context.observations
    investigated = _lines(o.title for o in observations if o.kind in _INVESTIGATION_KINDS)
    last_message = fields.get("last_assistant_message")
    completed = last_message.strip() if isinstance(last_message, str) else ""
    if not completed:
        completed = _lines(o.title for o in observations if o.files_modified)
    return SummaryRecord(
        request=_clip_block("\n".join(prompts), SUMMARY_TEXT_CHARS),
        investigated=investigated,
        learned="",
        completed=_clip_block(completed, SUMMARY_TEXT_CHARS),
        next_steps="",
        files_read=tuple(_unique(f for o in observations for f in o.files_read)),
        files_edited=tuple(_unique(f for o in observations for f in o.files_modified)),
        notes=_lines(_note(o) for o in observations),
    )


def _note(observation: ObservationRecord) -> str:
    """A line for the summary's notes: every command with its exit code, every failure."""
    if observation.command is not None:
        code = observation.exit_code
        outcome = f"exit {code}" if code is not None else "no exit code"
        return f"$ {_clip_line(observation.command, TITLE_TARGET_CHARS)} ({outcome})"
    if any(fact.startswith("failed") for fact in observation.facts):
        return observation.title
    return ""


def _lines(items: Iterable[str]) -> str:
    """Distinct non-empty lines, in first-seen order, at most ``SUMMARY_LINES`` of them."""
    unique = [item for item in _unique(items) if item]
    shown = unique[:SUMMARY_LINES]
    if len(unique) > SUMMARY_LINES:
        shown.append(f"... and {len(unique) - SUMMARY_LINES} more")
    return "\n".join(shown)


# -- small text helpers ------------------------------------------------------------------------


def relative_path(path: str, cwd: str | None) -> str:
    """``path`` relative to ``cwd`` when it lies inside it ('.' for ``cwd`` itself), else
    ``path`` normalized. Lexical only (the files may not exist here), and the same on every
    host: the payload may come from a Windows machine."""
    normalized = posixpath.normpath(_as_posix(path))
    if not cwd or not (normalized.startswith("/") or _WINDOWS_ABSOLUTE.match(normalized)):
        return normalized
    base = posixpath.normpath(_as_posix(cwd))
    if normalized == base:
        return "."
    prefix = base.rstrip("/") + "/"
    return normalized.removeprefix(prefix) if normalized.startswith(prefix) else normalized


def _as_posix(path: str) -> str:
    return path.replace("\\", "/") if _WINDOWS_ABSOLUTE.match(path) else path


def _target(text: str) -> str:
    return _clip_line(text, TITLE_TARGET_CHARS)


def _clip_line(text: str, limit: int) -> str:
    """The first non-blank line of ``text``, whitespace collapsed, at most ``limit`` chars;
    an ellipsis marks what was left out (more characters or more lines)."""
    lines = [line for line in text.splitlines() if line.strip()]
    line = " ".join(lines[0].split()) if lines else ""
    if len(lines) > 1:
        line += " …"
    return line if len(line) <= limit else line[: limit - 1].rstrip() + "…"


def _clip_block(text: str, limit: int) -> str:
    """``text`` stripped, at most ``limit`` characters, newlines kept."""
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def _first_line(value: Any) -> str:
    if not isinstance(value, str):
        return ""
    return next((line.strip() for line in value.splitlines() if line.strip()), "")


def _integer(value: Any) -> int | None:
    if isinstance(value, int) and not isinstance(value, bool) and value in _INT_RANGE:
        return value
    return None


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))
