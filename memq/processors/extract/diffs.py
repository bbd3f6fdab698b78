"""Edits as compact diffs: what changed, with a few lines of context, never whole files.

- ``Edit`` / ``MultiEdit``: the tool's own ``structuredPatch`` when the response has one (real
  line numbers, context trimmed to ``EXTRACT_DIFF_CONTEXT_LINES``); else a unified diff of each
  ``old_string`` -> ``new_string`` (its hunks headed ``@@`` alone: a snippet has no line
  numbers in the file).
- ``Write`` of an existing file: its ``structuredPatch``, else a diff of the payload's
  ``originalFile`` against the new content. A new file (or one whose old content the payload
  does not give): its first ``EXTRACT_NEW_FILE_LINES`` lines, the cut marked.
- ``NotebookEdit``: the cell's new source, its head.

Every diff is cut to ``EXTRACT_DIFF_LINES`` lines and ``EXTRACT_DIFF_CHARS`` characters, its
head and tail kept and the cut marked.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

from memq.limits import (
    EXTRACT_DIFF_CHARS,
    EXTRACT_DIFF_CONTEXT_LINES,
    EXTRACT_DIFF_LINES,
    EXTRACT_NEW_FILE_LINES,
)
from memq.processors.extract._call import ToolCall, tool_call
from memq.processors.extract._text import cut_head, cut_middle, integer

_HUNK_HEADER: Final = re.compile(r"^@@ .* @@$")
_MAX_HUNKS: Final = 50  # of a structuredPatch; more are cut like any long diff
_MAX_EDITS: Final = 50  # of a MultiEdit


def edit_diff(payload: Any) -> str:
    """The compact diff of an edit's payload (Edit, MultiEdit, Write, NotebookEdit); '' for
    other tools, failed calls and edits that say too little. ``InvalidInputError`` when
    ``payload`` is not a JSON object."""
    return diff_of(tool_call(payload))


def diff_of(call: ToolCall) -> str:
    """The compact diff of ``call`` (see ``edit_diff``)."""
    if call.failed:
        return ""
    lines: list[str] = []
    if call.tool in ("Edit", "MultiEdit"):
        lines = _patch_lines(call.response_field("structuredPatch")) or _edit_lines(call)
    elif call.tool == "Write":
        return _write_diff(call)
    elif call.tool == "NotebookEdit":
        source = call.text("new_source")
        return cut_head(source, EXTRACT_NEW_FILE_LINES, EXTRACT_DIFF_CHARS) if source else ""
    return _cut(lines)


def change_counts(diff: str) -> tuple[int, int]:
    """Lines added and removed in a diff made here (0, 0 for a new file's head)."""
    lines = diff.splitlines()
    if not any(_HUNK_HEADER.match(line) or line == "@@" for line in lines):
        return 0, 0
    added = sum(1 for line in lines if line.startswith("+"))
    removed = sum(1 for line in lines if line.startswith("-"))
    return added, removed


def _write_diff(call: ToolCall) -> str:
    patch = _patch_lines(call.response_field("structuredPatch"))
    if patch:
        return _cut(patch)
    original = call.response_field("originalFile")
    content = call.text("content") or call.response_text("content")
    if isinstance(original, str) and call.response_field("type") != "create":
        return _cut(_unified(original, content, numbered=True))
    return cut_head(content, EXTRACT_NEW_FILE_LINES, EXTRACT_DIFF_CHARS) if content else ""


def _edit_lines(call: ToolCall) -> list[str]:
    """Diffs of the call's old -> new strings: the input's, else the response's."""
    edits = call.input.get("edits")
    pairs: list[tuple[str, str]] = []
    if isinstance(edits, list):
        for edit in edits[:_MAX_EDITS]:
            if isinstance(edit, Mapping):
                pairs.append((_string(edit.get("old_string")), _string(edit.get("new_string"))))
    else:
        old = call.text("old_string") or call.response_text("oldString")
        new = call.text("new_string") or call.response_text("newString")
        pairs.append((old, new))
    lines: list[str] = []
    for old, new in pairs:
        if old != new:
            lines += _unified(old, new, numbered=False)
    return lines


def _unified(old: str, new: str, *, numbered: bool) -> list[str]:
    """A unified diff's hunks (no file header lines); ``numbered`` False heads each hunk with
    a bare ``@@``."""
    diff = difflib.unified_diff(
        old.splitlines(), new.splitlines(), n=EXTRACT_DIFF_CONTEXT_LINES, lineterm=""
    )
    lines = [line for line in diff if not line.startswith(("--- ", "+++ "))]
    return lines if numbered else ["@@" if line.startswith("@@") else line for line in lines]


def _patch_lines(patch: Any) -> list[str]:
    """Claude Code's ``structuredPatch`` (hunks of ``oldStart``, ``oldLines``, ``newStart``,
    ``newLines`` and prefixed ``lines``) as unified-diff lines, each hunk's context trimmed;
    [] when it is not one."""
    if not isinstance(patch, list):
        return []
    lines: list[str] = []
    for hunk in patch[:_MAX_HUNKS]:
        if not isinstance(hunk, Mapping):
            return []
        body = hunk.get("lines")
        old_start, new_start = integer(hunk.get("oldStart")), integer(hunk.get("newStart"))
        if not isinstance(body, list) or old_start is None or new_start is None:
            return []
        body = [line for line in body if isinstance(line, str)]
        lines += _trimmed_hunk(body, old_start, new_start)
    return lines


def _trimmed_hunk(body: Sequence[str], old_start: int, new_start: int) -> list[str]:
    changed = [i for i, line in enumerate(body) if line.startswith(("-", "+"))]
    if not changed:
        return []
    first = max(changed[0] - EXTRACT_DIFF_CONTEXT_LINES, 0)
    last = min(changed[-1] + EXTRACT_DIFF_CONTEXT_LINES, len(body) - 1)
    kept = body[first : last + 1]
    before = body[:first]
    old_start += sum(1 for line in before if not line.startswith("+"))
    new_start += sum(1 for line in before if not line.startswith("-"))
    old_count = sum(1 for line in kept if line.startswith((" ", "-")))
    new_count = sum(1 for line in kept if line.startswith((" ", "+")))
    return [f"@@ -{old_start},{old_count} +{new_start},{new_count} @@", *kept]


def _cut(lines: list[str]) -> str:
    if not lines:
        return ""
    head = EXTRACT_DIFF_LINES * 2 // 3
    return cut_middle("\n".join(lines), head, EXTRACT_DIFF_LINES - head, EXTRACT_DIFF_CHARS)


def _string(value: Any) -> str:
    return value if isinstance(value, str) else ""
