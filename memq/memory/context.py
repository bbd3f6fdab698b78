"""The SessionStart context: a short plain text of what memory holds about a project.

At the start of a session Claude Code adds this text to the model's context, so it must be
short, within a token budget, and cheap to build however much memory the project holds::

    async with await ContextBuilder.open(path) as builder:   # after Queue.open migrated it
        text = await builder.build(project_for(cwd), budget_tokens=2000)

The text holds, in this order: a header naming the project; the project's latest session
summaries (request, completed, learned, next steps, files edited); an index of its newest
observations, newest first, one line each; a footer saying how to search memory for more.
Tokens are estimated as characters / 4 (rounded up) and the text never exceeds the budget:
summaries are fitted first, then as many observation lines as fit, and room for the footer is
always kept. When nothing of the project fits, or it has no memory, the text is empty.

Reads go through indexes with a LIMIT (see ``queries/context.sql`` and migration 0004): a
project's sessions most recently active first, and in each session its newest records, merged
a growing chunk of sessions per statement until no older session can hold a newer record. All
of a build's reads share one snapshot.
"""

from __future__ import annotations

import heapq
import itertools
import json
import shlex
import sqlite3
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import aiosqlite

from memq.limits import DEFAULT_CONTEXT_BUDGET, MAX_INTEGER
from memq.memory.reader import ReadsMemory
from memq.memory.records import ObservationKind, ObservationRecord, SummaryRecord, from_epoch_ms
from memq.memory.rows import strings_from_json, summary_from_row
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("context")

CHARS_PER_TOKEN: Final = 4
MAX_SUMMARIES: Final = 3  # the latest few summaries; older sessions show in the index
MAX_OBSERVATIONS: Final = 200  # index lines at most, whatever the budget
FIRST_PAGE: Final = 16  # sessions listed by the first statement of a merge ...
PAGE_GROWTH: Final = 4  # ... 4 times more by each next one ...
SESSION_PAGE: Final = 1024  # ... up to this many
CHUNK_GROWTH: Final = 4  # each merge statement reads 4 times the sessions of the last ...
MAX_CHUNK: Final = 256  # ... up to this many
FIELD_CHARS: Final = 240  # one summary field, on one line
TITLE_CHARS: Final = 120  # one observation title
FILE_CHARS: Final = 60  # one file name in a line
FILES_PER_LINE: Final = 2
FILES_PER_SUMMARY: Final = 6
# No index line is shorter than this: "- " + "2d ago" + " [" + "web" + "] " + one character.
MIN_LINE_CHARS: Final = 16
SESSIONS_TITLE: Final = "Latest sessions:"
INDEX_TITLE: Final = "Recent activity (newest first):"

_MINUTE: Final = 60
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY


