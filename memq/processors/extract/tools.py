"""Each tool's rule: what one call of it did, on which files, and the kind that says so."""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, Final

from memq.limits import EXTRACT_DIFF_CHARS, EXTRACT_NEW_FILE_LINES
from memq.memory.records import ObservationKind
from memq.processors.extract._call import ToolCall
from memq.processors.extract._text import (
    INT_RANGE,
    clip_block,
    clip_line,
    cut_head,
    first_line,
    integer,
    relative_path,
    unique,
)
from memq.processors.extract.described import (
    EXIT_CODE_LINE,
    FACT_CHARS,
    NARRATIVE_CHARS,
    Described,
    response_text,
    target,
)
from memq.processors.extract.diffs import change_counts, diff_of

# A name replaced by another everywhere in a file: a rename of a symbol.
_IDENTIFIER: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*")
_MOVE_FLAGS: Final = frozenset({"-f", "-n", "-v", "-k", "-i", "--force", "--verbose"})

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
        "ExitPlanMode": ObservationKind.OTHER,  # a decision once approved (see its rule)
        "AskUserQuestion": ObservationKind.OTHER,  # a decision once answered
    }
)


def _describe_write(call: ToolCall) -> Described:
    path = call.path("file_path", "path")
    created = call.response_field("type") == "create"
    content = call.text("content")
    lines = content.count("\n") + (1 if content and not content.endswith("\n") else 0)
    facts = [f"{lines} line{'s' if lines != 1 else ''} written"] if content else []
    diff = diff_of(call)
    facts.append(_counts_fact(diff))
    verb = "Created" if created else "Wrote"
    return Described(
        title=f"{verb} {target(path)}" if path else "Wrote a file",
        target=target(path),
        facts=facts,
        files_modified=[path] if path else [],
        excerpt=diff or None,
    )


def _describe_edit(call: ToolCall) -> Described:
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
    renamed = _renamed_symbol(call)
    if renamed:
        facts.append(f"renamed {renamed[0]} to {renamed[1]}")
    elif call.input.get("replace_all") is True:
        facts.append("replaced every occurrence")
    paths = [p for p in unique(paths) if p]
    edit_mode = call.text("edit_mode")
    if edit_mode:
        facts.append(f"cell {edit_mode}")
    diff = diff_of(call)
    facts.append(_counts_fact(diff))
    noun = "notebook" if call.tool == "NotebookEdit" else "file"
    if not paths:
        title = f"Edited a {noun}"
    else:
        title = f"Edited {'notebook ' if noun == 'notebook' else ''}{target(paths[0])}"
        if len(paths) > 1:
            title += f" and {len(paths) - 1} more"
    if renamed:
        title = f"Renamed {renamed[0]} to {renamed[1]}" + (
            f" in {target(paths[0])}" if paths else ""
        )
    return Described(
        title=title,
        target=target(paths[0]) if paths else "",
        facts=facts,
        files_modified=paths,
        excerpt=diff or None,
        kind=ObservationKind.REFACTOR if renamed else None,
    )


def _renamed_symbol(call: ToolCall) -> tuple[str, str] | None:
    """(old, new) when every edit of the call replaces one name with another everywhere:
    a rename, which keeps behaviour. None for anything else."""
    edits = call.input.get("edits")
    candidates: list[Any] = list(edits) if isinstance(edits, list) else [call.input]
    pairs = set()
    for edit in candidates:
        if not isinstance(edit, Mapping) or edit.get("replace_all") is not True:
            return None
        old, new = edit.get("old_string"), edit.get("new_string")
        if not (isinstance(old, str) and isinstance(new, str) and old != new):
            return None
        if not (_IDENTIFIER.fullmatch(old) and _IDENTIFIER.fullmatch(new)):
            return None
        pairs.add((old, new))
    return next(iter(pairs)) if len(pairs) == 1 else None


def _counts_fact(diff: str) -> str:
    added, removed = change_counts(diff)
    if not (added or removed):
        return ""
    return f"{added} line{'s' if added != 1 else ''} added, {removed} removed"


