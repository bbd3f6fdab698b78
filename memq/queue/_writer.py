"""Group commit: every write of the queue goes through one writer, many operations per commit.

There is no writer task. A caller that finds the writer idle becomes the *leader*: it takes
every operation queued so far (its own included), runs them as one transaction, wakes their
callers, and hands leadership to the oldest operation still waiting, if any. Callers that arrive
while a batch runs just wait; the next leader takes them all at once. So concurrent enqueues,
claims and acks cost one commit (one fsync) per batch, and the queue needs no task group of its
own: ``await Queue.open(path)`` is usable at once, anywhere.

Each kind of operation is one set-based statement for the whole batch (a JSON array read with
``json_each``, or one ``VALUES`` row per message for inserts), because every aiosqlite await is
a thread hop of about 100 us.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import sqlite3
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final, Generic, TypeVar

import aiosqlite
import anyio

from memq.exceptions import DiskFullError, QueueClosedError, StorageError
from memq.queue._clock import Clock, EpochMs, SpanMs, later

T = TypeVar("T")
Row = sqlite3.Row

SQLITE_FULL: Final = 13
# The -shm file could not grow: on a full disk, that is the disk.
SQLITE_IOERR_SHMSIZE: Final = 4874
OUT_OF_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})


class Transaction:
    """The open write transaction that an operation's own statements ride in.

    ``Claim.ack(write)`` hands one of these to ``write`` so that a consumer's result and the
    ``processed`` mark commit together or not at all.
    """

    def __init__(self, conn: aiosqlite.Connection, now: EpochMs) -> None:
        self._conn = conn
        self.now_ms = now  # the batch's clock, as stored

    async def execute(self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()) -> int:
        """Run one statement; return how many rows it changed."""
        cursor = await self._conn.execute(sql, parameters)
        count = cursor.rowcount
        await cursor.close()
        return count

    async def executemany(
        self, sql: str, parameters: Sequence[Sequence[Any] | Mapping[str, Any]]
    ) -> None:
        """Run one statement once per parameter set."""
        await self._conn.executemany(sql, parameters)

    async def fetchall(
        self, sql: str, parameters: Sequence[Any] | Mapping[str, Any] = ()
    ) -> list[Row]:
        """Run one statement and return all its rows."""
        return list(await self._conn.execute_fetchall(sql, parameters))


class SettleAction(Enum):
    """How a claim is settled."""

    ACK = "ack"
    FAIL = "fail"
    RELEASE = "release"  # with FailDetails, a deferral: pending again at details.available_at


class Operation:
    """One caller's request inside a batch."""

    __slots__ = ("done", "error", "promoted", "tail", "taken", "wakeup")

    def __init__(self) -> None:
        self.done = False
        self.taken = False  # part of a batch that is running or ran
        self.tail = False  # the last operation of its submission: its caller is listening
        self.promoted = False  # asked to lead the next batch
        self.error: BaseException | None = None
        self.wakeup = anyio.Event()

    @property
    def size(self) -> int:
        """Bytes this operation adds to a batch (for the batch size cap)."""
        return 64

    def finish(self, error: BaseException | None = None) -> None:
        self.done = True
        self.error = error
        self.wakeup.set()


class EnqueueOp(Operation):
    __slots__ = ("created", "created_at", "dedupe_key", "kind", "message_id", "payload", "session")

    def __init__(
        self, session: str, kind: str, payload: str, dedupe_key: str | None, created_at: EpochMs
    ) -> None:
        super().__init__()
        self.session = session
        self.kind = kind
        self.payload = payload
        self.dedupe_key = dedupe_key
        self.created_at = created_at
        self.message_id = 0
        self.created = False

    @property
    def size(self) -> int:
        return len(self.payload) + 64


class ClaimOp(Operation):
    __slots__ = ("lease_until", "row", "session")

    def __init__(self, session: str) -> None:
        super().__init__()
        self.session = session
        self.row: Row | None = None
        self.lease_until = EpochMs(0)


@dataclass(frozen=True, slots=True)
class FailDetails:
    """What a failed (or deferred) attempt leaves behind: the next status, when to retry,
    and why."""

    status: str
    available_at: EpochMs
    error: str


