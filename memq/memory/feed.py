"""The live feed: what memory gained, in the order it was stored (issue 14).

The store's effect appends a row per record a processed message adds (``append_feed``), in
the transaction that acks the message: a row exists exactly when its record committed, once,
whatever retries came before. Copies a fork made and records an import brought are not news
and have no rows. Rows are numbered by ``seq`` (never reused), which ``GET /api/feed`` sends as
each event's id, so a client resumes after the last one it saw.

``Feed`` is the daemon's side: a read connection (``FeedReader``), the in-process signal the
claim handler raises after an ack commits (``notify``), and pruning by age and count.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import aiosqlite
import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import QueueClosedError, SettingError, StorageError
from memq.memory.model_usage import RunsTransactions
from memq.memory.reader import ReadsMemory
from memq.memory.records import RecordType, from_epoch_ms, isoformat_utc
from memq.memory.refs import format_ref
from memq.queue import SYSTEM_CLOCK, Clock, Transaction, earlier, span
from memq.storage.sqlfile import load_queries

log = structlog.get_logger("memq.feed")

QUERIES: Final = load_queries("feed")
DAY: Final = 24 * 3600.0
PRUNE_CHUNK: Final = 2000
BACKLOG: Final = 50  # items a new stream starts with when it names no position
MAX_BACKLOG: Final = 500
BATCH: Final = 200  # items read at a time while catching up


async def append_feed(tx: Transaction, *, message_id: int, session_key: str) -> None:
    """Add the feed rows of the records message ``message_id`` just stored; run it in the
    transaction that stored them (after the inserts)."""
    params = {"message_id": message_id, "session_key": session_key, "at": tx.now_ms}
    await tx.execute(QUERIES["append_feed"], params)


@dataclass(frozen=True, slots=True)
class FeedItem:
    """One record memory gained, as the feed shows it."""

    seq: int
    at: int  # when it was stored, epoch ms
    record_type: RecordType
    record_id: int
    session_key: str
    project: str | None
    title: str
    kind: str | None  # an observation's kind
    created_at: int  # the event's time, epoch ms
    assistant: str = ""  # the session's assistant
    author: str | None = None  # who produced it (memq.memory.origin); None: this machine's user
    machine: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "ref": format_ref(self.record_type, self.record_id),
            "record_type": self.record_type.value,
            "id": self.record_id,
            "session_key": self.session_key,
            "assistant": self.assistant,
            "author": self.author,
            "machine": self.machine,
            "project": self.project,
            "title": self.title,
            "kind": self.kind,
            "created_at": isoformat_utc(from_epoch_ms(self.created_at)),
            "stored_at": isoformat_utc(from_epoch_ms(self.at)),
        }


def _item(row: sqlite3.Row) -> FeedItem:
    return FeedItem(
        seq=int(row["seq"]),
        at=int(row["at"]),
        record_type=RecordType(row["record_type"]),
        record_id=int(row["record_id"]),
        session_key=str(row["session_key"]),
        project=row["project"],
        title=str(row["title"] or ""),
        kind=row["kind"],
        created_at=int(row["created_at"]),
        assistant=str(row["assistant"]),
        author=row["author"],
        machine=row["machine"],
    )


def _names(assistants: Sequence[str] | None) -> str | None:
    """Assistant (or author) names as the statements take them: a JSON array, NULL for
    all."""
    return None if assistants is None else json.dumps(list(assistants))


class FeedReader(ReadsMemory):
    """Reads the feed on a read connection of its own (never the writer)."""

    TABLES = ("feed", "sessions", "prompts", "observations", "summaries")

    async def last_seq(self) -> int:
        """The newest row's seq; 0 with none."""
        rows = await self._rows("feed_last_seq", {})
        return int(rows[0]["seq"]) if rows else 0

    async def after(
        self,
        after: int,
        *,
        session_key: str | None = None,
        project: str | None = None,
        assistants: Sequence[str] | None = None,
        limit: int = BATCH,
        authors: Sequence[str] | None = None,
    ) -> list[FeedItem]:
        """The first ``limit`` items after seq ``after``, oldest first (only ``assistants``'
        sessions' and ``authors``' records when given)."""
        params = {
            "after": after,
            "session_key": session_key,
            "project": project,
            "assistants": _names(assistants),
            "authors": _names(authors),
            "limit": limit,
        }
        return [_item(row) for row in await self._rows("feed_after", params)]

    async def newest(
        self,
        upto: int,
        *,
        session_key: str | None = None,
        project: str | None = None,
        assistants: Sequence[str] | None = None,
        limit: int = BACKLOG,
        authors: Sequence[str] | None = None,
    ) -> list[FeedItem]:
        """The newest ``limit`` items up to seq ``upto``, oldest first."""
        params = {
            "upto": upto,
            "session_key": session_key,
            "project": project,
            "assistants": _names(assistants),
            "authors": _names(authors),
            "limit": limit,
        }
        return [_item(row) for row in reversed(await self._rows("feed_newest", params))]

    async def _rows(self, name: str, params: dict[str, Any]) -> list[sqlite3.Row]:
        try:
            async with self._reader.reading() as conn:
                return list(await conn.execute_fetchall(QUERIES[name], params))
        except (sqlite3.Error, ValueError) as exc:
            raise StorageError(f"cannot read the feed: {exc}") from exc