def estimate_tokens(text: str) -> int:
    """The tokens ``text`` is taken to cost: its characters / 4, rounded up."""
    return -(-len(text) // CHARS_PER_TOKEN)


def relative_time(at: datetime, now: datetime) -> str:
    """``at`` as seen from ``now``: "just now", "5m ago", "3h ago", "2d ago", and a UTC date
    ("2025-01-31") from a week back. Times after ``now`` (clock skew) are "just now"."""
    seconds = (now - at).total_seconds()
    if seconds < _MINUTE:
        return "just now"
    if seconds < _HOUR:
        return f"{int(seconds // _MINUTE)}m ago"
    if seconds < _DAY:
        return f"{int(seconds // _HOUR)}h ago"
    if seconds < _WEEK:
        return f"{int(seconds // _DAY)}d ago"
    return at.astimezone(UTC).strftime("%Y-%m-%d")


def format_context(
    project: str,
    summaries: Sequence[SummaryRecord],
    observations: Iterable[ObservationRecord],
    *,
    budget_tokens: int,
    now: datetime,
    session_titles: dict[str, str] | None = None,
) -> str:
    """The context text of ``project`` within ``budget_tokens`` ("" when nothing fits).

    ``summaries`` and ``observations`` come newest first, with ``created_at`` set; the
    observations are drawn from the iterable only while they fit. Summaries are fitted first
    (a summary that does not fit whole is tried as its first line alone), then observation
    lines, stopping at the first that does not fit, so what is shown is always the newest.
    ``session_titles`` (session key to title) names a summary whose request is empty.
    """
    layout = _with_summaries(project, summaries, budget_tokens, now, session_titles or {})
    for observation in itertools.islice(observations, MAX_OBSERVATIONS):
        if not layout.add_line(_observation_line(observation, project, now)):
            break
    return layout.text()


def observation_room(
    project: str,
    summaries: Sequence[SummaryRecord],
    *,
    budget_tokens: int,
    now: datetime,
    session_titles: dict[str, str] | None = None,
) -> int:
    """At most how many observation lines can fit after ``summaries``: how many to read."""
    layout = _with_summaries(project, summaries, budget_tokens, now, session_titles or {})
    return min(MAX_OBSERVATIONS, max(0, layout.room_for_lines()) // (MIN_LINE_CHARS + 1))


def _with_summaries(
    project: str,
    summaries: Sequence[SummaryRecord],
    budget_tokens: int,
    now: datetime,
    titles: dict[str, str],
) -> _Layout:
    """A layout holding the summaries that fit: each whole, else its first line alone; the
    first that fits neither way ends the list, so the summaries shown are the newest."""
    layout = _Layout(project, max(0, budget_tokens) * CHARS_PER_TOKEN)
    for summary in summaries[:MAX_SUMMARIES]:
        block = _summary_block(summary, project, now, titles)
        if not (layout.add_block(block) or layout.add_block(block[:1])):
            break
    return layout


class _Layout:
    """The text under construction: an item is added only if the whole text stays within
    ``limit`` characters. ``length()`` is what ``len(text())`` would be, kept as items are
    added rather than measured again each time (tests compare the two)."""

    def __init__(self, project: str, limit: int) -> None:
        self.project = project
        self.limit = limit
        self.blocks: list[str] = []  # one summary each, possibly several lines
        self.lines: list[str] = []  # one observation each
        self.header = f"Memory of earlier sessions in {project} (from memq):"
        self.footer = f'Search memq: memq search "<words>" --project {shlex.quote(project)}'
        self._blocks_chars = 0  # the blocks, each after a newline
        self._lines_chars = 0  # the lines, each after a newline

    def text(self) -> str:
        if not self.blocks and not self.lines:
            return ""
        sections = [self.header]
        if self.blocks:
            sections.append("\n".join([SESSIONS_TITLE, *self.blocks]))
        if self.lines:
            sections.append("\n".join([INDEX_TITLE, *self.lines]))
        sections.append(self.footer)
        return "\n\n".join(sections)

    def length(self, blocks_chars: int | None = None, lines_chars: int | None = None) -> int:
        """The text's length, or what it would be with other totals of blocks and lines."""
        blocks = self._blocks_chars if blocks_chars is None else blocks_chars
        lines = self._lines_chars if lines_chars is None else lines_chars
        if not blocks and not lines:
            return 0
        total = len(self.header) + 2 + len(self.footer)
        if blocks:
            total += 2 + len(SESSIONS_TITLE) + blocks
        if lines:
            total += 2 + len(INDEX_TITLE) + lines
        return total

    def add_block(self, block: Sequence[str]) -> bool:
        text = "\n".join(block)
        grown = self._blocks_chars + 1 + len(text)
        if self.length(blocks_chars=grown) > self.limit:
            return False
        self.blocks.append(text)
        self._blocks_chars = grown
        return True

    def add_line(self, line: str) -> bool:
        grown = self._lines_chars + 1 + len(line)
        if self.length(lines_chars=grown) > self.limit:
            return False
        self.lines.append(line)
        self._lines_chars = grown
        return True

    def room_for_lines(self) -> int:
        """Characters left for more index lines, each with its newline (the first line also
        brings the index's title)."""
        if self.lines:
            return self.limit - self.length()
        return self.limit - (self.length(lines_chars=1) - 1)


def _summary_block(
    summary: SummaryRecord, project: str, now: datetime, titles: dict[str, str]
) -> list[str]:
    """A summary as lines: its time and request, then its non-empty fields, indented."""
    request = _one_line(summary.request, FIELD_CHARS) or _one_line(
        titles.get(summary.session_key or "", ""), FIELD_CHARS
    )
    when = relative_time(summary.created_at or now, now)
    lines = [f"* {when}: {request or '(no request recorded)'}"]
    for label, value in (
        ("Completed", summary.completed),
        ("Learned", summary.learned),
        ("Next steps", summary.next_steps),
    ):
        text = _one_line(value, FIELD_CHARS)
        if text:
            lines.append(f"  {label}: {text}")
    files = _files(summary.files_edited, project, FILES_PER_SUMMARY, exclude="")
    if files:
        lines.append(f"  Files edited: {files}")
    return lines


def _observation_line(observation: ObservationRecord, project: str, now: datetime) -> str:
    """``- 5m ago [change] Edited api.py (api.py, b.py +2)``: time, kind, title, files."""
    title = _one_line(observation.title, TITLE_CHARS) or "(untitled)"
    when = relative_time(observation.created_at or now, now)
    files = _files(
        (*observation.files_modified, *observation.files_read),
        project,
        FILES_PER_LINE,
        exclude=title,
    )
    line = f"- {when} [{observation.kind}] {title}"
    return f"{line} ({files})" if files else line


def _files(paths: Iterable[str], project: str, most: int, *, exclude: str) -> str:
    """Up to ``most`` distinct files, relative to the project, leaving out any the text
    ``exclude`` already names; "+N" counts the rest."""
    shown: list[str] = []
    for path in dict.fromkeys(_relative(p, project) for p in paths if p):
        if path not in exclude:
            shown.append(path)
    if not shown:
        return ""
    more = len(shown) - most
    text = ", ".join(_shorten_path(p) for p in shown[:most])
    return f"{text} +{more}" if more > 0 else text


def _relative(path: str, project: str) -> str:
    prefix = project.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else path


def _shorten_path(path: str) -> str:
    """A long path as its tail, "…/dir/name.py"."""
    return path if len(path) <= FILE_CHARS else "…" + path[-(FILE_CHARS - 1) :]


def _one_line(text: str, most: int) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``most`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 1].rstrip() + "…"


# -- reading ---------------------------------------------------------------------------------


class ContextBuilder(ReadsMemory):
    """Builds the SessionStart context from memory, on its own read connection.

    Open it with ``await ContextBuilder.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("sessions", "observations", "summaries")

    async def build(
        self,
        project: str | None,
        *,
        budget_tokens: int = DEFAULT_CONTEXT_BUDGET,
        exclude_session: str | None = None,
        now: datetime | None = None,
    ) -> str:
        """The context text of ``project`` within ``budget_tokens``; "" for no project, or
        when the project has no memory (outside ``exclude_session``, whose memory is left
        out) or nothing of it fits. ``now`` (default: the clock; naive means UTC) dates it,
        "5m ago"."""
        if project is None or budget_tokens <= 0:
            return ""
        at = datetime.now(UTC) if now is None else now
        if at.tzinfo is None:
            at = at.replace(tzinfo=UTC)  # a naive now is taken as UTC, as stored times are
        async with self._reader.snapshot() as conn:
            summary_rows = await _newest(conn, "summaries", project, exclude_session, MAX_SUMMARIES)
            summaries = [summary_from_row(row) for row in summary_rows]
            titles = {
                row["session_key"]: row["session_title"]
                for row in summary_rows
                if row["session_title"]
            }
            room = observation_room(
                project, summaries, budget_tokens=budget_tokens, now=at, session_titles=titles
            )
            observation_rows = await _newest(conn, "observations", project, exclude_session, room)
        return format_context(
            project,
            summaries,
            (_observation(row) for row in observation_rows),
            budget_tokens=budget_tokens,
            now=at,
            session_titles=titles,
        )


class _Sessions:
    """The project's sessions that hold records of one kind (``query`` lists them), most
    recently active first, but ``exclude_session``: read a page at a time as the merge
    needs them, the pages growing from ``FIRST_PAGE`` to ``SESSION_PAGE``."""

    def __init__(
        self, conn: aiosqlite.Connection, query: str, project: str, exclude_session: str | None
    ) -> None:
        self._conn = conn
        self._query = query
        self._rows: list[sqlite3.Row] = []
        self._params: dict[str, Any] = {
            "project": project,
            "exclude_session": exclude_session,
            "before_updated_at": MAX_INTEGER,
            "before_key": "",
        }
        self._page = FIRST_PAGE
        self._exhausted = False

    async def take(self, start: int, count: int) -> list[sqlite3.Row]:
        """Up to ``count`` sessions from the ``start``-th (from 0) on; fewer past the last."""
        while start + count > len(self._rows) and not self._exhausted:
            params = {**self._params, "limit": self._page}
            page = list(await self._conn.execute_fetchall(QUERIES[self._query], params))
            self._rows += page
            self._exhausted = len(page) < self._page
            self._page = min(self._page * PAGE_GROWTH, SESSION_PAGE)
            if page:
                self._params["before_updated_at"] = page[-1]["updated_at"]
                self._params["before_key"] = page[-1]["key"]
        return self._rows[start : start + count]


async def _newest(
    conn: aiosqlite.Connection,
    kind: str,
    project: str,
    exclude_session: str | None,
    limit: int,
) -> list[sqlite3.Row]:
    """The project's ``limit`` newest ``kind`` rows ("observations" or "summaries"), newest
    first by (created_at, message_id), leaving out ``exclude_session``'s.

    The project's sessions that hold such rows are taken most recently active first, a chunk
    at a time (1, 4, 16, ... up to ``MAX_CHUNK``: one statement each). No row of a session is
    newer than the session's updated_at, so the merge stops at the first session whose
    updated_at is older than every row kept: neither it nor any later session can add one.
    Once ``limit`` rows are kept, only rows newer than the oldest of them are read.
    """
    if limit <= 0:
        return []
    sessions = _Sessions(conn, f"sessions_with_{kind}", project, exclude_session)
    query = QUERIES[f"newest_{kind}"]
    kept: list[tuple[int, int, sqlite3.Row]] = []  # a min-heap of (created_at, message_id, row)
    index, chunk, done = 0, 1, False
    while not done:
        keys: list[str] = []
        taken = await sessions.take(index, chunk)
        done = len(taken) < chunk
        for session in taken:
            if len(kept) >= limit and kept[0][0] > session["updated_at"]:
                done = True
                break
            keys.append(session["key"])
        if not keys:
            break
        index += len(keys)
        full = len(kept) >= limit
        params = {
            "session_keys": json.dumps(keys),
            "after_created_at": kept[0][0] if full else -1,
            "after_message_id": kept[0][1] if full else -1,
            "limit": limit,
        }
        for row in await conn.execute_fetchall(query, params):
            item = (int(row["created_at"]), int(row["message_id"]), row)
            if len(kept) < limit:
                heapq.heappush(kept, item)
            elif item[:2] > kept[0][:2]:
                heapq.heapreplace(kept, item)
            else:
                break  # rows come newest first: the rest are older still
        chunk = min(chunk * CHUNK_GROWTH, MAX_CHUNK)
    return [row for *_, row in sorted(kept, key=lambda item: item[:2], reverse=True)]


def _observation(row: sqlite3.Row) -> ObservationRecord:
    """An index line's observation: the newest_observations statement reads only the
    columns a line shows, so the full ``observation_from_row`` does not apply."""
    return ObservationRecord(
        kind=ObservationKind(row["kind"]),
        title=row["title"],
        files_read=strings_from_json(row["files_read"]),
        files_modified=strings_from_json(row["files_modified"]),
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        session_key=row["session_key"],
        created_at=from_epoch_ms(row["created_at"]),
    )
