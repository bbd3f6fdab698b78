"""Memory read straight from the database, for the CLI's read commands (search, timeline,
records, sessions, history, context, export) and the MCP server when no daemon answers.

The database is ``database_of(settings)``: the home's SQLite file, or the PostgreSQL server
``MEMQ_DATABASE_URL`` names (``ServerDatabase``), read as the daemon reads it there
(``PgMemoryReader``, search in PostgreSQL's dialect).

Read-only by construction: the file is opened with SQLite's ``mode=ro`` (``MemoryReader``),
and the server's connections make every transaction read-only, so these reads never create,
migrate or change the database, and WAL lets them read while another process writes (a
daemon starting, the hook's fallback). A database that does not exist yet, or has no memory
tables yet (only the hook's fallback has written to it, or no daemon ever migrated the
server's schema), is memory that holds nothing yet. A server that does not answer is a 503
naming it (its URL without the password).

Each read answers as the daemon's route does: an HTTP status and the same body, built from the
same readers by ``memq.memory.answers``, so that the CLI prints the same whichever answered.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import anyio

from memq.events import normalize_session_key
from memq.exceptions import InvalidQueryError, InvalidRequestError, SchemaError, StorageError
from memq.memory.answers import context_answer, no_record, no_session, search_answer
from memq.memory.archive import SessionExporter
from memq.memory.context import ContextBuilder
from memq.memory.lookup import Lookup, RecordLookup, no_records
from memq.memory.projects import project_for
from memq.memory.reader import ReadsMemory
from memq.memory.refs import RecordRef
from memq.memory.search import MemorySearch
from memq.memory.store import MemoryStore, split_session_key
from memq.memory.usage_figures import UsageFigures, empty_answer
from memq.model_cost import Price
from memq.storage.postgres.url import shown_url
from memq.storage.sqlfile import POSTGRES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from memq.config import Settings
    from memq.memory.pg_search import PgMemoryReader

Answer = tuple[int, bytes]  # what the CLI gets from the daemon too: status and body

_R = TypeVar("_R", bound=ReadsMemory)
_OK = 200
_BAD_QUERY = 400  # as the API answers InvalidQueryError
_NOT_FOUND = 404
_UNPROCESSABLE = 422
_UNAVAILABLE = 503


@dataclass(frozen=True, slots=True)
class ServerDatabase:
    """The PostgreSQL database at ``url``; shown without its password."""

    url: str

    def __str__(self) -> str:
        return shown_url(self.url)


Database = Path | ServerDatabase


def database_of(settings: Settings) -> Database:
    """Where the daemon keeps memory: ``settings.database_url``'s server when set, else the
    home's file."""
    if settings.database_url:
        return ServerDatabase(settings.database_url)
    return settings.paths.database


def search(
    database: Database,
    query: str,
    *,
    project: str | None = None,
    session: str | None = None,
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
) -> Answer:
    """``GET /api/search``: the records matching ``query``, best first."""

    async def read(memory: MemorySearch | None) -> Answer:
        if memory is None:
            return _json(search_answer([]))
        hits = await memory.search(
            query,
            project=project or None,
            session_key=normalize_session_key(session) if session else None,
            types=types,
            kinds=kinds,
            file=file or None,
            since=since,
            until=until,
            limit=limit,
            min_score=min_score,
            syntax=syntax,
            assistants=assistants,
            authors=authors,
        )
        return _json(search_answer(hits))

    return _answer(database, MemorySearch, read)


def timeline(database: Database, around: int, *, before: int = 5, after: int = 5) -> Answer:
    """``GET /api/timeline``: the record message ``around`` produced and its neighbours."""

    async def read(memory: MemorySearch | None) -> Answer:
        result = (
            None if memory is None else await memory.timeline(around, before=before, after=after)
        )
        if result is None:
            return _error(_NOT_FOUND, no_record(around))
        return _json(result.to_dict())

    return _answer(database, MemorySearch, read)


def timeline_at(
    database: Database, anchor: RecordRef, *, before: int = 5, after: int = 5
) -> Answer:
    """``GET /api/timeline?anchor=``: the record ``anchor`` names and its neighbours."""

    async def read(lookup: RecordLookup | None) -> Answer:
        result = (
            None if lookup is None else await lookup.timeline(anchor, before=before, after=after)
        )
        if result is None:
            return _error(_NOT_FOUND, no_records([anchor]))
        return _json(result.to_dict())

    return _answer(database, RecordLookup, read)


def records(database: Database, refs: Sequence[RecordRef]) -> Answer:
    """``GET /api/records?ids=``: the records ``refs`` name, and which are missing."""

    async def read(lookup: RecordLookup | None) -> Answer:
        if lookup is None:  # nothing remembered yet: the references are checked all the same
            found = Lookup(found=(), missing=tuple(dict.fromkeys(refs)))
        else:
            found = await lookup.records(refs)
        if not found.found:
            return _error(_NOT_FOUND, no_records(found.missing))
        return _json(found.to_dict())

    return _answer(database, RecordLookup, read)


def sessions(
    database: Database,
    *,
    limit: int = 100,
    offset: int = 0,
    assistants: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
) -> Answer:
    """``GET /api/sessions``: sessions, most recently active first."""

    async def read(store: MemoryStore | None) -> Answer:
        if store is None:
            return _json({"items": [], "total": 0})
        page = await store.list_sessions(
            limit=limit, offset=offset, assistants=assistants, authors=authors
        )
        return _json(page.to_dict())

    return _answer(database, MemoryStore, read)