class SettleOp(Operation):
    __slots__ = ("action", "attempts", "details", "matched", "message_id")

    def __init__(
        self,
        action: SettleAction,
        message_id: int,
        attempts: int,
        details: FailDetails | None = None,
    ) -> None:
        super().__init__()
        self.action = action
        self.message_id = message_id
        self.attempts = attempts
        self.details = details
        self.matched = False


class CallOp(Operation, Generic[T]):
    """Run ``fn`` inside the batch's transaction (in a savepoint of its own), or, when not
    ``transactional``, alone and outside any transaction (e.g. a WAL checkpoint)."""

    __slots__ = ("fn", "result", "transactional")

    def __init__(
        self, fn: Callable[[Transaction], Awaitable[T]], *, transactional: bool = True
    ) -> None:
        super().__init__()
        self.fn = fn
        self.transactional = transactional
        self.result: T | None = None


class GroupCommitWriter:
    """Owns the write connections; see the module docstring for how batches form.

    Args:
        durable: connection with the configured ``synchronous`` level, used for any batch that
            accepts new messages (their acknowledgement promises durability).
        fast: connection with ``synchronous=NORMAL`` for batches of claims and settlements
            only. Losing one of those to an OS crash replays the message, never duplicates it,
            because a result and its ack commit together.
    """

    def __init__(
        self,
        durable: aiosqlite.Connection,
        fast: aiosqlite.Connection,
        queries: Mapping[str, str],
        *,
        max_batch: int,
        max_batch_bytes: int,
        stored_lease: SpanMs,
        longest_wait: SpanMs,
        clock: Clock,
        on_commit: Callable[[list[Operation]], None],
        on_storage_error: Callable[[StorageError], None] | None = None,
    ) -> None:
        self._durable = durable
        self._fast = fast
        self._q = queries
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._stored_lease = stored_lease
        self._longest_wait = longest_wait
        self._clock = clock
        self._on_commit = on_commit
        # Told of every storage error a write met (a full disk: memq.worker.disk).
        self._on_storage_error = on_storage_error
        self._waiting: deque[Operation] = deque()
        self._busy = False
        self._closed = False
        self._idle = anyio.Event()
        self._idle.set()
        self.batches = 0  # commits so far, for benchmarks and tests

    # -- submitting ------------------------------------------------------------------------

    async def submit(self, op: Operation) -> None:
        """Run ``op`` in the next batch and return once that batch committed.

        Raises the operation's error, if it had one. A caller cancelled while waiting either
        withdraws its operation (not started yet) or, if its batch already ran, lets it stand;
        a claim taken for a cancelled caller is released.
        """
        if self._closed:
            raise QueueClosedError
        await self.submit_all([op])
        if op.error is not None:
            raise op.error

    async def submit_all(self, ops: Sequence[Operation]) -> None:
        """Queue several operations together and wait until all are done (errors are left
        on each operation, not raised)."""
        if self._closed:
            raise QueueClosedError
        if not ops:
            return
        last = ops[-1]
        last.tail = True
        self._waiting.extend(ops)
        if not self._busy:
            self._busy = True
            self._idle = anyio.Event()
            await self._lead(last)
            return
        try:
            while not last.done:
                await last.wakeup.wait()
                if last.promoted and not last.done:
                    last.wakeup = anyio.Event()
                    await self._lead(last)
        except BaseException:
            await self._abandon(ops)
            raise

    async def _abandon(self, ops: Sequence[Operation]) -> None:
        """Clean up after a caller cancelled while its operations were queued or running."""
        for op in ops:
            if not op.taken:
                self._waiting.remove(op)
        last = ops[-1]
        if last.promoted and not last.done:
            # We were handed leadership: pass it on so that nobody waits forever.
            self._handoff()
            return
        with anyio.CancelScope(shield=True):
            for op in ops:
                if op.taken and not op.done:
                    await op.wakeup.wait()
            claimed = [op for op in ops if isinstance(op, ClaimOp) and op.row is not None]
            if claimed and not self._closed:
                releases = [
                    SettleOp(SettleAction.RELEASE, int(op.row["id"]), int(op.row["attempts"]))
                    for op in claimed
                    if op.row is not None
                ]
                await self.submit_all(releases)

    async def _lead(self, own: Operation) -> None:
        while True:
            batch = self._take_batch()
            try:
                # A batch, once started, always runs to its end: an open transaction must
                # never be abandoned halfway because its leader's caller went away.
                with anyio.CancelScope(shield=True):
                    committed = await self._run(batch)
            except BaseException as exc:
                self._handoff()
                self._complete(batch, committed=False, error=exc)
                raise
            ours = any(op is own for op in batch)
            if ours:
                # Promote the next leader before waking this batch's callers: it is scheduled
                # first, so the next batch is in SQLite while those callers run their Python.
                self._handoff()
            self._complete(batch, committed=committed)
            if ours:
                return

    def _complete(
        self, batch: list[Operation], *, committed: bool, error: BaseException | None = None
    ) -> None:
        for op in batch:
            op.finish(error or op.error)
        if committed:
            self.batches += 1
            self._on_commit(batch)

    def _handoff(self) -> None:
        # Only a submission's tail has a caller waiting on it; the tail's earlier operations
        # sit before it in the deque, so its leader takes them first.
        successor = next((op for op in self._waiting if op.tail), None)
        if successor is not None:
            successor.promoted = True
            successor.wakeup.set()
            return
        self._busy = False
        self._idle.set()

    def _take_batch(self) -> list[Operation]:
        first = self._waiting.popleft()
        first.taken = True
        batch = [first]
        if isinstance(first, CallOp) and not first.transactional:
            return batch
        size = first.size
        while self._waiting and len(batch) < self._max_batch:
            nxt = self._waiting[0]
            if isinstance(nxt, CallOp) and not nxt.transactional:
                break
            if size + nxt.size > self._max_batch_bytes:
                break
            self._waiting.popleft()
            nxt.taken = True
            batch.append(nxt)
            size += nxt.size
        for op in batch:
            op.promoted = False
        return batch

    async def close(self) -> None:
        """Refuse new operations and wait for the running batch, if any, to finish."""
        self._closed = True
        await self._idle.wait()

    # -- running a batch -------------------------------------------------------------------

    async def _run(self, batch: list[Operation]) -> bool:
        """Run ``batch`` as one commit; results and errors are left on each operation.
        Returns whether it committed."""
        now = self._clock.now()
        enqueues = [op for op in batch if isinstance(op, EnqueueOp)]
        conn = self._durable if enqueues else self._fast
        try:
            first = batch[0]
            if isinstance(first, CallOp) and not first.transactional:
                await self._call(conn, first, now, savepoint=False)
            else:
                await self._run_transaction(conn, batch, enqueues, now)
        except Exception as exc:
            await self._rollback(conn)
            error = exc if not isinstance(exc, sqlite3.Error) else self._storage_error(exc)
            for op in batch:
                if isinstance(op, ClaimOp):
                    op.row = None
                op.error = error
            return False
        return True

    async def _run_transaction(
        self,
        conn: aiosqlite.Connection,
        batch: list[Operation],
        enqueues: list[EnqueueOp],
        now: EpochMs,
    ) -> None:
        claims = [op for op in batch if isinstance(op, ClaimOp)]
        calls = [op for op in batch if isinstance(op, CallOp)]
        settles: dict[SettleAction, list[SettleOp]] = {action: [] for action in SettleAction}
        for op in batch:
            if isinstance(op, SettleOp):
                settles[op.action].append(op)
        statements = sum(1 for group in (enqueues, claims, *settles.values()) if group)
        # One plain statement commits on its own; anything more shares one transaction.
        explicit = bool(calls) or statements > 1
        if explicit:
            await conn.execute("BEGIN IMMEDIATE")
        if enqueues:
            await self._insert(conn, enqueues, now)
        for call in calls:
            await self._call(conn, call, now, savepoint=True)
        await self._settle(conn, settles, now)
        if claims:
            await self._claim(conn, claims, now)
        if explicit:
            await conn.execute("COMMIT")

    async def _rollback(self, conn: aiosqlite.Connection) -> None:
        if conn.in_transaction:
            # A failed COMMIT may already have rolled back on its own.
            with contextlib.suppress(sqlite3.Error):
                await conn.execute("ROLLBACK")

    async def _insert(self, conn: aiosqlite.Connection, ops: list[EnqueueOp], now: EpochMs) -> None:
        params: list[object] = []
        for op in ops:
            params += (op.session, op.kind, op.payload, op.dedupe_key, op.created_at, op.created_at)
        sql = insert_statement(self._q["insert_messages"], len(ops))
        inserted = await conn.execute_fetchall(sql, params)
        # Rows went in in array order and AUTOINCREMENT ids ascend, so walking both in order
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
        if not duplicates:
            return
        keys = json.dumps([[op.session, op.dedupe_key] for op in duplicates], ensure_ascii=False)
        found = await conn.execute_fetchall(self._q["select_by_dedupe_keys"], {"keys": keys})
        existing = {(row["session_id"], row["dedupe_key"]): int(row["id"]) for row in found}
        for op in duplicates:
            op.message_id, op.created = existing[(op.session, op.dedupe_key)], False

    async def _claim(self, conn: aiosqlite.Connection, ops: list[ClaimOp], now: EpochMs) -> None:
        lease_until = later(now, self._stored_lease)
        sessions = json.dumps([op.session for op in ops], ensure_ascii=False)
        params = {
            "sessions": sessions,
            "now": now,
            "lease_until": lease_until,
            "latest_due": later(now, self._longest_wait),
        }
        rows = await conn.execute_fetchall(self._q["claim_heads"], params)
        by_session = {row["session_id"]: row for row in rows}
        for op in ops:
            op.row = by_session.get(op.session)
            op.lease_until = lease_until

    async def _settle(
        self,
        conn: aiosqlite.Connection,
        groups: dict[SettleAction, list[SettleOp]],
        now: EpochMs,
    ) -> None:
        for action, ops in groups.items():
            if not ops:
                continue
            claims: list[Sequence[object]]
            if action is SettleAction.FAIL:
                claims = [
                    [op.message_id, op.attempts, d.status, d.available_at, d.error]
                    for op in ops
                    if (d := op.details) is not None
                ]
            else:
                # A release with details is a deferral: it also says when to try again.
                claims = [
                    [op.message_id, op.attempts]
                    + ([] if op.details is None else [op.details.available_at])
                    for op in ops
                ]
            rows = await conn.execute_fetchall(
                self._q[action.value], {"claims": json.dumps(claims), "now": now}
            )
            matched = {int(row["id"]) for row in rows}
            for op in ops:
                op.matched = op.message_id in matched

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        error = storage_error(exc)
        if self._on_storage_error is not None:
            self._on_storage_error(error)
        return error

    async def _call(
        self, conn: aiosqlite.Connection, op: CallOp[Any], now: EpochMs, *, savepoint: bool
    ) -> None:
        if savepoint:
            await conn.execute("SAVEPOINT memq_call")
        try:
            op.result = await op.fn(Transaction(conn, now))
        except Exception as exc:
            if savepoint and not conn.in_transaction:
                # SQLite rolled the whole transaction back itself (SQLITE_FULL, an I/O
                # error): the batch is lost, not only this call, and says why.
                raise
            if savepoint:
                await conn.execute("ROLLBACK TO memq_call")
                await conn.execute("RELEASE memq_call")
            op.error = exc if not isinstance(exc, sqlite3.Error) else self._storage_error(exc)
            return
        if savepoint:
            await conn.execute("RELEASE memq_call")


