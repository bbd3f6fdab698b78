"""The context after a compaction: what the session at hand had done, for a model that lost it.

When Claude Code compacts a conversation (SessionStart with ``source`` ``compact``) or
resumes one (``resume``), the model goes on with the same session, so the project's history
alone is the wrong answer: what it lost is this session's own work. The recap gives, within
the token budget and in this order:

1. the session's latest summary (its request, what was completed and learned, next steps);
2. the prompts and observations since that summary (the session's history,
   ``MemoryStore.history``), oldest first, the newest kept when not all fit;
3. the files the session changed, the most recently changed first;
4. when budget remains, the project's context without this session (``memq.memory.context``).

Every line carries its record's reference and the whole text is fenced as recalled reference
data (``memq.memory.fence``), as the SessionStart context is. A ``clear`` starts a new
session on purpose, to leave the old conversation behind: it gets the project's context,
which leads with the latest sessions (the cleared one among them), not a recap.

    history = await store.history(session_key, RECAP_ITEMS)
    shown = await build_recap(builder, session_key, history, project=project)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import aiosqlite

from memq.limits import DEFAULT_CONTEXT_BUDGET
from memq.memory.context import (
    CHARS_PER_TOKEN,
    NOTHING_SHOWN,
    ContextBuilder,
    ContextShown,
    Layout,
    add_project_context,
    aware_now,
    context_footer,
    observation_line,
    one_line,
    record_ref,
    relative_time,
    short_files,
    summary_block,
)
from memq.memory.fence import LABEL
from memq.memory.history import History, HistoryEntry
from memq.memory.records import PromptRecord, RecordType, SummaryRecord
from memq.memory.refs import RecordRef
from memq.memory.rows import summary_from_row
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("recap")

# SessionStart sources that continue the session at hand (Claude Code's ``source``).
RECAP_SOURCES: Final = frozenset({"compact", "resume"})
RECAP_ITEMS: Final = 24  # prompts and observations since the latest summary, at most
RECAP_FILES: Final = 12  # files named in the files line, at most
FILES_SCAN: Final = 500  # the session's newest observations looked at for its files
PROMPT_CHARS: Final = 200
SUMMARY_TITLE: Final = "This session's latest summary:"
SINCE_TITLE: Final = "This session since then (oldest first):"
FILES_TITLE: Final = "Files this session changed (latest first):"


@dataclass(frozen=True, slots=True)
class SessionRecap:
    """What memory holds of one session for its recap."""

    session_key: str
    project: str | None
    summary: SummaryRecord | None
    history: History
    files: tuple[str, ...]


def recap_note(project: str | None) -> str:
    """The fence's first line for a recap."""
    where = f" in {project}" if project else ""
    return (
        f"memq recalled these notes of this session so far and of earlier sessions{where}. {LABEL}"
    )


def add_recap(layout: Layout, recap: SessionRecap, project: str, now: datetime) -> None:
    """Add the recap's sections to ``layout``, as much as fits: the summary (whole, else its
    first line), the history from its newest entry back, then the files."""
    if recap.summary is not None:
        section = layout.section(SUMMARY_TITLE)
        block = summary_block(recap.summary, project, now, {})
        ref = record_ref(RecordType.SUMMARY, recap.summary.id)
        if not layout.add(section, block, ref):
            layout.add(section, block[:1], ref)
    _add_history(layout, recap.history, project, now)
    files = short_files(recap.files, project, RECAP_FILES, exclude="")
    if files:
        layout.add(layout.section(FILES_TITLE), [files])


def _add_history(layout: Layout, history: History, project: str, now: datetime) -> None:
    """The history's entries, fitted newest first and shown oldest first; a line counting
    the earlier ones left out, when it fits."""
    section = layout.section(SINCE_TITLE)
    entries: Sequence[HistoryEntry] = history.items
    shown = 0
    for entry in reversed(entries):
        line = history_line(entry, project, now)
        if not layout.add(section, [line], _record_ref(entry), first=True):
            break
        shown += 1
    left_out = history.omitted + len(entries) - shown
    if shown and left_out:
        layout.add(section, [f"(and {left_out} earlier, not shown)"], first=True)


def history_line(entry: HistoryEntry, project: str, now: datetime) -> str:
    """A prompt, ``- #P3 5m ago [prompt] Fix the retry logic``, or an observation's index
    line."""
    if isinstance(entry, PromptRecord):
        when = relative_time(entry.created_at, now)
        text = one_line(entry.text, PROMPT_CHARS) or "(empty prompt)"
        return f"- {_record_ref(entry)} {when} [prompt] {text}"
    return observation_line(entry, project, now)


def _record_ref(entry: HistoryEntry) -> RecordRef:
    if isinstance(entry, PromptRecord):
        return RecordRef(RecordType.PROMPT, entry.id)
    return RecordRef(RecordType.OBSERVATION, entry.id or 0)


async def read_recap(
    conn: aiosqlite.Connection, session_key: str, history: History | None
) -> SessionRecap | None:
    """The session's recap from ``conn`` and its ``history``; None when memory does not
    know the session."""
    params = {"session_key": session_key}
    sessions = list(await conn.execute_fetchall(QUERIES["recap_session"], params))
    if not sessions:
        return None
    summaries = list(await conn.execute_fetchall(QUERIES["recap_summary"], params))
    files = await conn.execute_fetchall(
        QUERIES["recap_files"], {**params, "scan": FILES_SCAN, "limit": RECAP_FILES + 1}
    )
    return SessionRecap(
        session_key=session_key,
        project=sessions[0]["project"],
        summary=summary_from_row(summaries[0]) if summaries else None,
        history=history or History(),
        files=tuple(str(row["path"]) for row in files),
    )


async def build_recap(
    builder: ContextBuilder,
    session_key: str,
    history: History | None,
    *,
    project: str | None,
    budget_tokens: int = DEFAULT_CONTEXT_BUDGET,
    now: datetime | None = None,
) -> ContextShown:
    """The recap of ``session_key`` (its ``history`` read by ``MemoryStore.history``), then
    the context of ``project`` (default: the session's) without it, within
    ``budget_tokens``; nothing shown when memory holds nothing of either."""
    if budget_tokens <= 0:
        return NOTHING_SHOWN
    at = aware_now(now)
    async with builder.snapshot() as conn:
        recap = await read_recap(conn, session_key, history)
        where = project or (recap.project if recap is not None else None)
        layout = Layout(budget_tokens * CHARS_PER_TOKEN, recap_note(where), context_footer(where))
        if recap is not None:
            add_recap(layout, recap, where or "", at)
        if where is not None:
            await add_project_context(conn, layout, where, session_key, at)
    return layout.shown()
