"""A summary of a batch (a turn, up to its Stop) from its prompts, its observations and the
assistant's last reply."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any, Final

from memq.memory.records import ObservationKind, ObservationRecord, SessionContext, SummaryRecord
from memq.processors.extract._text import clip_block, clip_line, unique
from memq.processors.extract.described import TITLE_TARGET_CHARS

SUMMARY_TEXT_CHARS: Final = 2000
SUMMARY_LINES: Final = 20

_INVESTIGATION_KINDS: Final = frozenset(
    {ObservationKind.DISCOVERY, ObservationKind.SEARCH, ObservationKind.WEB}
)
_STEP_WORDS: Final = (
    r"next\s+steps?|to\s*-?\s*dos?|remaining(?:\s+(?:work|steps|tasks|items))?"
    r"|still\s+to\s+do|left\s+to\s+do|follow[- ]?ups?|open\s+items"
)
# A heading line ("## Next steps", "**Remaining:**") or a labelled line ("TODO: x").
_STEPS_LINE: Final = re.compile(
    rf"^\s*(?:#{{1,6}}\s*)?[*_]{{0,2}}\s*({_STEP_WORDS})\s*[*_]{{0,2}}\s*(:)?\s*[*_]{{0,2}}\s*(.*?)\s*$",
    re.IGNORECASE,
)
# A sentence: "The next step is to run the migration."
_STEPS_SENTENCE: Final = re.compile(
    r"\bnext\s+steps?\s+(?:is|are|would\s+be|will\s+be)\s*:?\s*(?:to\s+)?([^\n.]+)",
    re.IGNORECASE,
)
# A list item: a bullet or a number, a task box, or both ("- [ ] rename the module").
_LIST_ITEM: Final = re.compile(
    r"^\s*(?:(?:[-*•+]|\d{1,3}[.)])\s+(?:\[[ xX]?\]\s+)?|\[[ xX]?\]\s+)(.*\S)\s*$"
)


def summarize(payload: Any, context: SessionContext) -> SummaryRecord:
    """A summary of the batch that a ``Stop`` payload closes, from the session's prompts and
    observations since its last summary and the assistant's last reply."""
    fields = payload if isinstance(payload, Mapping) else {}
    prompts = [p.text.strip() for p in context.prompts if p.text.strip()]
    last_prompt = fields.get("last_user_prompt")
    if not prompts and isinstance(last_prompt, str) and last_prompt.strip():
        prompts = [last_prompt.strip()]
    observations = context.observations
    investigated = _lines(o.title for o in observations if o.kind in _INVESTIGATION_KINDS)
    last_message = fields.get("last_assistant_message")
    reply = last_message.strip() if isinstance(last_message, str) else ""
    steps, completed = next_steps(reply)
    if not completed:
        completed = _lines(
            o.title
            for o in observations
            if (o.files_modified or o.kind is ObservationKind.BUGFIX) and not is_failed(o)
        )
    return SummaryRecord(
        request=clip_block("\n".join(prompts), SUMMARY_TEXT_CHARS),
        investigated=investigated,
        learned="",
        completed=clip_block(completed, SUMMARY_TEXT_CHARS),
        next_steps=clip_block(steps, SUMMARY_TEXT_CHARS),
        files_read=tuple(unique(f for o in observations for f in o.files_read)),
        files_edited=tuple(unique(f for o in observations for f in o.files_modified)),
        notes=_lines([*(_note(o) for o in observations), _left_out(context.left_out)]),
    )


def next_steps(reply: str) -> tuple[str, str]:
    """(the next steps the reply states, the reply without them). Steps are a list or a line
    under a "Next steps" / "TODO" / "Remaining" heading or label, or a "the next step is to
    ..." sentence; ('', reply) when it states none."""
    lines = reply.splitlines()
    for index, line in enumerate(lines):
        match = _STEPS_LINE.match(line)
        if match is None:
            continue
        inline = match.group(3)
        if inline and not match.group(2):
            continue  # "Remaining tests pass": a sentence, not a label
        items = [inline] if inline else []
        end = index + 1
        while end < len(lines):
            item = _LIST_ITEM.match(lines[end])
            if item:
                items.append(item.group(1))
            elif lines[end].strip() or items:
                break
            end += 1
        if items:
            parts = ("\n".join(lines[:index]).strip(), "\n".join(lines[end:]).strip())
            return "\n".join(items), "\n\n".join(part for part in parts if part)
    sentence = _STEPS_SENTENCE.search(reply)
    if sentence:
        return sentence.group(1).strip(), reply
    return "", reply


def is_failed(observation: ObservationRecord) -> bool:
    """Whether the call the observation describes failed (its first fact says so)."""
    return any(f == "failed" or f.startswith("failed: ") for f in observation.facts)


def _note(observation: ObservationRecord) -> str:
    """A line for the summary's notes: every command with its exit code, every failure."""
    if observation.command is not None:
        code = observation.exit_code
        outcome = f"exit {code}" if code is not None else "no exit code"
        return f"$ {clip_line(observation.command, TITLE_TARGET_CHARS)} ({outcome})"
    if is_failed(observation):
        return observation.title
    return ""


def _left_out(count: int) -> str:
    if count <= 0:
        return ""
    calls = f"{count} tool call{'s' if count != 1 else ''}"
    return f"{calls} not recorded (repeated reads, no-op commands)"


def _lines(items: Iterable[str]) -> str:
    """Distinct non-empty lines, in first-seen order, at most ``SUMMARY_LINES`` of them."""
    found = [item for item in unique(items) if item]
    shown = found[:SUMMARY_LINES]
    if len(found) > SUMMARY_LINES:
        shown.append(f"... and {len(found) - SUMMARY_LINES} more")
    return "\n".join(shown)