def history(database: Database, session: str, *, max_items: int = 50) -> Answer:
    """``GET /api/sessions/<session>/history?max=``: the session's newest prompts and
    observations since its last summary."""
    key = normalize_session_key(session)

    async def read(store: MemoryStore | None) -> Answer:
        found = None if store is None else await store.history(key, max_items)
        if found is None:
            return _error(_NOT_FOUND, no_session(key))
        assistant = split_session_key(key)[0]
        return _json({"session_id": key, "assistant": assistant, **found.to_dict()})

    return _answer(database, MemoryStore, read)


def context(
    database: Database,
    cwd: str,
    *,
    budget_tokens: int,
    assistants: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
) -> Answer:
    """``GET /api/context?cwd=``: the context of the project ``cwd`` belongs to."""
    project = project_for(cwd) or None

    async def read(builder: ContextBuilder | None) -> Answer:
        if builder is None:
            return _json({"project": project, "context": "", "has_memory": False})
        answer = await context_answer(
            builder, project, budget_tokens=budget_tokens, assistants=assistants, authors=authors
        )
        return _json(answer)

    return _answer(database, ContextBuilder, read)


def export(database: Database, session: str) -> Answer:
    """``GET /api/sessions/<session>/export``: the session's memory as JSON Lines."""
    key = normalize_session_key(session)

    async def read(exporter: SessionExporter | None) -> Answer:
        lines = None if exporter is None else await exporter.export(key)
        if lines is None:
            return _error(_NOT_FOUND, no_session(key))
        return _OK, "".join(lines).encode("utf-8")

    return _answer(database, SessionExporter, read)


def stats(
    database: Database,
    *,
    project: str | None = None,
    sessions: int = 10,
    prices: Mapping[str, Price] | None = None,
) -> Answer:
    """``GET /api/stats``: the figures of memory's use (``memq.memory.usage_figures``);
    ``prices`` for the cost estimate of the model tokens (the defaults when None)."""

    async def read(figures: UsageFigures | None) -> Answer:
        if figures is None:  # nothing recorded yet, or a file from before the usage tables
            return _json(empty_answer(project))
        if prices is not None:
            figures.prices = prices
        return _json(await figures.answer(project=project, sessions=sessions))

    return _answer(database, UsageFigures, read)


def _answer(
    database: Database, reader: type[_R], read: Callable[[_R | None], Awaitable[Answer]]
) -> Answer:
    """Open ``reader`` on the database read-only (None when memory holds nothing yet), run
    ``read`` with it, and turn what goes wrong into the answer the API would give."""

    async def run() -> Answer:
        if isinstance(database, ServerDatabase):
            return await _on_server(database, reader, read)
        if not await anyio.Path(database).is_file():
            return await read(None)  # nothing was ever remembered here
        try:
            opened = await reader.open(database, read_only=True)
        except SchemaError:
            return await read(None)  # only the hook's fallback has written: no memory yet
        async with opened:
            return await read(opened)

    try:
        return anyio.run(run)
    except InvalidQueryError as exc:
        return _error(_BAD_QUERY, str(exc))
    except StorageError as exc:
        if isinstance(database, ServerDatabase):  # the message names the server already
            return _error(_UNAVAILABLE, f"cannot read memory: {exc}")
        return _error(_UNAVAILABLE, f"cannot read memory from {database}: {exc}")
    except InvalidRequestError as exc:  # a filter the CLI let through; the API checks it too
        return _error(_UNPROCESSABLE, str(exc))


async def _on_server(
    database: ServerDatabase, reader: type[_R], read: Callable[[_R | None], Awaitable[Answer]]
) -> Answer:
    """``_answer``'s read on a PostgreSQL server: a small read-only pool of its own."""
    from memq.memory.pg_search import PgMemoryReader  # noqa: PLC0415 - needs the driver
    from memq.storage.postgres import connection, schema  # noqa: PLC0415

    options = connection.ConnectOptions(max_size=2, read_only=True)
    # One connection first: a server that refuses is told at once, with its reason (a pool
    # retries quietly until its time limit), and it tells whether there is memory at all.
    probe = await connection.connect(database.url, options)
    try:
        with connection.storage_errors(database.url):
            version = await schema.current_version(probe)
    finally:
        await probe.close()
    if version == 0:
        return await read(None)  # no daemon ever made the schema: no memory yet
    pool = await PgMemoryReader.open(database.url, options)
    try:
        async with _on_pool(reader, pool.sharing()) as opened:
            return await read(opened)
    finally:
        await pool.close()


def _on_pool(reader: type[_R], pool: PgMemoryReader) -> _R:
    """``reader`` on the server, as the daemon makes it (``MemorySource``)."""
    if issubclass(reader, MemorySearch):
        return reader(pool, dialect=POSTGRES)
    return reader(pool)


def _json(body: dict[str, Any]) -> Answer:
    # As Starlette's JSONResponse renders it.
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return _OK, text.encode("utf-8")


def _error(status: int, message: str) -> Answer:
    return status, json.dumps({"error": message}).encode("utf-8")
