"""One tool call as an observation: its tool's rule, and what a failure changes."""

from __future__ import annotations

import re
from typing import Final

from memq.limits import (
    EXTRACT_OUTPUT_CHARS,
    EXTRACT_OUTPUT_HEAD_LINES,
    EXTRACT_OUTPUT_TAIL_LINES,
)
from memq.memory.records import ObservationKind, ObservationRecord
from memq.processors.extract._call import ToolCall
from memq.processors.extract._text import clip_line, cut_middle, unique
from memq.processors.extract.described import (
    EXIT_CODE_LINE,
    FACT_CHARS,
    TITLE_TARGET_CHARS,
    response_text,
)
from memq.processors.extract.tools import RULES, TOOL_KINDS, describe_other

MAX_FACTS: Final = 6
_ERROR_WORD: Final = re.compile(r"error|exception|failed|fatal|panic|denied|no such", re.I)


def describe(call: ToolCall) -> ObservationRecord:
    """The observation of ``call`` by its tool's rule, before any evidence from its turn."""
    kind = TOOL_KINDS.get(call.tool, ObservationKind.OTHER)
    described = RULES.get(call.tool, describe_other)(call)
    facts = list(described.facts)
    title = described.title
    files_modified = described.files_modified
    excerpt = described.excerpt
    if call.failed:
        title = described.failure_title or _failure_title(call.tool, described.target)
        reason = _failure_reason(call.error)
        facts.insert(0, f"failed: {reason}" if reason else "failed")  # first: never capped
        files_modified = ()  # a failed call changed nothing; the title names its target
        excerpt = None  # what went wrong, not what was meant to change
    elif described.kind is not None:
        kind = described.kind
    return ObservationRecord(
        kind=kind,
        title=clip_line(title, 2 * TITLE_TARGET_CHARS),
        subtitle=clip_line(described.subtitle, 2 * TITLE_TARGET_CHARS),
        narrative=described.narrative,
        facts=tuple(clip_line(f, FACT_CHARS) for f in unique(facts) if f)[:MAX_FACTS],
        concepts=(),
        files_read=tuple(unique(described.files_read)),
        files_modified=tuple(unique(files_modified)),
        tool_name=call.tool if call.tool else None,
        command=described.command,
        exit_code=described.exit_code,
        excerpt=output_excerpt(call) if excerpt is None else excerpt,
    )


def _failure_title(tool: str, what: str) -> str:
    tool = tool or "A tool"
    return f"{tool} failed: {what}" if what else f"{tool} failed"


def _failure_reason(error: str) -> str:
    """The line of a failure's error that says most: the first that names an error in more
    than a banner (a test runner's ``=== FAILURES ===`` is one), else the first that says
    more than the exit code."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    telling = [line for line in lines if not EXIT_CODE_LINE.match(line)]
    for line in telling if len(telling) > 1 else ():
        words = line.strip("=-_*# ").split()
        if len(words) > 1 and _ERROR_WORD.search(line):
            return " ".join(words)
    return telling[0] if telling else (lines[0] if lines else "")


def output_excerpt(call: ToolCall) -> str:
    """The call's error and output text, its head and tail kept and the cut marked."""
    parts = (call.error.strip(), response_text(call.response, 0).strip())
    text = "\n".join(p for p in unique(parts) if p)
    return cut_middle(
        text, EXTRACT_OUTPUT_HEAD_LINES, EXTRACT_OUTPUT_TAIL_LINES, EXTRACT_OUTPUT_CHARS
    )
