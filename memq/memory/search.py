"""Full-text search over memory, and the timeline of records around one of them.

    from memq.memory.search import MemorySearch

    async with await MemorySearch.open(path) as memory:   # after Queue.open(path) migrated it
        hits = await memory.search("where did we change the retry logic?", project=project)
        timeline = await memory.timeline(hits[0].message_id)

Migration 0003 keeps one FTS5 index of observations, summaries and prompts in step with them
(see its comments for the columns and the tokenizer); migration 0011 made it code-aware. One
index for all three record types means one ranking: weighted BM25 over all of memory, so a
summary and an observation that match equally well score alike.

Code names are found however they are spelled: ``retry_policy``, ``retryPolicy``,
``RetryPolicy``, ``retry-policy`` and "retry policy" find each other. The tokenizer splits on
every character that is not a letter or digit (snake, kebab, dotted names and paths become
their words) and stems English (retries, retried, retry); the index also holds each camelCase
word split into its parts (migration 0011); and a query word that is an identifier is looked
for whole or as its parts, in order (``identifier_parts``). Paths match by file name
(``retry.py``, ``retry``) and by directory (``src/net``). A record with the very identifier
asked for ranks above one with only its parts.

Two query syntaxes:

* ``words`` (the default) is what a person types. It never fails on punctuation: the query is
  split on white space, punctuation around a word is dropped, common English words ("where",
  "did", "the", ...) are left out when other words remain, and each word is searched as a
  quoted FTS5 phrase, so ``src/retry_policy.py`` matches that path and ``retry_policy``
  matches the adjacent tokens ``retry policy``; a camelCase word also as its parts
  (``retryWithBackoff``: "retry with backoff"). Records with every word come first; when
  they are fewer than ``limit``, records that have them with a snake_case or kebab-case
  word joined follow (``http_client``: "httpclient", as ``HTTPClient`` is indexed), then
  records with some of the words, each group best first and scored below the one before, so
  a long question still finds the closest records.
* ``fts`` is raw FTS5 syntax for power users (``"exact phrase"``, ``retry AND NOT flaky``,
  ``title: backoff``, ``NEAR(a b, 5)``, ``retry*``). A syntax error is ``InvalidQueryError``.
  Columns: title (observation title, summary request), detail (subtitle; completed and
  learned), body (narrative; investigated and next steps), facts (facts and concepts),
  files, command, output (excerpt and tool name; notes), prompt (prompt text), parts (the
  camelCase words of all of them, split).

Filters: ``types`` names record types (observation, summary, prompt); ``kinds`` names
observation kinds (change, bugfix, ...) and applies to observations only. Given ``kinds``
without ``types``, only observations are searched; given both, the other types in ``types``
are searched unfiltered. ``file`` keeps records that read, modified or edited a path
containing that text (ASCII letters case-insensitive; prompts have no files, so none match).
``since`` is inclusive, ``until`` exclusive; naive datetimes are taken as UTC.
``assistants`` keeps the records of those assistants' sessions (``claude-code``, ``codex``,
...); every hit and timeline record names its ``assistant``. ``authors`` keeps the records
those people produced (a team key's name: ``memq.memory.origin``); every hit and timeline
record names its ``author`` and ``machine`` (None: made on this machine by its own user).

Scores are BM25 made positive: higher is better, comparable within one search only.
``min_score`` drops hits below it.

Forks: the records a fork inherited from its parent (``memq.memory.fork``) are left out, so
each record is found once, as its parent's, except in a search filtered to one session
(``session_key``), which includes that session's inherited records (``inherited`` on the hit).
A timeline around a record of a session's own leaves the inherited records out too.

Speed: a query that matches more than ``RANK_WINDOW`` (2,000) records, within the session's
span of messages when ``session_key`` is given, ranks only the newest 2,000 of them: a word
found nearly everywhere carries little weight, and recent work is the likelier answer. When
the other filters leave fewer than ``limit`` hits among those, all matches are ranked.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final, TypeVar

import aiosqlite

from memq.exceptions import InvalidQueryError, InvalidRequestError
from memq.limits import MAX_INTEGER
from memq.memory.reader import MemoryReader, ReadsMemory
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    PromptRecord,
    RecordType,
    SummaryRecord,
    from_epoch_ms,
    isoformat_utc,
    to_epoch_ms,
)

# The store's row readers: the timeline selects the same columns as its reads.
from memq.memory.rows import observation_from_row, prompt_from_row, summary_from_row
from memq.memory.store import split_session_key, title_from_prompt
from memq.storage.sqlfile import SQLITE, load_queries

QUERIES: Final = load_queries("search")

MAX_WORDS: Final = 32  # more words than this in a words query are ignored
# A query matching more records than this ranks only the newest this many (see _ranked).
RANK_WINDOW: Final = 2000
# The parameters of the search statement that drop records (None: no filter).
_FILTERS: Final = (
    "project",
    "session_key",
    "assistants",
    "authors",
    "types",
    "kinds",
    "file",
    "since",
    "until",
)
MARK_OPEN: Final = "["
MARK_CLOSE: Final = "]"
ELLIPSIS: Final = "…"
SNIPPET_TOKENS: Final = 16
# A hit that has only some of the words, listed after those with all of them, scores at most
# this share of the last of those.
FILL_SCORE_SHARE: Final = 0.9

# Left out of a words query when other words remain: they are in nearly every record, so
# requiring them hides good matches and ranking by them adds nothing.
_STOP_WORDS = """
a about after all also am an and any are as at be been before but by can could did do does
doing done for from had has have how i if in into is it its me my not of on or our should so
some than that the their them then there these they this those to up us was we were what
when where which while who why will with would you your
"""
STOP_WORDS: Final = frozenset(_STOP_WORDS.split())

# Control characters separate words (a NUL would end an FTS5 string early).
_CONTROL_TO_SPACE: Final = dict.fromkeys([*range(0x20), 0x7F], " ")
_EDGE_PUNCTUATION: Final = re.compile(r"^[\W_]+|[\W_]+$")
_CAMEL_BOUNDARY: Final = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_NOT_WORD: Final = re.compile(r"[\W_]+")
_SNAKE_OR_KEBAB: Final = re.compile(r"^[^\W_]+(?:[_-][^\W_]+)+$")


_E = TypeVar("_E", bound=StrEnum)


# The memory table of each record type, in the order one message's records are listed (a
# timeline, an export): prompt, observation, summary.
RECORD_TABLES: Final = {
    RecordType.PROMPT: "prompts",
    RecordType.OBSERVATION: "observations",
    RecordType.SUMMARY: "summaries",
}
RECORD_ORDER: Final = {record_type: order for order, record_type in enumerate(RECORD_TABLES)}
# Each record type's code in the search index (rowid & 3).
_TYPE_CODES: Final = {RecordType.OBSERVATION: 1, RecordType.SUMMARY: 2, RecordType.PROMPT: 3}
_CODE_TYPES: Final = {code: record_type for record_type, code in _TYPE_CODES.items()}


class QuerySyntax(StrEnum):
    """How the search text is read."""

    WORDS = "words"  # what a person types; punctuation never fails
    FTS = "fts"  # raw SQLite FTS5 query syntax


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One record that matched a search."""

    record_type: RecordType
    id: int  # the record's id in its own table
    message_id: int  # the message it came from: the timeline's anchor
    session_key: str
    project: str | None
    kind: ObservationKind | None  # observations only
    title: str  # the observation's title, summary's request or prompt's text: one line
    snippet: str  # the best matching passage, matched words in [brackets]
    score: float  # positive, higher is better; comparable within one search
    created_at: datetime  # when the event happened
    inherited: bool = False  # a fork's copy of its parent's record (session searches only)
    author: str | None = None  # who produced it (memq.memory.origin); None: this machine's user
    machine: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The hit as JSON-ready values (times as ISO-8601 UTC text)."""
        return {
            "record_type": self.record_type.value,
            "id": self.id,
            "message_id": self.message_id,
            "session_key": self.session_key,
            "assistant": split_session_key(self.session_key)[0],
            "project": self.project,
            "kind": None if self.kind is None else self.kind.value,
            "title": self.title,
            "snippet": self.snippet,
            "score": self.score,
            "created_at": isoformat_utc(self.created_at),
            "inherited": self.inherited,
            "author": self.author,
            "machine": self.machine,
        }


MemoryRecord = ObservationRecord | SummaryRecord | PromptRecord


@dataclass(frozen=True, slots=True)
class TimelineItem:
    """One record of a timeline."""

    record_type: RecordType
    record: MemoryRecord
    inherited: bool = False  # a fork's copy of its parent's record

    @property
    def message_id(self) -> int:
        """The id of the message that produced the record."""
        return int(self.record.message_id or 0)

    @property
    def title(self) -> str:
        """The record in one line, as a search hit titles it."""
        return _headline(self.record)

    def to_dict(self) -> dict[str, Any]:
        """The record's fields plus ``record_type``, a one-line ``title`` and whether it
        was ``inherited``."""
        head = {"record_type": self.record_type.value, "title": self.title}
        assistant = split_session_key(str(self.record.session_key or ""))[0]
        return head | self.record.to_dict() | {"assistant": assistant, "inherited": self.inherited}


@dataclass(frozen=True, slots=True)
class Timeline:
    """A record and the records of its session just before and after it, in message order."""

    anchor: TimelineItem
    items: tuple[TimelineItem, ...]  # the anchor included
    session_key: str

    def to_dict(self) -> dict[str, Any]:
        """``{"session_key", "assistant", "anchor", "items"}`` with JSON-ready items."""
        return {
            "session_key": self.session_key,
            "assistant": split_session_key(self.session_key)[0],
            "anchor": self.anchor.to_dict(),
            "items": [item.to_dict() for item in self.items],
        }


class MemorySearch(ReadsMemory):
    """Searches memory on its own read connection.

    Open it with ``await MemorySearch.open(path)`` on a database that ``Queue.open`` has
    already migrated.
    """

    TABLES = ("memory_fts",)  # migration 0003's index, 0011's since (after 0002's tables)

    def __init__(self, reader: MemoryReader, *, dialect: str = SQLITE) -> None:
        """``dialect`` POSTGRES: ``reader`` is a ``memq.memory.pg_search.PgMemoryReader``,
        and the statements and query expressions are PostgreSQL's (that module)."""
        super().__init__(reader)
        self._dialect = dialect
        self._queries = QUERIES if dialect == SQLITE else load_queries("search", dialect)

    def _expressions(self, query: str, syntax: QuerySyntax) -> Sequence[object]:
        if self._dialect == SQLITE:
            return match_expressions(query, syntax)
        from memq.memory import pg_search  # noqa: PLC0415 - it imports this module

        return pg_search.tsquery_expressions(query, syntax)

    async def search(
        self,
        query: str,
        *,
        project: str | None = None,
        session_key: str | None = None,
        types: Sequence[str] | None = None,
        kinds: Sequence[str] | None = None,
        file: str | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 20,
        min_score: float | None = None,
        syntax: str = "words",
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
    ) -> list[SearchHit]:
        """The records matching ``query``, best first, at most ``limit`` of them.

        See the module docstring for the syntaxes and filters. Raises ``InvalidQueryError``
        for a query that cannot be run (empty, no words, an FTS5 syntax error) and
        ``InvalidRequestError`` for a bad filter (unknown type or kind, ``limit`` below 1, ``since``
        after ``until``).
        """
        expressions = self._expressions(query, QuerySyntax(syntax))
        params = _filter_params(
            project=project,
            session_key=session_key,
            assistants=assistants,
            authors=authors,
            types=types,
            kinds=kinds,
            file=file,
            since=since,
            until=until,
            limit=limit,
        )
        narrowed = any(params[name] is not None for name in _FILTERS)
        hits: list[SearchHit] = []
        # No snapshot: a record written between these statements changes nothing that
        # matters (at most the rank window starts a little earlier), and each BEGIN and
        # COMMIT would cost a trip to aiosqlite's thread.
        async with self._reader.reading() as conn:
            span = await _rowid_span(conn, session_key, self._queries)
            if span is None:
                return []  # the session has no records
            for expression in expressions:  # the next one only while hits are missing
                rows = await _ranked(
                    conn,
                    {**params, "query": expression, **span},
                    narrowed=narrowed,
                    queries=self._queries,
                )
                hits = _fill(hits, [_hit(row) for row in rows], limit)
                if len(hits) >= limit:
                    break
        if min_score is not None:
            hits = [hit for hit in hits if hit.score >= min_score]
        return hits

    # -- timeline --------------------------------------------------------------------------

    async def timeline(
        self, message_id: int, *, before: int = 5, after: int = 5
    ) -> Timeline | None:
        """The record ``message_id`` produced and up to ``before`` / ``after`` records of its
        session around it (prompts, observations and summaries merged in message order), or
        None when no record came from that message.

        A message that produced two records (an observation and a summary) anchors on the
        first; the second counts among the records after it. Around a record of the
        session's own, the records a fork inherited are left out (its parent's timeline
        shows them); around an inherited record, they are part of the timeline.
        """
        if before < 0 or after < 0:
            raise InvalidRequestError(
                f"before and after must not be negative (got {before}, {after})"
            )
        params: dict[str, Any] = {"message_id": message_id}
        async with self._reader.snapshot() as conn:
            own = await _records(conn, "of_message", params, self._queries)
            if not own:
                return None
            anchor, *same_message = own
            session_key = str(anchor.record.session_key)
            around = {"message_id": message_id, "session_key": session_key}
            earlier = await _records(conn, "before", {**around, "limit": before}, self._queries)
            later = await _records(conn, "after", {**around, "limit": after}, self._queries)
        if not anchor.inherited:
            # A fork's inherited records all precede its own (they were copied before its
            # first event), so dropping them from the rows read, rather than in SQL, loses
            # none of the nearest own records, and the read never walks past the copies of
            # a large parent.
            earlier = [item for item in earlier if not item.inherited]
            later = [item for item in later if not item.inherited]
        earlier = earlier[-before:] if before else []
        later = [*same_message, *later][:after]
        return Timeline(anchor=anchor, items=(*earlier, anchor, *later), session_key=session_key)


