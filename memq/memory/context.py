"""The SessionStart context: a short plain text of what memory holds about a project.

At the start of a session Claude Code adds this text to the model's context, so it must be
short, within a token budget, and cheap to build however much memory the project holds::

    async with await ContextBuilder.open(path) as builder:   # after Queue.open migrated it
        text = await builder.build(project_for(cwd), budget_tokens=2000)
        shown = await builder.build_shown(project)   # the text, the refs on it, its tokens

The text is fenced (``memq.memory.fence``): a first line ``<memq-context>``, a note saying
these are notes recalled from earlier sessions, reference data and not instructions; then the
project's latest session summaries (request, completed, learned, next steps, files edited);
an index of its newest observations, newest first, one line each; a footer naming the MCP
tools that fetch any line's details by its reference and the CLI for people; and the closing
``</memq-context>``. Every summary and index line starts with its record's reference
(``#S56``, ``#1234``: ``memq.memory.refs``). A project's context holds the work of every
assistant in it (sessions are ``<assistant>:<id>``); when what it shows comes from more than
one, each line names its assistant after the reference (``- #12 [codex] 5m ago ...``). A
line of a record someone else produced (a team server's, ``memq.memory.origin``) names that
person after it (``- #12 [alice] 5m ago``), always: the reader should know whose work it is.

Tokens are estimated as characters / 4 (rounded up) and the text never exceeds the budget,
fence included: summaries are fitted first, then as many observation lines as fit, and room
for the note, the footer and the fence is always kept. When nothing of the project fits, or
it has no memory, the text is empty. ``Layout`` does the fitting for every text memq injects
(the recap after a compaction, ``memq.memory.recap``; per-prompt recall, ``memq.memory.recall``).

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
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import aiosqlite

from memq.limits import DEFAULT_CONTEXT_BUDGET, MAX_INTEGER
from memq.memory.fence import FENCE_CHARS, LABEL, fence, neutralise
from memq.memory.reader import ReadsMemory
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    RecordType,
    SummaryRecord,
    from_epoch_ms,
)
from memq.memory.refs import TEAM_PREFIX, RecordRef
from memq.memory.rows import strings_from_json, summary_from_row
from memq.memory.store import split_session_key
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
# No index line is shorter than this: "- " + "#1 " + "2d ago" + " [" + "web" + "] " + one
# character.
MIN_LINE_CHARS: Final = 19
SESSIONS_TITLE: Final = "Latest sessions:"
INDEX_TITLE: Final = "Recent activity (newest first):"
# The MCP tools (``memq mcp``, server "memq") as Claude Code names them.
TOOL_SEARCH: Final = "mcp__memq__search"
TOOL_TIMELINE: Final = "mcp__memq__timeline"
TOOL_GET: Final = "mcp__memq__get_observations"

_MINUTE: Final = 60
_HOUR: Final = 60 * _MINUTE
_DAY: Final = 24 * _HOUR
_WEEK: Final = 7 * _DAY


@dataclass(frozen=True, slots=True)
class ContextShown:
    """What an injected text showed: the text, the records it names (in the order they
    appear) and its estimated tokens. Empty when nothing was shown."""

    text: str = ""
    refs: tuple[RecordRef, ...] = ()
    tokens: int = 0


NOTHING_SHOWN: Final = ContextShown()


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


def project_note(project: str) -> str:
    """The fence's first line for a project's context: what the notes are, and are not."""
    return f"memq recalled these notes from earlier sessions in {project}. {LABEL}"


def context_footer(project: str | None) -> str:
    """The last lines: how the model fetches any line's details by its reference, and the
    commands a person would type."""
    where = f" --project {shlex.quote(project)}" if project else ""
    return (
        "Each line starts with a ref (#12 observation, #S3 summary, #P4 prompt). "
        f"Full records: {TOOL_GET}(ids=[refs]). "
        f"Find more: {TOOL_SEARCH} (an index first), then {TOOL_TIMELINE} around a ref.\n"
        f'In a shell: memq search "<words>"{where}; memq show #ID'
    )


def team_footer() -> str:
    """The last lines of a context whose references are the team server's (``ref_prefix``
    ``team``): they are read through the laptop's daemon, and have no timeline there."""
    return (
        f"Each line starts with a ref of the team's memory ({TEAM_PREFIX}#12 observation, "
        f"{TEAM_PREFIX}#S3 summary, {TEAM_PREFIX}#P4 prompt). "
        f"Full records: {TOOL_GET}(ids=[refs]).\n"
        f"In a shell: memq show {TEAM_PREFIX}#ID"
    )