def _describe_read(call: ToolCall) -> Described:
    path = call.path("file_path", "path", "notebook_path")
    offset, limit = call.number("offset"), call.number("limit")
    subtitle = ""
    if offset is not None and limit is not None:
        subtitle = f"lines {offset}-{offset + limit - 1}"
    elif offset is not None:
        subtitle = f"from line {offset}"
    elif limit is not None:
        subtitle = f"first {limit} lines"
    return Described(
        title=f"Read {target(path)}" if path else "Read a file",
        target=target(path),
        subtitle=subtitle,
        files_read=[path] if path else [],
    )


def _describe_ls(call: ToolCall) -> Described:
    path = call.path("path", "file_path")
    return Described(
        title=f"Listed {target(path)}" if path else "Listed a directory",
        target=target(path),
        files_read=[path] if path else [],
    )


def _describe_search(call: ToolCall) -> Described:
    pattern = call.text("pattern")
    path = call.path("path")
    where = f" in {target(path)}" if path and path != "." else ""
    quoted = f"'{target(pattern)}'"
    if call.tool == "Glob":
        title = f"Searched for files matching {quoted}{where}" if pattern else "Searched files"
    else:
        title = f"Searched for {quoted}{where}" if pattern else f"Searched{where}"
    facts = [f"{name}: {call.text(name)}" for name in ("glob", "type") if call.text(name)]
    files = integer(call.response_field("numFiles"))
    matches = integer(call.response_field("numMatches"))
    if matches is not None:
        facts.append(f"{matches} match{'es' if matches != 1 else ''}")
    if files is not None:
        facts.append(f"{files} file{'s' if files != 1 else ''} found")
    return Described(
        title=title,
        target=quoted if pattern else target(path),
        facts=facts,
        files_read=[path] if path else [],
    )


def _describe_bash(call: ToolCall) -> Described:
    command = call.text("command").strip()
    interrupted = call.response_field("interrupted") is True
    exit_code = _exit_code(call, interrupted=interrupted)
    shown = f"`{target(command)}`" if command else "a command"
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
    stderr = first_line(call.response_field("stderr"))
    if stderr:
        facts.append(f"stderr: {stderr}")
    title, kind, moved = f"Ran {shown}{outcome}", None, _moved(command)
    paths = [relative_path(path, call.cwd) for path in moved] if moved and exit_code == 0 else []
    if paths:
        title, kind = f"Moved {target(paths[0])} to {target(paths[1])}", ObservationKind.REFACTOR
    return Described(
        title=title,
        target=shown,
        subtitle=call.text("description"),
        facts=facts,
        files_modified=paths,
        command=command or None,
        exit_code=exit_code,
        failure_title=f"Ran {shown}{outcome}",
        kind=kind,
    )


def _moved(command: str) -> tuple[str, str] | None:
    """(source, destination) of a lone ``mv`` or ``git mv`` of one path; None otherwise."""
    if any(mark in command for mark in ("&", ";", "|", "\n", "`", "$(", ">", "<", "*")):
        return None
    try:
        words = shlex.split(command)
    except ValueError:
        return None
    if words[:2] == ["git", "mv"]:
        words = words[1:]
    if not words or words[0] != "mv":
        return None
    operands = [word for word in words[1:] if word not in _MOVE_FLAGS]
    if len(operands) != 2 or any(word.startswith("-") for word in operands):
        return None
    return operands[0], operands[1]


def _describe_web_fetch(call: ToolCall) -> Described:
    url = call.text("url").strip()
    facts = []
    status = integer(call.response_field("code"))
    if status is not None:
        facts.append(f"HTTP {status}")
    return Described(
        title=f"Fetched {target(url)}" if url else "Fetched a web page",
        target=target(url),
        subtitle=call.text("prompt"),
        facts=facts,
    )


def _describe_web_search(call: ToolCall) -> Described:
    query = call.text("query").strip()
    return Described(
        title=f"Searched the web for '{target(query)}'" if query else "Searched the web",
        target=f"'{target(query)}'" if query else "",
    )


def _describe_agent(call: ToolCall) -> Described:
    description = call.text("description").strip()
    agent_type = call.text("subagent_type").strip()
    facts = [f"agent: {agent_type}"] if agent_type else []
    status = call.response_field("status")
    if isinstance(status, str) and status:
        facts.append(f"status: {status}")
    answer = response_text(call.response_field("content"), 0) or (
        call.response if isinstance(call.response, str) else ""
    )
    return Described(
        title=f"Ran agent: {target(description)}" if description else "Ran an agent",
        target=target(description),
        subtitle=agent_type,
        narrative=clip_block(answer, NARRATIVE_CHARS),
        facts=facts,
    )