# -- queries ---------------------------------------------------------------------------------


def parse_words(text: str) -> list[str]:
    """The words of a words-mode query: split on white space and control characters,
    punctuation around each word dropped, repeats (ignoring case) and pieces without a letter
    or digit left out, common English words left out unless nothing else remains, at most
    ``MAX_WORDS``."""
    words: list[str] = []
    seen: set[str] = set()
    for piece in text.translate(_CONTROL_TO_SPACE).split():
        word = _EDGE_PUNCTUATION.sub("", piece)
        if not any(char.isalnum() for char in word) or word.casefold() in seen:
            continue
        seen.add(word.casefold())
        words.append(word)
    content = [word for word in words if word.casefold() not in STOP_WORDS]
    return (content or words)[:MAX_WORDS]


def identifier_parts(word: str) -> list[str]:
    """The words an identifier or path is made of, in order: split at camelCase boundaries
    (``parseHTTPResponse``: parse, HTTP, Response) and at every character that is not a
    letter or digit (``retry_policy``, ``retry-policy``, ``src/net/retry.py``). A plain word
    is its own one part."""
    return [part for piece in _NOT_WORD.split(word) for part in _camel_split(piece) if part]


def word_term(word: str, *, joined: bool = False) -> str:
    """One word as an FTS5 term: a quoted phrase, or alternatives for identifiers, e.g.
    ``retryWithBackoff`` is ``("retryWithBackoff" OR "retry With Backoff")``: the whole
    identifier (its own token in the index), or its parts in order (snake_case, kebab-case,
    prose, and the parts the index keeps of camelCase words).

    A snake_case or kebab-case word is its parts already (the tokenizer splits it). With
    ``joined`` it may also be the one word they make (``http_client``: "httpclient", the
    token of ``HTTPClient``, whose acronym run the index keeps whole). That alternative is a
    later, looser expression (``match_expressions``), not the first: a record saying
    ``retryWithBackoff`` would match it as well as the parts, and outrank the very
    ``retry_with_backoff`` asked for."""
    alternatives = [word]
    if _CAMEL_BOUNDARY.search(word):
        alternatives.append(" ".join(identifier_parts(word)))
    if joined and _SNAKE_OR_KEBAB.match(word):
        alternatives.append("".join(identifier_parts(word)))
    quoted = [_quote(alternative) for alternative in alternatives]
    return quoted[0] if len(quoted) == 1 else "(" + " OR ".join(quoted) + ")"


