"""The offline processor: memory records from hook payloads by rules, without a model.

Deterministic: the result depends only on the message and the context (no clock, no network,
no file system), so a replayed message gives an equal result. Hook payloads are taken as the
assistant sent them, so every field is checked for its type before use: a missing or odd field
makes a vaguer record, never an error. Only an observation payload that is not a JSON object
is refused (``InvalidInputError``): there is no tool call in it to describe.

A tool call's context is its turn (``MemoryStore.turn_for``: the session's last prompt and the
observations since). The rules:

Kinds come from evidence, else from the tool (``TOOL_KINDS``: change, discovery, search,
command, web, other):

- ``bugfix``: a command that passes (exit 0) whose latest earlier run in the turn failed
  (non-zero exit), with files edited in between. "Earlier run" is the same command, or the
  same test runner over the same or a wider selection (``pytest tests/a.py::t`` failed,
  ``pytest -q`` passed). The passing run is the record; its facts name the edits.
- ``refactor``: a lone ``mv`` / ``git mv`` of one path that succeeded, and an Edit or
  MultiEdit that replaces one name by another everywhere (``replace_all``, both identifiers).
- ``feature``: a new source file (a Write that created it; not a test, doc or config file)
  in a turn whose prompt asks for something new ("add", "implement", "support", ...). Either
  alone stays a ``change``.
- ``decision``: only what the transcript states: a plan the user approved (ExitPlanMode) and
  the user's answers to the assistant's questions (AskUserQuestion).
- A failed call keeps its tool's kind.

What is kept of a call's text (budgets in ``memq.limits``): an edit as a compact unified diff
with a few lines of context (``memq.processors.extract.diffs``), a new file as its first lines;
any other output (Bash stdout and stderr, a Read's content, a failure's error) with its head
and tail, the lines between replaced by ``… [N lines cut] …``.

Noise makes no record (``memq.processors.extract.noise``); the message is still acked: a
repeated read or search (same tool, target, range and output as earlier in the turn; no edit
of the file read, of any file for a search, and no command in between that may write: only
reads like ``cat``/``grep``/``git diff`` and test runs without a snapshot-update flag do not),
a no-op command that succeeded (``pwd``, ``cd DIR``, ``ls`` without a path, ``echo`` of
nothing, ``true``, ``clear``, several joined by ``&&``/``;``, without pipe, redirection or
substitution; ``git status`` saying "nothing to commit, working tree clean", or a short
``git status -s`` printing nothing), and memq's own MCP tools. The assistant's other
bookkeeping (TodoWrite, Task*) is left out by the hook's ``skip_tools``; when a user records
them they are kept, as kind ``other``.

A summary (``memq.processors.extract.summary``) fills ``request`` from the turn's prompts,
``investigated`` from what was read and searched, ``next_steps`` only when the last reply
states them (a "Next steps" / "TODO" / "Remaining" list or label, or a "the next step is"
sentence), ``completed`` from the rest of that reply (else the changes made), and ``notes``
with every command's outcome and every failure (and how many calls were left out as noise).
``learned`` stays empty: no rule can tell it.

Modules: ``tools`` (a rule per tool), ``observations`` (a call as a record, failures),
``diffs``, ``evidence`` (a call's turn, kinds from it), ``noise``, ``summary``.
"""

from __future__ import annotations

from typing import Any

from memq.memory.records import ObservationRecord, ProcessResult, SessionContext
from memq.processors.extract._call import tool_call, tool_call_payload
from memq.processors.extract._text import relative_path
from memq.processors.extract.diffs import edit_diff
from memq.processors.extract.evidence import Turn, refine, turn_of
from memq.processors.extract.noise import Noise, noise
from memq.processors.extract.observations import describe
from memq.processors.extract.summary import SUMMARY_TEXT_CHARS, next_steps, summarize
from memq.processors.extract.tools import TOOL_KINDS
from memq.queue import Message, MessageKind

__all__ = [
    "SUMMARY_TEXT_CHARS",
    "TOOL_KINDS",
    "ExtractProcessor",
    "Noise",
    "Turn",
    "edit_diff",
    "extract_observation",
    "next_steps",
    "noise_reason",
    "relative_path",
    "summarize",
    "tool_call_payload",
    "turn_of",
]


class ExtractProcessor:
    """The default processor: offline, deterministic, rule-based."""

    name: str = "extract"

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        """An observation for a tool call worth one, a summary for a summarize request, else
        nothing (the store still records the message)."""
        if message.kind is MessageKind.OBSERVATION:
            record = extract_observation(message.payload, context, message_id=message.id)
            if noise_reason(record, context, message_id=message.id) is not None:
                return ProcessResult()
            return ProcessResult(observation=record)
        if message.kind is MessageKind.SUMMARIZE:
            return ProcessResult(summary=summarize(message.payload, context))
        return ProcessResult()


def extract_observation(
    payload: Any, context: SessionContext | None = None, *, message_id: int | None = None
) -> ObservationRecord:
    """An observation from a Claude Code ``PostToolUse`` or ``PostToolUseFailure`` payload;
    with ``context``, its kind from the evidence of the call's turn (the observations before
    message ``message_id`` since the last prompt).

    Raises ``InvalidInputError`` when ``payload`` is not a JSON object.
    """
    call = tool_call(payload)
    record = describe(call)
    if context is None:
        return record
    return refine(record, call, turn_of(context, message_id))


def noise_reason(
    record: ObservationRecord,
    context: SessionContext | None = None,
    *,
    message_id: int | None = None,
) -> Noise | None:
    """Why ``record`` (from ``extract_observation``) is not worth storing, given its turn in
    ``context``; None when it is."""
    return noise(record, turn_of(context, message_id).observations)