class Feed:
    """The daemon's feed: its reader, the signal that a message's records committed, and
    pruning (rows older than ``retention`` seconds, and beyond the newest ``max_rows``).

    ``heartbeat`` and ``recheck`` are the streams' timing (seconds): a comment line that
    keeps an idle connection open, and how often a waiting stream looks at the database for
    rows another process wrote (the daemon's own acks wake it at once).
    """

    def __init__(
        self,
        reader: FeedReader,
        writer: RunsTransactions,
        *,
        clock: Clock = SYSTEM_CLOCK,
        retention: float = 7 * DAY,
        max_rows: int = 10_000,
        prune_interval: float = 600.0,
        heartbeat: float = 15.0,
        recheck: float = 5.0,
    ) -> None:
        if min(retention, prune_interval, heartbeat, recheck) <= 0 or max_rows < 1:
            raise SettingError("the feed's intervals must be > 0 and max_rows >= 1")
        self.reader = reader
        self._writer = writer
        self._clock = clock
        self.retention = retention
        self.max_rows = max_rows
        self._prune_interval = prune_interval
        self.heartbeat = heartbeat
        self.recheck = recheck
        self._changed = anyio.Event()
        self._stop = anyio.Event()
        self.closed = False

    # -- the signal --------------------------------------------------------------------------

    def notify(self) -> None:
        """Records committed: wake every stream waiting on ``changed``."""
        self._changed.set()
        self._changed = anyio.Event()

    def changed(self) -> anyio.Event:
        """An event set at the next ``notify`` or at ``close``. Take it before reading, so a
        commit between the read and the wait still wakes the wait."""
        return self._changed

    def close(self) -> None:
        """The daemon stops: every stream ends, ``run`` returns. Safe to call twice."""
        self.closed = True
        self._stop.set()
        self._changed.set()

    # -- pruning -----------------------------------------------------------------------------

    async def prune(self) -> int:
        """Delete the rows older than ``retention`` and the oldest beyond ``max_rows``, a
        chunk per transaction; returns how many went. Raises ``StorageError``."""
        before = earlier(self._clock.now(), span(self.retention))
        deleted = 0
        for name, params in (
            ("prune_feed_before", {"before": before}),
            ("prune_feed_over", {"keep": self.max_rows}),
        ):
            deleted += await self._prune_chunks(QUERIES[name], {**params, "chunk": PRUNE_CHUNK})
        if deleted:
            log.info("feed.pruned", rows=deleted)
        return deleted

    async def _prune_chunks(self, statement: str, params: dict[str, Any]) -> int:
        async def delete(tx: Transaction) -> int:
            return await tx.execute(statement, params)

        total = 0
        while True:
            deleted = await self._writer.run_in_transaction(delete)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Prune now and every ``prune_interval`` until ``close``."""
        task_status.started()
        while not self.closed:
            try:
                await self.prune()
            except (StorageError, QueueClosedError, aiosqlite.Error) as exc:
                log.warning("feed.prune_failed", error=str(exc))
            with anyio.move_on_after(self._prune_interval):
                await self._stop.wait()