def _camel_split(piece: str) -> list[str]:
    return _CAMEL_BOUNDARY.sub(" ", piece).split()


def match_expressions(query: str, syntax: QuerySyntax = QuerySyntax.WORDS) -> list[str]:
    """The FTS5 expressions to run in turn, each only while the ones before found fewer
    hits than asked for (its hits follow theirs).

    Words: every word (AND); then every word, snake_case and kebab-case words also joined
    (see ``word_term``), when there are such words; then any word (OR) when there are
    several. FTS: the query as given. Raises ``InvalidQueryError`` for an empty query or one
    without words.
    """
    if not query.strip():
        raise InvalidQueryError("the search query is empty")
    if syntax is QuerySyntax.FTS:
        return [query]
    words = parse_words(query)
    if not words:
        raise InvalidQueryError(f"the search query has no words to look for: {query!r}")
    terms = [word_term(word) for word in words]
    loose = [word_term(word, joined=True) for word in words]
    expressions = [" AND ".join(terms), " AND ".join(loose)]
    if len(words) > 1:
        expressions.append(" OR ".join(loose))
    return list(dict.fromkeys(expressions))


def _quote(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _type_codes(types: Sequence[str] | None, kinds: Sequence[str] | None) -> str | None:
    """The index's codes of the record types to search, as JSON; None for all of them."""
    if types is None:
        wanted = {RecordType.OBSERVATION} if kinds is not None else set(RecordType)
    else:
        wanted = {_enum(RecordType, value, "record type") for value in types}
    if wanted == set(RecordType):
        return None
    return json.dumps(sorted(_TYPE_CODES[record_type] for record_type in wanted))


def _filter_params(
    *,
    project: str | None,
    session_key: str | None,
    types: Sequence[str] | None,
    kinds: Sequence[str] | None,
    file: str | None,
    since: datetime | None,
    until: datetime | None,
    limit: int,
    assistants: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
) -> dict[str, Any]:
    if limit < 1:
        raise InvalidRequestError(f"limit must be at least 1 (got {limit})")
    since_ms = None if since is None else to_epoch_ms(_aware(since))
    until_ms = None if until is None else to_epoch_ms(_aware(until))
    if since_ms is not None and until_ms is not None and since_ms > until_ms:
        raise InvalidRequestError("since must not be after until")
    kind_values = (
        None
        if kinds is None
        else json.dumps(sorted({_enum(ObservationKind, k, "observation kind") for k in kinds}))
    )
    return {
        "project": project,
        "session_key": session_key,
        "assistants": None if assistants is None else json.dumps(list(assistants)),
        "authors": None if authors is None else json.dumps(list(authors)),
        "types": _type_codes(types, kinds),
        "kinds": kind_values,
        "file": file or None,
        "since": since_ms,
        "until": until_ms,
        "limit": limit,
        "mark_open": MARK_OPEN,
        "mark_close": MARK_CLOSE,
        "ellipsis": ELLIPSIS,
        "snippet_tokens": SNIPPET_TOKENS,
    }


def _enum(enum: type[_E], value: str, what: str) -> _E:
    try:
        return enum(value)
    except ValueError:
        choices = ", ".join(member.value for member in enum)
        raise InvalidRequestError(f"unknown {what} {value!r} (one of {choices})") from None


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


async def _rowid_span(
    conn: aiosqlite.Connection,
    session_key: str | None,
    queries: Mapping[str, str] = QUERIES,
) -> dict[str, int] | None:
    """The index rowids to search: all of them, or the span of the session's message ids
    (None when the session has no records)."""
    if session_key is None:
        return {"rowid_low": 0, "rowid_high": MAX_INTEGER}
    rows = list(await conn.execute_fetchall(queries["session_span"], {"session_key": session_key}))
    low, high = rows[0]["low"], rows[0]["high"]
    if low is None:
        return None
    return {"rowid_low": int(low) * 4, "rowid_high": int(high) * 4 + 3}


async def _ranked(
    conn: aiosqlite.Connection,
    params: dict[str, Any],
    *,
    narrowed: bool,
    queries: Mapping[str, str] = QUERIES,
) -> list[sqlite3.Row]:
    """The best matches of ``params["query"]``, ranking only the newest ``RANK_WINDOW`` of
    them when there are more: FTS5 scores every match before it can return the best (about
    1.5 µs each: 150 ms for a word in all of 100,000 records), while finding where the newest
    matches start costs a fraction of a millisecond. When filters leave fewer than ``limit``
    hits in that window (or a fork's inherited records, left out, fewer than it would give
    unfiltered), every match is ranked after all."""
    try:
        start = list(
            await conn.execute_fetchall(
                queries["window_start"], {**params, "offset": RANK_WINDOW - 1}
            )
        )
        if start:
            rows = list(
                await conn.execute_fetchall(
                    queries["search"], {**params, "rowid_low": int(start[0]["rowid"])}
                )
            )
            # Unfiltered, the window's RANK_WINDOW matches give min(limit, RANK_WINDOW) hits
            # unless some were a fork's inherited records, which a search across sessions
            # drops as a filter would.
            enough = params["limit"] if narrowed else min(params["limit"], RANK_WINDOW)
            if len(rows) >= enough:
                return rows
        return list(await conn.execute_fetchall(queries["search"], params))
    except sqlite3.OperationalError as exc:
        # Our statements compile (tested), so a plain SQLITE_ERROR is the FTS5 query's: a
        # syntax error, an unknown column. I/O, busy and corruption have their own codes
        # and become StorageError.
        if exc.sqlite_errorcode != sqlite3.SQLITE_ERROR:
            raise
        raise InvalidQueryError(f"invalid search query: {exc}") from None


def _hit(row: sqlite3.Row) -> SearchHit:
    kind = row["kind"]
    return SearchHit(
        record_type=_CODE_TYPES[row["type_code"]],
        id=int(row["id"]),
        message_id=int(row["message_id"]),
        session_key=row["session_key"],
        project=row["project"],
        kind=None if kind is None else ObservationKind(kind),
        title=title_from_prompt(row["title"] or "") or "",
        snippet=" ".join(str(row["snippet"] or "").split()),
        score=float(row["score"]),
        created_at=from_epoch_ms(row["created_at"]),
        inherited=bool(row["inherited"]),
        author=row["author"],
        machine=row["machine"],
    )


def _fill(hits: list[SearchHit], more: list[SearchHit], limit: int) -> list[SearchHit]:
    """``hits`` and then those of ``more`` (a looser expression's) not among them, at most
    ``limit``. The looser hits are scaled below the last of ``hits`` (keeping their order), so
    that scores still descend: a record with every word outranks one with only some."""
    if not hits:
        return more[:limit]
    seen = {(hit.record_type, hit.id) for hit in hits}
    added = [hit for hit in more if (hit.record_type, hit.id) not in seen][: limit - len(hits)]
    if not added:
        return hits
    floor, top = hits[-1].score, added[0].score
    scale = min(1.0, FILL_SCORE_SHARE * floor / top) if top > 0 else 1.0
    return hits + [replace(hit, score=hit.score * scale) for hit in added]


async def _records(
    conn: aiosqlite.Connection,
    which: str,
    params: dict[str, Any],
    queries: Mapping[str, str] = QUERIES,
) -> list[TimelineItem]:
    """The records of ``<type>s_<which>`` of every type, merged in message order (for one
    message: prompt, observation, summary)."""
    items: list[TimelineItem] = []
    for record_type, read in _READERS.items():
        rows = await conn.execute_fetchall(queries[f"{RECORD_TABLES[record_type]}_{which}"], params)
        items.extend(
            TimelineItem(record_type, read(row), inherited=bool(row["inherited"])) for row in rows
        )
    items.sort(key=lambda item: (item.message_id, RECORD_ORDER[item.record_type]))
    return items


_READERS: Final[dict[RecordType, Callable[[sqlite3.Row], MemoryRecord]]] = {
    RecordType.PROMPT: prompt_from_row,
    RecordType.OBSERVATION: observation_from_row,
    RecordType.SUMMARY: summary_from_row,
}


def _headline(record: MemoryRecord) -> str:
    if isinstance(record, ObservationRecord):
        text = record.title
    elif isinstance(record, SummaryRecord):
        text = record.request or record.completed
    else:
        text = record.text
    return title_from_prompt(text) or ""