def _describe_todo_write(call: ToolCall) -> Described:
    todos = call.input.get("todos")
    facts = []
    if isinstance(todos, list):
        done = sum(1 for t in todos if isinstance(t, Mapping) and t.get("status") == "completed")
        facts.append(f"{done} of {len(todos)} todos completed")
    return Described(title="Updated the todo list", facts=facts)


def _describe_task_create(call: ToolCall) -> Described:
    subject = call.text("subject").strip()
    return Described(
        title=f"Created task: {target(subject)}" if subject else "Created a task",
        target=target(subject),
        subtitle=call.text("description"),
    )


def _describe_task_update(call: ToolCall) -> Described:
    task_id = call.text("taskId").strip() or (
        str(n) if (n := call.number("taskId")) is not None else ""
    )
    status = call.text("status").strip()
    name = f"task {target(task_id)}" if task_id else "a task"
    title = f"Updated {name}" + (f": {target(status)}" if status else "")
    facts = []
    change = call.response_field("statusChange")
    if isinstance(change, Mapping):
        before, after = change.get("from"), change.get("to")
        if isinstance(before, str) and isinstance(after, str):
            facts.append(f"status {before} -> {after}")
    return Described(title=title, target=name, facts=facts)


def _describe_plan(call: ToolCall) -> Described:
    """An approved plan is a decision the transcript states; a rejected one (the call
    failed) is not."""
    plan = call.text("plan").strip()
    heading = target(plan.splitlines()[0].lstrip("# ")) if plan else ""
    return Described(
        title=f"Plan approved: {heading}" if heading else "Plan approved",
        target=heading,
        excerpt=cut_head(plan, EXTRACT_NEW_FILE_LINES, EXTRACT_DIFF_CHARS) if plan else "",
        kind=ObservationKind.DECISION if plan else None,
        failure_title="Plan not approved" + (f": {heading}" if heading else ""),
    )


def _describe_question(call: ToolCall) -> Described:
    """The user's answers to the assistant's questions are decisions; unanswered, a note."""
    answers = call.response_field("answers")
    chosen = [
        f"{clip_line(question, FACT_CHARS // 2)} -> {clip_line(answer, FACT_CHARS // 2)}"
        for question, answer in (answers.items() if isinstance(answers, Mapping) else ())
        if isinstance(question, str) and isinstance(answer, str) and answer.strip()
    ]
    questions = call.input.get("questions")
    first = questions[0] if isinstance(questions, list) and questions else None
    asked = first.get("question") if isinstance(first, Mapping) else None
    if chosen:
        answer = chosen[0].rsplit(" -> ", 1)[1]
        return Described(
            title=f"Decided: {target(answer)}",
            subtitle=chosen[0].rsplit(" -> ", 1)[0],
            facts=chosen,
            kind=ObservationKind.DECISION,
        )
    asked_text = target(asked) if isinstance(asked, str) else ""
    return Described(title=f"Asked: {asked_text}" if asked_text else "Asked the user")


def describe_other(call: ToolCall) -> Described:
    tool = call.tool or "an unknown tool"
    return Described(title=f"Used {target(tool)}", target="")


RULES: Final[Mapping[str, Callable[[ToolCall], Described]]] = MappingProxyType(
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
        "ExitPlanMode": _describe_plan,
        "AskUserQuestion": _describe_question,
    }
)


def _exit_code(call: ToolCall, *, interrupted: bool) -> int | None:
    """From the response if it has one; from a failure's "Exit code N" line; 0 for a plain
    success; None when unknown (an interrupted command, a failure without a code, a response
    that says ``"exit_code": null``: an adapter that could not learn it)."""
    response = call.response
    for key in ("exit_code", "exitCode", "returncode", "code"):
        code = integer(call.response_field(key))
        if code is not None:
            return code
        if isinstance(response, dict) and key in response and response[key] is None:
            return None
    if call.failed:
        match = EXIT_CODE_LINE.search(call.error)
        code = int(match.group(1)) if match else None
        return code if code is not None and code in INT_RANGE else None
    return None if interrupted else 0