def format_context(
    project: str,
    summaries: Sequence[SummaryRecord],
    observations: Iterable[ObservationRecord],
    *,
    budget_tokens: int,
    now: datetime,
    session_titles: dict[str, str] | None = None,
    labelled: bool = False,
) -> str:
    """The context text of ``project`` within ``budget_tokens`` ("" when nothing fits).

    ``summaries`` and ``observations`` come newest first, with ``created_at`` set; the
    observations are drawn from the iterable only while they fit. Summaries are fitted first
    (a summary that does not fit whole is tried as its first line alone), then observation
    lines, stopping at the first that does not fit, so what is shown is always the newest.
    ``session_titles`` (session key to title) names a summary whose request is empty;
    ``labelled`` names each line's assistant.
    """
    layout = project_layout(project, budget_tokens)
    add_summaries(layout, project, summaries, now, session_titles or {}, labelled=labelled)
    add_observations(layout, project, observations, now, labelled=labelled)
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
    layout = project_layout(project, budget_tokens)
    add_summaries(layout, project, summaries, now, session_titles or {})
    return lines_room(layout)


def project_layout(project: str, budget_tokens: int, ref_prefix: str = "") -> Layout:
    """An empty layout for ``project``'s context within ``budget_tokens``; ``ref_prefix``
    before every reference (``TEAM_PREFIX``: the team server's records, as laptops show
    them, with the footer that says how to read those)."""
    limit = max(0, budget_tokens) * CHARS_PER_TOKEN
    footer = team_footer() if ref_prefix == TEAM_PREFIX else context_footer(project)
    return Layout(limit, project_note(project), footer, ref_prefix=ref_prefix)


def add_summaries(
    layout: Layout,
    project: str,
    summaries: Sequence[SummaryRecord],
    now: datetime,
    titles: dict[str, str],
    *,
    labelled: bool = False,
    viewer: str | None = None,
) -> None:
    """Add the summaries that fit to the layout's sessions section: each whole, else its
    first line alone; the first that fits neither way ends the list, so the summaries
    shown are the newest. ``labelled``: each names its assistant; ``viewer``: the person
    the text is for, whose records carry no name (``summary_block``)."""
    section = layout.section(SESSIONS_TITLE)
    for summary in summaries[:MAX_SUMMARIES]:
        block = summary_block(
            summary,
            project,
            now,
            titles,
            labelled=labelled,
            viewer=viewer,
            ref_prefix=layout.ref_prefix,
        )
        ref = record_ref(RecordType.SUMMARY, summary.id)
        if not (layout.add(section, block, ref) or layout.add(section, block[:1], ref)):
            break


def add_observations(
    layout: Layout,
    project: str,
    observations: Iterable[ObservationRecord],
    now: datetime,
    *,
    labelled: bool = False,
    viewer: str | None = None,
) -> None:
    """Add index lines of ``observations`` (newest first) while they fit; ``labelled``:
    each names its assistant; ``viewer`` as for ``add_summaries``."""
    section = layout.section(INDEX_TITLE)
    for observation in itertools.islice(observations, MAX_OBSERVATIONS):
        line = observation_line(
            observation,
            project,
            now,
            labelled=labelled,
            viewer=viewer,
            ref_prefix=layout.ref_prefix,
        )
        if not layout.add(section, [line], record_ref(RecordType.OBSERVATION, observation.id)):
            break


