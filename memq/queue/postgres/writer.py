"""Group commit on PostgreSQL: one writer task, one connection, many operations per commit.

Callers put operations in the inbox and wait; a task started when the inbox fills from empty
takes every operation waiting (up to the batch limits) into one transaction, commits, wakes
their callers, and goes on until the inbox is empty. The unit cost of a commit is the
network round trip (and the server's WAL flush), so concurrent enqueues, claims and acks
share it as they share an fsync on SQLite.

In a batch, in order: the enqueues (one advisory lock per session, in key order; one
``unnest`` insert with ``ON CONFLICT DO NOTHING`` on the dedupe index; one ``pg_notify``),
the calls (each in a savepoint of its own: an ack that carries a consumer's writes), the
settlements (one statement per kind, fenced by claim token), dropped leases, then claims
(each under its session's lease, taken first when this daemon holds none). Drops and claims
run in session order, not arrival order: every batch locks leases and heads in one order.

A batch runs in pipeline mode, so that it costs few round trips: a statement whose outcome
is not needed at once (an enqueue's locks and notify, a savepoint's release, a dropped
lease) travels with the next one whose outcome is, a batch's settlements go out together,
and so do its claims. A call waits for each of its own statements (``PgTransaction``), so
that its errors are its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, TypeVar

import anyio
import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row

from memq.exceptions import QueueClosedError, StorageError
from memq.queue._clock import Clock, EpochMs, SpanMs, later
from memq.queue._writer import EnqueueOp, FailDetails, Operation, SettleAction
from memq.queue.postgres import leases
from memq.queue.postgres.leases import LeaseBook
from memq.storage.postgres.connection import storage_errors
from memq.storage.postgres.statements import pg_form

log = structlog.get_logger("memq.queue")
T = TypeVar("T")
Row = dict[str, Any]
Connection = psycopg.AsyncConnection[Any]
Pipeline = psycopg.AsyncPipeline
# The most a notification may carry (PostgreSQL's limit is 8000 bytes): more sessions
# than fit are announced as "*", look at the whole backlog.
NOTIFY_BYTES: Final = 7900
EVERY_SESSION: Final = "*"


class PgTransaction:
    """The open transaction of a batch that an operation's own statements ride in (the
    PostgreSQL ``memq.queue.Transaction``): rows are dicts, parameters psycopg's; a SQLite
    statement of ``memq/storage/queries`` runs in its PostgreSQL form (``pg_form``).

    The batch runs in pipeline mode: each method waits for its statement's outcome before
    it returns (a sync), so a statement's error is raised here, inside the operation that
    ran it, and undoes that operation only."""

    def __init__(self, conn: Connection, now: EpochMs, pipeline: Pipeline | None = None) -> None:
        self._conn = conn
        self._pipeline = pipeline
        self.now_ms = now  # the batch's clock, as stored

    async def _outcome(self) -> None:
        if self._pipeline is not None:
            await self._pipeline.sync()

    async def execute(self, sql: str, parameters: Any = None) -> int:
        """Run one statement; return how many rows it changed."""
        async with self._conn.cursor() as cur:
            await cur.execute(pg_form(sql), parameters)
            await self._outcome()
            return cur.rowcount

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> None:
        """Run one statement once per parameter set."""
        async with self._conn.cursor() as cur:
            await cur.executemany(pg_form(sql), parameters)
            await self._outcome()

    async def fetchall(self, sql: str, parameters: Any = None) -> list[Row]:
        """Run one statement and return all its rows (none for a statement without)."""
        async with self._conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(pg_form(sql), parameters)
            await self._outcome()
            return await cur.fetchall() if cur.description is not None else []


class PgClaimOp(Operation):
    """Claim the session's head if it is due, under the session's lease. Otherwise ``row``
    stays None, and either ``busy`` (another daemon holds the lease) or
    ``head_available_at`` says when the pending head becomes due (None: nothing pending).

    ``only_if``, when given, is asked just before the claim: a claim that rides with the
    ack of the session's previous message is made only if that ack went through."""

    __slots__ = ("busy", "head_available_at", "only_if", "row", "session")

    def __init__(self, session: str, *, only_if: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.session = session
        self.only_if = only_if
        self.row: Row | None = None
        self.head_available_at: EpochMs | None = None
        self.busy = False


class PgSettleOp(Operation):
    """Settle one claim, named by its token: ``matched`` False means it was taken away."""

    __slots__ = ("action", "details", "matched", "message_id", "token")

    def __init__(
        self, action: SettleAction, message_id: int, token: int, details: FailDetails | None = None
    ) -> None:
        super().__init__()
        self.action = action
        self.message_id = message_id
        self.token = token
        self.details = details
        self.matched = False


class PgCallOp(Operation, Generic[T]):
    """Run ``fn`` inside the batch's transaction, in a savepoint of its own."""

    __slots__ = ("fn", "result")

    def __init__(self, fn: Callable[[PgTransaction], Awaitable[T]]) -> None:
        super().__init__()
        self.fn = fn
        self.result: T | None = None


class LeaseDropOp(Operation):
    """Drop the lease ``token`` on ``session`` (its stream ended)."""

    __slots__ = ("session", "token")

    def __init__(self, session: str, token: int) -> None:
        super().__init__()
        self.session = session
        self.token = token


@dataclass(slots=True)
class _Groups:
    enqueues: list[EnqueueOp] = field(default_factory=list)
    calls: list[PgCallOp[Any]] = field(default_factory=list)
    settles: dict[SettleAction, list[PgSettleOp]] = field(
        default_factory=lambda: {action: [] for action in SettleAction}
    )
    drops: list[LeaseDropOp] = field(default_factory=list)
    claims: list[PgClaimOp] = field(default_factory=list)

    @classmethod
    def of(cls, batch: list[Operation]) -> _Groups:
        groups = cls()
        for op in batch:
            if isinstance(op, EnqueueOp):
                groups.enqueues.append(op)
            elif isinstance(op, PgCallOp):
                groups.calls.append(op)
            elif isinstance(op, PgSettleOp):
                groups.settles[op.action].append(op)
            elif isinstance(op, LeaseDropOp):
                groups.drops.append(op)
            elif isinstance(op, PgClaimOp):
                groups.claims.append(op)
        return groups


class PgWriter:
    """Owns the write connection; see the module docstring for how batches form.

    ``connect`` makes the connection (again, after one broke); ``daemon`` is this daemon's
    id now (it changes when the daemon re-registers after being fenced); ``on_commit`` runs
    after each commit, before the batch's callers hear of it.
    """

    def __init__(
        self,
        connect: Callable[[], Awaitable[Connection]],
        queries: Mapping[str, str],
        pg_queries: Mapping[str, str],
        *,
        url: str,
        clock: Clock,
        daemon: Callable[[], int],
        book: LeaseBook,
        channel: str,
        max_batch: int,
        max_batch_bytes: int,
        stored_lease: SpanMs,
        longest_wait: SpanMs,
        on_commit: Callable[[list[Operation]], None],
        on_storage_error: Callable[[StorageError], None] | None = None,
    ) -> None:
        self._connect = connect
        self._q = queries
        self._pg = pg_queries
        self._url = url
        self._clock = clock
        self._daemon = daemon
        self._book = book
        self._channel = channel
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._stored_lease = stored_lease
        self._longest_wait = longest_wait
        self._on_commit = on_commit
        self._on_storage_error = on_storage_error
        self._conn: Connection | None = None
        self._inbox: deque[Operation] = deque()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.batches = 0  # commits so far, for benchmarks and tests

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, op: Operation) -> None:
        """Run ``op`` in the next batch; raise its error, if it had one."""
        await self.submit_all((op,))
        if op.error is not None:
            raise op.error

    async def submit_all(self, ops: Sequence[Operation]) -> None:
        """Queue several operations together, in order, and wait until all are done (errors
        are left on each operation). A caller cancelled while waiting withdraws what was not
        taken yet; a claim made for it is released."""
        if self._closed:
            raise QueueClosedError
        if not ops:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        ops[-1]._future = future  # batches run in order: once the last is done, all are
        self._inbox.extend(ops)
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._drain())
        try:
            await future
        except BaseException:
            await self._abandon(ops)
            raise

    async def _abandon(self, ops: Sequence[Operation]) -> None:
        for op in ops:
            if not op.taken:
                self._inbox.remove(op)
                op.finish()
        with anyio.CancelScope(shield=True):
            for op in ops:
                if not op.done:
                    await op.wakeup.wait()
            releases = [
                PgSettleOp(SettleAction.RELEASE, int(op.row["id"]), int(op.row["claim_token"]))
                for op in ops
                if isinstance(op, PgClaimOp) and op.row is not None
            ]
            if releases and not self._closed:
                await self.submit_all(releases)

    @property
    def backend_pid(self) -> int | None:
        """The server process of the writer's connection (its notifications carry it)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def close(self) -> None:
        """Refuse new operations, let those queued run, and close the connection."""
        self._closed = True
        task = self._task
        if task is not None:
            with anyio.CancelScope(shield=True):
                await asyncio.shield(task)
        await self._discard()

    async def _discard(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()

    # -- the writer task -------------------------------------------------------------------

    async def _drain(self) -> None:
        try:
            while self._inbox:
                batch = self._take()
                committed, error = await self._run(batch)
                if error is not None and self._on_storage_error is not None:
                    self._on_storage_error(error)
                if committed:
                    self.batches += 1
                for op in batch:
                    op.finish()
                if committed:
                    try:
                        self._on_commit(batch)
                    except Exception:
                        log.exception("writer.on_commit_failed")
        finally:
            self._task = None

    def _take(self) -> list[Operation]:
        inbox = self._inbox
        first = inbox.popleft()
        first.taken = True
        batch, size = [first], first.size
        while (
            inbox and len(batch) < self._max_batch and size + inbox[0].size <= self._max_batch_bytes
        ):
            op = inbox.popleft()
            op.taken = True
            batch.append(op)
            size += op.size
        return batch

    async def _connection(self) -> Connection:
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            await self._discard()
            conn = await self._connect()
            try:
                with storage_errors(self._url):
                    # A 202 means committed and flushed: whatever the server's or the
                    # role's default, this connection's commits wait for the WAL flush.
                    await conn.execute("SET synchronous_commit = on")
            except BaseException:
                await conn.close()
                raise
            conn.row_factory = dict_row
            self._conn = conn
        return conn

    async def _run(self, batch: list[Operation]) -> tuple[bool, StorageError | None]:
        """One batch in one transaction; results and errors are left on each operation.
        A connection found broken before the batch began (the server restarted, an idle
        connection was cut) is replaced and the batch tried once more: nothing was sent."""
        outcome = await self._attempt(batch)
        if outcome is None:
            log.info("writer.reconnected")
            outcome = await self._attempt(batch, last=True)
        assert outcome is not None
        return outcome

    async def _attempt(
        self, batch: list[Operation], *, last: bool = False
    ) -> tuple[bool, StorageError | None] | None:
        """``_run``'s one try; None when the connection broke before the batch began."""
        groups = _Groups.of(batch)
        now = self._clock.now()
        changes: list[tuple[str, int | None]] = []  # leases taken (token) or lost (None)
        began = False
        try:
            with storage_errors(self._url):
                conn = await self._connection()
                async with conn.transaction():
                    began = True
                    # Pipeline mode: a statement whose outcome is not needed at once (a
                    # lock, a savepoint and its release, a notify, a dropped lease) goes to
                    # the server with the next one that is, and the claims of a batch go
                    # out together: one round trip where each took one.
                    async with conn.pipeline() as pipeline:
                        await self._insert(conn, groups.enqueues, now)
                        for number, call in enumerate(groups.calls):
                            await self._call(conn, pipeline, call, now, number)
                        await self._settle(conn, groups.settles, now)
                        # Row locks (leases, heads) in session order, whatever order the
                        # operations came in: two daemons' batches then never deadlock.
                        for drop in sorted(groups.drops, key=lambda op: op.session):
                            await leases.drop(conn, self._pg, drop.session, drop.token)
                        await self._claim(conn, groups.claims, now, changes)
        except BaseException as exc:  # handed to the batch's callers, whatever it is
            broken = self._conn is None or self._conn.broken or self._conn.closed
            if broken:
                await self._discard()
                if not began and not last and isinstance(exc, StorageError):
                    return None
            stored = exc if isinstance(exc, StorageError) else None
            for op in batch:
                if isinstance(op, PgClaimOp):
                    op.row = None
                op.error = exc
            return False, stored
        for session_id, token in changes:
            if token is None:
                self._book.forget(session_id)
            else:
                self._book.took(session_id, token)
        return True, None

    async def _call(
        self, conn: Connection, pipeline: Pipeline, call: PgCallOp[Any], now: EpochMs, number: int
    ) -> None:
        """Run ``call`` in a savepoint of its own: a failing call undoes only itself. The
        savepoint is sent with the call's first statement, its release with the statement
        after the call; each call's savepoint has its own name, so that an error of one
        that surfaced late (in the next call) cannot roll back the wrong one: the undo then
        fails, and the batch with it."""
        savepoint = sql.Identifier(f"memq_call_{number}")
        await conn.execute(sql.SQL("SAVEPOINT {}").format(savepoint))
        try:
            call.result = await call.fn(PgTransaction(conn, now, pipeline))
        except Exception as exc:
            if conn.broken or conn.closed:
                raise  # the batch is lost, not only this call
            await self._undo(conn, pipeline, savepoint)
            call.error = self._error_of(exc)
            return
        await conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(savepoint))

    async def _undo(self, conn: Connection, pipeline: Pipeline, savepoint: sql.Identifier) -> None:
        """Roll back to ``savepoint`` after its call failed; raises when that fails (the
        batch is lost)."""
        with contextlib.suppress(psycopg.Error):
            # Ends the stretch of the pipeline that the error aborted (the statements sent
            # after the failing one were skipped: their error is that one's).
            await pipeline.sync()
        await conn.execute(sql.SQL("ROLLBACK TO SAVEPOINT {}").format(savepoint))
        await conn.execute(sql.SQL("RELEASE SAVEPOINT {}").format(savepoint))
        await pipeline.sync()

    def _error_of(self, exc: Exception) -> Exception:
        if not isinstance(exc, psycopg.Error):
            return exc
        try:
            with storage_errors(self._url):
                raise exc
        except StorageError as error:
            if self._on_storage_error is not None:
                self._on_storage_error(error)
            return error
        return exc  # pragma: no cover - storage_errors always raises

    async def _fetch(self, conn: Connection, query: str, params: Mapping[str, Any]) -> list[Row]:
        async with conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(query, params)
            return await cur.fetchall()

    async def _fetch_each(
        self, conn: Connection, query: str, params: Sequence[Mapping[str, Any]]
    ) -> list[list[Row]]:
        """The rows of ``query`` run once per parameter set, in order: all are sent before
        the first rows are read (one round trip in pipeline mode)."""
        cursors: list[psycopg.AsyncCursor[Row]] = []
        try:
            for each in params:
                cur = conn.cursor(row_factory=dict_row)
                cursors.append(cur)
                await cur.execute(query, each)
            return [await cur.fetchall() for cur in cursors]
        finally:
            for cur in cursors:
                await cur.close()

    async def _insert(self, conn: Connection, ops: list[EnqueueOp], now: EpochMs) -> None:
        if not ops:
            return
        await conn.execute(self._pg["lock_sessions"], {"sessions": [op.session for op in ops]})
        inserted = await self._fetch(
            conn,
            self._q["insert_messages"],
            {
                "sessions": [op.session for op in ops],
                "kinds": [op.kind for op in ops],
                "payloads": [op.payload for op in ops],
                "keys": [op.dedupe_key for op in ops],
                "times": [op.created_at for op in ops],
            },
        )
        # Rows went in in array order and identity ids ascend, so walking both in order
        # pairs each inserted row with its operation; an operation without a match was a
        # duplicate of an existing (or earlier in this batch) dedupe key.
        returned = sorted(inserted, key=lambda row: int(row["id"]))
        position = 0
        duplicates: list[EnqueueOp] = []
        for op in ops:
            row = returned[position] if position < len(returned) else None
            if (
                row is not None
                and row["session_id"] == op.session
                and row["dedupe_key"] == op.dedupe_key
            ):
                op.message_id, op.created = int(row["id"]), True
                position += 1
            else:
                duplicates.append(op)
        if duplicates:
            found = await self._fetch(
                conn,
                self._q["select_by_dedupe_keys"],
                {
                    "sessions": [op.session for op in duplicates],
                    "keys": [op.dedupe_key for op in duplicates],
                },
            )
            existing = {(row["session_id"], row["dedupe_key"]): int(row["id"]) for row in found}
            for op in duplicates:
                op.message_id, op.created = existing[(op.session, op.dedupe_key)], False
        created = sorted({op.session for op in ops if op.created})
        if created:
            await conn.execute(
                self._pg["notify"], {"channel": self._channel, "payload": notify_payload(created)}
            )

    async def _settle(
        self, conn: Connection, groups: dict[SettleAction, list[PgSettleOp]], now: EpochMs
    ) -> None:
        wanted: list[tuple[list[PgSettleOp], dict[str, Any]]] = []
        for action, ops in groups.items():
            if not ops:
                continue
            params: dict[str, Any] = {
                "ids": [op.message_id for op in ops],
                "tokens": [op.token for op in ops],
                "now": now,
            }
            if action is SettleAction.FAIL:
                details = [op.details for op in ops]
                params["statuses"] = [d.status if d else None for d in details]
                params["available"] = [d.available_at if d else None for d in details]
                params["errors"] = [d.error if d else None for d in details]
            elif action is SettleAction.RELEASE:
                # A release with details is a deferral: it also says when to try again.
                params["available"] = [
                    None if op.details is None else op.details.available_at for op in ops
                ]
            wanted.append((ops, params))
        cursors: list[psycopg.AsyncCursor[Row]] = []
        try:
            for ops, params in wanted:  # sent together, read after
                cur = conn.cursor(row_factory=dict_row)
                cursors.append(cur)
                await cur.execute(self._q[ops[0].action.value], params)
            for (ops, _), cur in zip(wanted, cursors, strict=True):
                matched = {int(row["id"]) for row in await cur.fetchall()}
                for op in ops:
                    op.matched = op.message_id in matched
        finally:
            for cur in cursors:
                await cur.close()

    async def _claim(
        self,
        conn: Connection,
        ops: list[PgClaimOp],
        now: EpochMs,
        changes: list[tuple[str, int | None]],
    ) -> None:
        """Claim each op's session head under the session's lease, taking the lease first
        where this daemon holds none. Each step runs for every op at once (sent together):
        the leases to take, the heads, then the state of the heads not claimed. Locks are
        taken in session order within each step, the same in every daemon's batch."""
        ops = [op for op in ops if op.only_if is None or op.only_if()]
        if not ops:
            return
        daemon = self._daemon()
        tokens = {op.session: self._book.token(op.session) for op in ops}
        base = {
            "daemon": daemon,
            "now": now,
            "lease_until": later(now, self._stored_lease),
            "latest_due": later(now, self._longest_wait),
        }
        # Sorted (stably: one session's claims keep their order) so that leases and heads
        # are locked in one order in every daemon's batch.
        pending = sorted(ops, key=lambda op: op.session)
        for _ in range(2):  # a lease found lost is taken again once
            wanted = sorted({op.session for op in pending if tokens[op.session] is None})
            taken = await self._fetch_each(
                conn,
                self._pg["take_lease"],
                [{"session_id": session, "daemon": daemon, "now": now} for session in wanted],
            )
            for session, rows in zip(wanted, taken, strict=True):
                token = int(rows[0]["token"]) if rows else None
                tokens[session] = token
                if token is not None:
                    changes.append((session, token))
            for op in pending:
                op.busy = tokens[op.session] is None  # another daemon holds the lease
            pending = [op for op in pending if not op.busy]
            params = [
                {**base, "session_id": op.session, "lease": tokens[op.session]} for op in pending
            ]
            claimed = await self._fetch_each(conn, self._pg["claim_head"], params)
            missed = [
                (op, p) for op, p, rows in zip(pending, params, claimed, strict=True) if not rows
            ]
            for op, rows in zip(pending, claimed, strict=True):
                if rows:
                    op.row = rows[0]
            states = await self._fetch_each(conn, self._pg["head_state"], [p for _, p in missed])
            lost: list[PgClaimOp] = []
            for (op, _), rows in zip(missed, states, strict=True):
                available = rows[0]["available_at"]
                op.head_available_at = None if available is None else EpochMs(int(available))
                if not rows[0]["leased"]:
                    lost.append(op)
            for session in sorted({op.session for op in lost}):
                changes.append((session, None))  # swept away: this daemon was fenced
                tokens[session] = None
            pending = lost
            if not pending:
                return


def notify_payload(sessions: Sequence[str]) -> str:
    """The notification of a batch: its sessions as a JSON array (session ids may hold any
    character), or ``*`` when that would not fit."""
    text = json.dumps(list(sessions), ensure_ascii=False, separators=(",", ":"))
    return text if len(text.encode("utf-8")) <= NOTIFY_BYTES else EVERY_SESSION


def parse_notify_payload(payload: str) -> list[str] | None:
    """The sessions a notification names; None for "every session" (or one not understood)."""
    if payload == EVERY_SESSION:
        return None
    try:
        sessions = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(sessions, list) or not all(isinstance(s, str) for s in sessions):
        return None
    return sessions