@functools.lru_cache(maxsize=512)
def insert_statement(template: str, rows: int) -> str:
    """The ``insert_messages`` template with room for ``rows`` messages (six parameters each)."""
    return template.format(rows=", ".join(["(?, ?, ?, ?, ?, ?)"] * rows))


def storage_error(exc: sqlite3.Error) -> StorageError:
    """The ``StorageError`` for a SQLite error: a ``DiskFullError`` when it ran out of space."""
    kind = DiskFullError if is_out_of_space(exc) else StorageError
    error = kind(f"SQLite: {exc}")
    error.__cause__ = exc
    return error


def is_out_of_space(exc: BaseException) -> bool:
    """Whether ``exc`` says the disk is full: SQLite's SQLITE_FULL ("database or disk is
    full"), or an ``OSError`` ENOSPC (or EDQUOT, a quota: the same to memq)."""
    if isinstance(exc, DiskFullError):
        return True
    if isinstance(exc, OSError):
        return exc.errno in OUT_OF_SPACE_ERRNOS
    if isinstance(exc, sqlite3.Error):
        code = getattr(exc, "sqlite_errorcode", None)
        if code is not None and (code & 0xFF == SQLITE_FULL or code == SQLITE_IOERR_SHMSIZE):
            return True
        return "database or disk is full" in str(exc)
    return False