def lines_room(layout: Layout) -> int:
    """At most how many index lines still fit in ``layout``."""
    room = layout.room(layout.section(INDEX_TITLE))
    return min(MAX_OBSERVATIONS, max(0, room) // (MIN_LINE_CHARS + 1))


def record_ref(record_type: RecordType, record_id: int | None) -> RecordRef | None:
    """The reference of a stored record; None for one not (yet) stored."""
    return None if record_id is None else RecordRef(record_type, record_id)


def assistant_of(session_key: str | None) -> str:
    """The assistant of a session key (``codex:abc`` -> ``codex``)."""
    return split_session_key(session_key or "")[0]


def _line_head(
    ref: RecordRef | None,
    when: str,
    session_key: str | None,
    labelled: bool,
    author: str | None = None,
    *,
    ref_prefix: str = "",
) -> str:
    """``#12 5m ago``, ``#12 [codex] 5m ago`` when ``labelled``, ``#12 [alice] 5m ago``
    for a record of ``author`` (None: the reader's own); ``ref_prefix`` before the
    reference (``team#12``)."""
    parts = [] if ref is None else [f"{ref_prefix}{ref}"]
    if labelled:
        parts.append(f"[{assistant_of(session_key)}]")
    if author is not None:
        parts.append(f"[{author}]")
    return " ".join([*parts, when])


def someone_else(author: str | None, viewer: str | None) -> str | None:
    """The person to name on a record's line: its ``author`` unless that is ``viewer``
    (the person the text is for); None for a record of this machine's user."""
    return None if author == viewer else author


class Layout:
    """A fenced text under construction, within ``limit`` characters: a note, sections of
    items (a title over its items; a section without items is left out) and a footer. An
    item (one or more lines, with the reference of the record it shows) is added only if
    the whole text stays within the limit, measured after ``neutralise``: escaping never
    pushes the text past its budget.

    ``length()`` is what ``len(text())`` would be, kept as items are added rather than
    measured again each time (tests compare the two). Nothing added: the text is "".
    """

    def __init__(self, limit: int, note: str, footer: str = "", *, ref_prefix: str = "") -> None:
        self.limit = limit
        self.ref_prefix = ref_prefix  # written before each reference (``project_layout``)
        self.note = neutralise(note)
        self.footer = neutralise(footer)
        self._titles: list[str] = []
        self._items: list[list[str]] = []
        self._refs: list[list[RecordRef]] = []
        self._chars: list[int] = []  # each section's items, each after a newline
        self._sections_chars = 0  # the non-empty sections, each with its title and gap
        self._base = FENCE_CHARS + len(self.note) + (2 + len(self.footer) if self.footer else 0)

    def copy(self) -> Layout:
        """An independent copy, to try adding items without changing this layout."""
        other = Layout.__new__(Layout)
        other.limit, other.note, other.footer = self.limit, self.note, self.footer
        other.ref_prefix = self.ref_prefix
        other._titles = list(self._titles)
        other._items = [list(items) for items in self._items]
        other._refs = [list(refs) for refs in self._refs]
        other._chars = list(self._chars)
        other._sections_chars = self._sections_chars
        other._base = self._base
        return other

    def section(self, title: str) -> int:
        """The section titled ``title``, made (after the others) when there is none yet."""
        title = neutralise(title)
        if title in self._titles:
            return self._titles.index(title)
        self._titles.append(title)
        self._items.append([])
        self._refs.append([])
        self._chars.append(0)
        return len(self._titles) - 1

    def text(self) -> str:
        if not self._sections_chars:
            return ""
        parts = [self.note]
        for title, items in zip(self._titles, self._items, strict=True):
            if items:
                parts.append("\n".join([title, *items]))
        if self.footer:
            parts.append(self.footer)
        return fence("\n\n".join(parts))

    @property
    def refs(self) -> tuple[RecordRef, ...]:
        """The references of the records shown, in the order the text shows them."""
        return tuple(ref for refs in self._refs for ref in refs)

    def shown(self) -> ContextShown:
        """The text, its references and its tokens."""
        text = self.text()
        if not text:
            return NOTHING_SHOWN
        return ContextShown(text, self.refs, estimate_tokens(text))

    def length(self, section: int | None = None, chars: int | None = None) -> int:
        """The text's length, or what it would be if ``section``'s items took ``chars``."""
        total = self._sections_chars
        if section is not None and chars is not None:
            title = 2 + len(self._titles[section])
            old = self._chars[section]
            total += (title + chars if chars else 0) - (title + old if old else 0)
        return self._base + total if total else 0

    def add(
        self,
        section: int,
        lines: Sequence[str],
        ref: RecordRef | None = None,
        *,
        first: bool = False,
    ) -> bool:
        """Add an item of ``lines`` to ``section`` (at its end, or its start: ``first``)
        if the text stays within the limit; whether it was added."""
        if not lines:
            return False
        item = neutralise("\n".join(lines))
        grown = self._chars[section] + 1 + len(item)
        length = self.length(section, grown)
        if length > self.limit:
            return False
        self._sections_chars = length - self._base
        self._chars[section] = grown
        position = 0 if first else len(self._items[section])
        self._items[section].insert(position, item)
        if ref is not None:
            refs = self._refs[section]
            refs.insert(0 if first else len(refs), ref)
        return True

    def room(self, section: int) -> int:
        """Characters left for more items in ``section``, each with its newline (the first
        item of a section also brings its title)."""
        if self._chars[section]:
            return self.limit - self.length()
        return self.limit - (self.length(section, 1) - 1)


def summary_block(
    summary: SummaryRecord,
    project: str,
    now: datetime,
    titles: dict[str, str],
    *,
    labelled: bool = False,
    viewer: str | None = None,
    ref_prefix: str = "",
) -> list[str]:
    """A summary as lines: its reference (and assistant, ``labelled``; its author, unless
    ``viewer``), time and request, then its non-empty fields, indented."""
    request = one_line(summary.request, FIELD_CHARS) or one_line(
        titles.get(summary.session_key or "", ""), FIELD_CHARS
    )
    when = relative_time(summary.created_at or now, now)
    ref = record_ref(RecordType.SUMMARY, summary.id)
    author = someone_else(summary.author, viewer)
    head = _line_head(ref, when, summary.session_key, labelled, author, ref_prefix=ref_prefix)
    lines = [f"* {head}: {request or '(no request recorded)'}"]
    for label, value in (
        ("Completed", summary.completed),
        ("Learned", summary.learned),
        ("Next steps", summary.next_steps),
    ):
        text = one_line(value, FIELD_CHARS)
        if text:
            lines.append(f"  {label}: {text}")
    files = short_files(summary.files_edited, project, FILES_PER_SUMMARY, exclude="")
    if files:
        lines.append(f"  Files edited: {files}")
    return lines


def observation_line(
    observation: ObservationRecord,
    project: str,
    now: datetime,
    *,
    labelled: bool = False,
    viewer: str | None = None,
    ref_prefix: str = "",
) -> str:
    """``- #12 5m ago [change] Edited api.py (api.py, b.py +2)``: reference, time, kind,
    title, files; ``labelled``, the assistant after the reference (``- #12 [codex] 5m ago``);
    then the record's author unless it is ``viewer`` (``- #12 [alice] 5m ago``)."""
    title = one_line(observation.title, TITLE_CHARS) or "(untitled)"
    when = relative_time(observation.created_at or now, now)
    files = short_files(
        (*observation.files_modified, *observation.files_read),
        project,
        FILES_PER_LINE,
        exclude=title,
    )
    ref = record_ref(RecordType.OBSERVATION, observation.id)
    author = someone_else(observation.author, viewer)
    head = _line_head(ref, when, observation.session_key, labelled, author, ref_prefix=ref_prefix)
    line = f"- {head} [{observation.kind}] {title}"
    return f"{line} ({files})" if files else line


def short_files(paths: Iterable[str], project: str, most: int, *, exclude: str) -> str:
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
    if not project:
        return path
    prefix = project.rstrip("/") + "/"
    return path[len(prefix) :] if path.startswith(prefix) and len(path) > len(prefix) else path


def _shorten_path(path: str) -> str:
    """A long path as its tail, "…/dir/name.py"."""
    flat = " ".join(path.split())  # a file name must not break the line
    return flat if len(flat) <= FILE_CHARS else "…" + flat[-(FILE_CHARS - 1) :]


def one_line(text: str, most: int) -> str:
    """``text`` with its whitespace collapsed to single spaces, cut to ``most`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= most else flat[: most - 1].rstrip() + "…"


def aware_now(now: datetime | None) -> datetime:
    """``now``, or the clock; a naive time is taken as UTC, as stored times are."""
    at = datetime.now(UTC) if now is None else now
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# -- reading ---------------------------------------------------------------------------------


class ContextBuilder(ReadsMemory):
    """Builds the SessionStart context from memory, on its own read connection.

    Open it with ``await ContextBuilder.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("sessions", "prompts", "observations", "summaries")

    async def build(
        self,
        project: str | None,
        *,
        budget_tokens: int = DEFAULT_CONTEXT_BUDGET,
        exclude_session: str | None = None,
        now: datetime | None = None,
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
        viewer: str | None = None,
        exclude_origin: tuple[str, Sequence[str]] | None = None,
        ref_prefix: str = "",
    ) -> str:
        """The context text of ``project`` within ``budget_tokens``; "" for no project, or
        when the project has no memory (outside ``exclude_session``, whose memory is left
        out) or nothing of it fits. ``now`` (default: the clock; naive means UTC) dates it,
        "5m ago". ``assistants``: only their sessions (None: every assistant's); ``authors``:
        only those people's records (None: everyone's, this machine's user's included);
        ``viewer``: the person it is for, whose records are not labelled with their name;
        ``exclude_origin``: (author, machines) whose records are left out (a laptop that
        shows its own records itself, ``memq.team.team_reads``); ``ref_prefix``: before
        every reference (``project_layout``)."""
        shown = await self.build_shown(
            project,
            budget_tokens=budget_tokens,
            exclude_session=exclude_session,
            now=now,
            assistants=assistants,
            authors=authors,
            viewer=viewer,
            exclude_origin=exclude_origin,
            ref_prefix=ref_prefix,
        )
        return shown.text

    async def build_shown(
        self,
        project: str | None,
        *,
        budget_tokens: int = DEFAULT_CONTEXT_BUDGET,
        exclude_session: str | None = None,
        now: datetime | None = None,
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
        viewer: str | None = None,
        exclude_origin: tuple[str, Sequence[str]] | None = None,
        ref_prefix: str = "",
    ) -> ContextShown:
        """As :meth:`build`, with the references the text shows and its tokens."""
        if project is None or budget_tokens <= 0:
            return NOTHING_SHOWN
        layout = project_layout(project, budget_tokens, ref_prefix)
        async with self.snapshot() as conn:
            await add_project_context(
                conn,
                layout,
                project,
                exclude_session,
                aware_now(now),
                assistants=assistants,
                authors=authors,
                viewer=viewer,
                exclude_origin=exclude_origin,
            )
        return layout.shown()

    def snapshot(self) -> AbstractAsyncContextManager[aiosqlite.Connection]:
        """The connection inside one read transaction, for a build of several parts
        (``memq.memory.recap``)."""
        return self._reader.snapshot()


async def add_project_context(
    conn: aiosqlite.Connection,
    layout: Layout,
    project: str,
    exclude_session: str | None,
    now: datetime,
    *,
    assistants: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
    viewer: str | None = None,
    exclude_origin: tuple[str, Sequence[str]] | None = None,
) -> None:
    """Add ``project``'s latest summaries and newest observations (outside
    ``exclude_session``; of ``assistants``' sessions and ``authors``' records only, when
    given) to ``layout``, as many as fit, read on ``conn``. When what fits comes from more
    than one assistant, each line names its own (and fewer may fit); a line of someone
    else's record (not ``viewer``'s) names that person."""
    scope = _Scope(project, exclude_session, assistants, authors, exclude_origin)
    summary_rows = await _newest(conn, "summaries", scope, MAX_SUMMARIES)
    summaries = [summary_from_row(row) for row in summary_rows]
    titles = {
        row["session_key"]: row["session_title"] for row in summary_rows if row["session_title"]
    }
    trial = layout.copy()
    add_summaries(trial, project, summaries, now, titles, viewer=viewer)
    room = lines_room(trial)
    observation_rows = await _newest(conn, "observations", scope, room)
    observations = [_observation(row) for row in observation_rows]
    labelled = False
    records: list[SummaryRecord | ObservationRecord] = [*summaries, *observations]
    if len({assistant_of(record.session_key) for record in records}) > 1:
        # Mixed among the rows read: labels only if they are among the rows that fit.
        add_observations(trial, project, observations, now, viewer=viewer)
        labelled = len(_assistants_shown(trial, layout, summaries, observations)) > 1
    add_summaries(layout, project, summaries, now, titles, labelled=labelled, viewer=viewer)
    add_observations(layout, project, observations, now, labelled=labelled, viewer=viewer)


def _assistants_shown(
    trial: Layout,
    before: Layout,
    summaries: Sequence[SummaryRecord],
    observations: Sequence[ObservationRecord],
) -> set[str]:
    """The assistants of the records ``trial`` shows that ``before`` did not."""
    added = set(trial.refs) - set(before.refs)
    records: list[SummaryRecord | ObservationRecord] = [*summaries, *observations]
    return {
        assistant_of(record.session_key)
        for record in records
        if record_ref(
            RecordType.SUMMARY if isinstance(record, SummaryRecord) else RecordType.OBSERVATION,
            record.id,
        )
        in added
    }


@dataclass(frozen=True, slots=True)
class _Scope:
    """Whose records a context reads: the project's sessions but one, maybe only some
    assistants', maybe only some people's records."""

    project: str
    exclude_session: str | None
    assistants: Sequence[str] | None
    authors: Sequence[str] | None = None
    # (author, machines) whose records to skip
    exclude_origin: tuple[str, Sequence[str]] | None = None

    def params(self) -> dict[str, Any]:
        assistants = None if self.assistants is None else json.dumps(list(self.assistants))
        return {
            "project": self.project,
            "exclude_session": self.exclude_session,
            "assistants": assistants,
            "authors": self.authors_json(),
        }

    def authors_json(self) -> str | None:
        """``authors`` as the statements take them: a JSON array, or None for everyone."""
        return None if self.authors is None else json.dumps(list(self.authors))

    def exclude_machines_json(self) -> str | None:
        """The machines of ``exclude_origin`` as the statements take them: a JSON array,
        or None to leave nothing out."""
        return None if self.exclude_origin is None else json.dumps(list(self.exclude_origin[1]))


class _Sessions:
    """The project's sessions that hold records of one kind (``query`` lists them), most
    recently active first, but ``exclude_session``: read a page at a time as the merge
    needs them, the pages growing from ``FIRST_PAGE`` to ``SESSION_PAGE``."""

    def __init__(self, conn: aiosqlite.Connection, query: str, scope: _Scope) -> None:
        self._conn = conn
        self._query = query
        self._rows: list[sqlite3.Row] = []
        self._params: dict[str, Any] = {
            **scope.params(),
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
    conn: aiosqlite.Connection, kind: str, scope: _Scope, limit: int
) -> list[sqlite3.Row]:
    """The project's ``limit`` newest ``kind`` rows ("observations" or "summaries"), newest
    first by (created_at, message_id), leaving out ``exclude_session``'s (``scope``).

    The project's sessions that hold such rows are taken most recently active first, a chunk
    at a time (1, 4, 16, ... up to ``MAX_CHUNK``: one statement each). No row of a session is
    newer than the session's updated_at, so the merge stops at the first session whose
    updated_at is older than every row kept: neither it nor any later session can add one.
    Once ``limit`` rows are kept, only rows newer than the oldest of them are read.
    """
    if limit <= 0:
        return []
    sessions = _Sessions(conn, f"sessions_with_{kind}", scope)
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
            "authors": scope.authors_json(),
            "exclude_author": None if scope.exclude_origin is None else scope.exclude_origin[0],
            "exclude_machines": scope.exclude_machines_json(),
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
        author=row["author"],
        machine=row["machine"],
    )
