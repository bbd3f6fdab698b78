"""Group commit: every write of the queue goes through one writer, many operations per commit.

Callers put their operations in the writer's inbox and wait. The write connection's thread
(``memq.queue._connection``) is woken when the inbox fills from empty, and from then on works
through it by itself: it takes every operation waiting (up to the batch limits) as one
transaction, commits, takes the next batch *before* it tells the loop of the last (the loop
wakes those callers while the next batch is in SQLite), and tells the loop once per batch,
not once per operation. It sleeps again when the inbox is empty. So concurrent enqueues,
claims and acks cost one commit (one fsync) and one wake-up of the loop per batch, and the
queue needs no task group of its own: ``await Queue.open(path)`` is usable at once, anywhere.

Each kind of operation in a batch is one set-based statement (a JSON array read with
``json_each``, or one ``VALUES`` row per message for inserts). A batch that carries a
consumer's own statements (``CallOp``: an ack with its result) is the exception: those are
coroutines, so the thread hands that batch to the loop, which runs it one statement per trip
to the thread and then hands the inbox back.

Claims ride other writes where they can: the claim of an idle stream's next message goes in
with the enqueue that wakes it (``memq.queue._wakeup``), and a stream's next claim with the
ack of its previous message (``memq.queue._stream``). A look that finds nothing due writes
nothing.

One connection writes, at two levels of ``synchronous``: a batch that accepts new messages
commits at the configured level (their acknowledgement promises durability), any other at
``NORMAL``. Losing a claim or a settlement to an OS crash replays the message, never duplicates
it, because a result and its ack commit together.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import functools
import json
import sqlite3
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Final, Generic, TypeVar

import anyio

from memq.exceptions import DiskFullError, QueueClosedError, StorageError
from memq.queue._clock import Clock, EpochMs, SpanMs, later
from memq.queue._connection import Parameters, ThreadConnection
from memq.storage.connection import Synchronous

T = TypeVar("T")
Row = sqlite3.Row
# What a batch left for the loop: whether it committed, and the storage error it met.
Outcome = tuple[bool, StorageError | None]

SQLITE_FULL: Final = 13
# The -shm file could not grow: on a full disk, that is the disk.
SQLITE_IOERR_SHMSIZE: Final = 4874
OUT_OF_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
SAVEPOINT: Final = "memq_call"
# Bytes an operation adds to a batch besides its payload (for the batch size cap).
OPERATION_BYTES: Final = 64


class Transaction:
    """The open write transaction that an operation's own statements ride in.

    ``Claim.ack(write)`` hands one of these to ``write`` so that a consumer's result and the
    ``processed`` mark commit together or not at all. Each statement is one trip to the
    writer's thread.
    """

    def __init__(self, conn: ThreadConnection, now: EpochMs) -> None:
        self._conn = conn
        self.now_ms = now  # the batch's clock, as stored

    async def execute(self, sql: str, parameters: Parameters = ()) -> int:
        """Run one statement; return how many rows it changed."""
        return await self._conn.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Sequence[Parameters]) -> None:
        """Run one statement once per parameter set."""
        await self._conn.run(lambda conn: conn.executemany(sql, parameters).close())

    async def fetchall(self, sql: str, parameters: Parameters = ()) -> list[Row]:
        """Run one statement and return all its rows."""
        return await self._conn.execute_fetchall(sql, parameters)


class SettleAction(Enum):
    """How a claim is settled."""

    ACK = "ack"
    FAIL = "fail"
    RELEASE = "release"  # with FailDetails, a deferral: pending again at details.available_at


class Operation:
    """One caller's request inside a batch. The writer's thread leaves its results on it;
    read them once ``done``, which is set on the loop."""

    __slots__ = ("_future", "_wakeup", "done", "error", "size", "taken")

    def __init__(self) -> None:
        self.done = False
        self.taken = False  # in a batch that is running or ran (under the writer's lock)
        self.error: BaseException | None = None
        self.size = OPERATION_BYTES  # what it adds to a batch (for the batch size cap)
        self._future: asyncio.Future[None] | None = None  # its submitter's, if it waits on it
        self._wakeup: anyio.Event | None = None

    @property
    def wakeup(self) -> anyio.Event:
        """Set once ``done``, for anyone else who waits on this operation (made when first
        asked for: most operations have only their submitter waiting)."""
        if self._wakeup is None:
            self._wakeup = anyio.Event()
            if self.done:
                self._wakeup.set()
        return self._wakeup

    def finish(self) -> None:
        """Done (on the loop): wake whoever waits."""
        self.done = True
        future = self._future
        if future is not None and not future.done():
            future.set_result(None)
        if self._wakeup is not None:
            self._wakeup.set()


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
        self.size = len(payload) + OPERATION_BYTES


class ClaimOp(Operation):
    """Claim the session's head if it is due. Otherwise ``row`` stays None and
    ``head_available_at`` says when the pending head becomes due (None: nothing pending).

    ``only_if``, when given, is asked in the writer's thread just before the claim: a claim
    that rides with the ack of the session's previous message is made only if that ack
    went through (else that message still holds the session).
    """

    __slots__ = ("head_available_at", "only_if", "row", "session")

    def __init__(self, session: str, *, only_if: Callable[[], bool] | None = None) -> None:
        super().__init__()
        self.session = session
        self.only_if = only_if
        self.row: Row | None = None
        self.head_available_at: EpochMs | None = None


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


class _Then(Enum):
    """What the writer's thread does after a batch, as the loop hears of it."""

    GOES_ON = "goes on"  # it took the next batch already
    # It went back to its other calls: the inbox was empty, or a call was waiting. The loop
    # decides whether it is woken again (operations came meanwhile) or the writer is idle.
    STOPPED = "stopped"


class GroupCommitWriter:
    """Owns the write connection; see the module docstring for how batches form.

    Args:
        conn: the write connection, opened at ``durable``; its thread is the writer's.
        durable: the ``synchronous`` level of a batch that accepts new messages; any other
            batch commits at ``NORMAL``.
        verify: run in the writer's thread after each commit that accepted messages, before
            their callers hear of it (the queue checks that its files are still in place).
        on_commit: run on the loop after each commit, with the batch, before its callers
            hear of it.
        on_storage_error: told of every storage error a write meets, on the loop, before
            the callers of that write hear of it.
    """

    def __init__(
        self,
        conn: ThreadConnection,
        queries: Mapping[str, str],
        *,
        durable: Synchronous,
        max_batch: int,
        max_batch_bytes: int,
        stored_lease: SpanMs,
        longest_wait: SpanMs,
        clock: Clock,
        on_commit: Callable[[list[Operation]], None],
        verify: Callable[[], None] | None = None,
        on_storage_error: Callable[[StorageError], None] | None = None,
    ) -> None:
        self._conn = conn
        self._q = queries
        self._durable = durable
        self._level = durable  # the connection's level now; read and set in its thread only
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._stored_lease = stored_lease
        self._longest_wait = longest_wait
        self._clock = clock
        self._on_commit = on_commit
        self._verify = verify
        # Told of every storage error a write met (a full disk: memq.worker.disk).
        self._on_storage_error = on_storage_error
        # The operations not taken yet, shared by the loop and the writer's thread under the
        # lock; and whether the thread (or the loop, for a batch with calls) is at work on
        # them, which only the loop sets and clears: cleared, the writer is idle.
        self._lock = threading.Lock()
        self._inbox: deque[Operation] = deque()
        self._active = False
        self._closed = False
        self._idle_waiters: list[asyncio.Future[None]] = []  # close() calls, until idle
        self._running_calls: asyncio.Task[None] | None = None  # a batch with calls
        self.batches = 0  # commits so far, for benchmarks and tests

    # -- submitting (on the loop) -----------------------------------------------------------

    async def submit(self, op: Operation, riders: Sequence[Operation] = ()) -> None:
        """Run ``op`` in the next batch and return once that batch committed; ``riders``
        (claims made for others: waiting streams) go in right behind it.

        Raises the operation's error, if it had one. A caller cancelled while waiting either
        withdraws its operation (not taken yet) or, if its batch already runs, lets it stand;
        a claim taken for a cancelled caller is released.
        """
        await self.submit_all((op,), riders)
        if op.error is not None:
            raise op.error

    async def submit_all(self, ops: Sequence[Operation], riders: Sequence[Operation] = ()) -> None:
        """Queue several operations together, in order, and wait until all are done (errors
        are left on each operation, not raised)."""
        if not ops:
            if self._closed:
                raise QueueClosedError
            return
        future = self._put(ops, riders)
        try:
            await future
        except BaseException:
            await self._abandon(ops, riders)
            raise

    def _put(self, ops: Sequence[Operation], riders: Sequence[Operation]) -> asyncio.Future[None]:
        """Put ``ops`` and ``riders`` in the inbox; returns the future of the last op."""
        if self._closed:
            raise QueueClosedError
        loop = asyncio.get_running_loop()
        # Batches are taken in order, so once the last operation is done, all are.
        future: asyncio.Future[None] = loop.create_future()
        ops[-1]._future = future
        with self._lock:
            self._inbox.extend(ops)
            if riders:
                self._inbox.extend(riders)
            wake = not self._active
            self._active = True
        if wake:
            try:
                self._wake(loop)
            except BaseException:
                with self._lock:
                    for op in (*ops, *riders):
                        self._inbox.remove(op)
                    self._active = False
                raise
        return future

    def _wake(self, loop: asyncio.AbstractEventLoop) -> None:
        """Set the writer's thread to work on the inbox (``_active`` was just set, or stayed
        set for it)."""
        self._conn.post(functools.partial(self._drain, loop=loop))

    async def _abandon(self, ops: Sequence[Operation], riders: Sequence[Operation]) -> None:
        """Clean up after a caller cancelled while its operations were queued or running."""
        with self._lock:
            withdrawn = [op for op in (*ops, *riders) if not op.taken]
            for op in withdrawn:
                self._inbox.remove(op)
        for op in withdrawn:
            op.finish()  # a claim made for someone else was not made: they may look again
        with anyio.CancelScope(shield=True):
            for op in ops:
                if not op.done:
                    await op.wakeup.wait()
            claimed = [op for op in ops if isinstance(op, ClaimOp) and op.row is not None]
            if claimed and not self._closed:
                releases = [
                    SettleOp(SettleAction.RELEASE, int(op.row["id"]), int(op.row["attempts"]))
                    for op in claimed
                    if op.row is not None
                ]
                await self.submit_all(releases)

    async def close(self) -> None:
        """Refuse new operations and wait until those already queued have run."""
        self._closed = True
        if self._active:
            idle: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._idle_waiters.append(idle)
            await idle

    # -- hearing from the thread (on the loop) ------------------------------------------------

    def _finished(self, batch: list[Operation], outcome: Outcome, then: _Then) -> None:
        """A batch ended: report its storage error, wake its callers, run ``on_commit``;
        if the thread stopped, wake it again or note the writer idle."""
        committed, error = outcome
        if error is not None and self._on_storage_error is not None:
            self._on_storage_error(error)  # must not raise (the queue's catches)
        if committed:
            self.batches += 1
        for op in batch:
            op.finish()  # callers first: the loop runs them before the streams woken next
        try:
            if committed:
                self._on_commit(batch)
        finally:
            if then is _Then.STOPPED:
                self._stopped()

    def _stopped(self) -> None:
        """The thread (or a batch with calls) stopped: wake it again for operations that
        came meanwhile, or note the writer idle."""
        with self._lock:
            more = bool(self._inbox)
            self._active = more
        if more:
            self._wake(asyncio.get_running_loop())
            return
        waiters, self._idle_waiters = self._idle_waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _run_calls(self, batch: list[Operation]) -> None:
        """Run a batch with calls (coroutines) in a task of the writer's own: its caller may
        be cancelled, the batch must run to its end. The thread serves its statements."""
        self._running_calls = asyncio.get_running_loop().create_task(self._calls_batch(batch))

    async def _calls_batch(self, batch: list[Operation]) -> None:
        outcome = await self._run_on_loop(batch)
        self._running_calls = None
        self._finished(batch, outcome, _Then.STOPPED)

    # -- the writer's thread ----------------------------------------------------------------

    def _drain(self, conn: sqlite3.Connection, *, loop: asyncio.AbstractEventLoop) -> None:
        """Run the inbox's batches, telling the loop of each, until it is empty or another
        call waits for the thread."""
        batch, calls = self._take()
        if not batch:  # every operation was withdrawn meanwhile
            _tell(loop, self._finished, batch, (False, None), _Then.STOPPED)
            return
        while True:
            if calls:
                _tell(loop, self._run_calls, batch)
                return
            outcome = self._run(conn, batch)
            # The next batch is taken before the loop hears of this one, so that it is in
            # SQLite (without Python's lock) while the loop wakes this one's callers; unless
            # a read or a call's statement waits for this thread: that goes first.
            following, calls = ([], False) if self._conn.others_waiting() else self._take()
            _tell(
                loop, self._finished, batch, outcome, _Then.GOES_ON if following else _Then.STOPPED
            )
            if not following:
                return
            batch = following

    def _take(self) -> tuple[list[Operation], bool]:
        """The next batch from the inbox, and whether it has calls."""
        with self._lock:
            inbox = self._inbox
            if not inbox:
                return [], False
            first = inbox.popleft()
            first.taken = True
            batch = [first]
            if isinstance(first, CallOp) and not first.transactional:
                return batch, True  # runs alone
            calls = isinstance(first, CallOp)
            size, most, room = first.size, self._max_batch, self._max_batch_bytes
            while inbox and len(batch) < most:
                op = inbox[0]
                if (isinstance(op, CallOp) and not op.transactional) or size + op.size > room:
                    break
                inbox.popleft()
                op.taken = True
                batch.append(op)
                size += op.size
                calls = calls or isinstance(op, CallOp)
        return batch, calls

    def _run(self, conn: sqlite3.Connection, batch: list[Operation]) -> Outcome:
        """A batch without calls, whole; results and errors are left on each operation."""
        groups = _Groups.of(batch)
        try:
            return self._write(conn, groups=groups, now=self._clock.now()), None
        except BaseException as exc:  # handed to the batch's callers, whatever it is
            return False, _failed(batch, exc)

    # -- a batch with calls (on the loop, back and forth to the thread) ----------------------

    async def _run_on_loop(self, batch: list[Operation]) -> Outcome:
        """A batch with calls; results and errors are left on each operation."""
        now = self._clock.now()
        groups = _Groups.of(batch)
        first = batch[0]
        try:
            if isinstance(first, CallOp) and not first.transactional:
                await self._call_alone(first, now)
            else:
                await self._run_with_calls(groups, now)
        except BaseException as exc:  # handed to the batch's callers, whatever it is
            with anyio.CancelScope(shield=True), contextlib.suppress(sqlite3.Error):
                await self._conn.run(_rollback)  # a closed connection: nothing open
            return False, _failed(batch, exc)
        return True, None

    # The functions below whose first argument is ``conn`` run in the writer's thread.

    def _write(self, conn: sqlite3.Connection, *, groups: _Groups, now: EpochMs) -> bool:
        """A batch without calls, whole. Returns whether it committed."""
        self._set_level(conn, groups)
        if not groups.writes:
            # Claims alone: look at the heads first, and write only when one is due, so
            # that a stream about to wait costs no commit.
            return self._claim(conn, groups.claims, now)
        # One plain statement commits on its own; anything more shares one transaction.
        explicit = groups.writes + bool(groups.claims) > 1
        try:
            if explicit:
                conn.execute("BEGIN IMMEDIATE")
            self._insert(conn, groups.enqueues)
            self._settle(conn, groups.settles, now)
            self._claim(conn, groups.claims, now)
            if explicit:
                conn.execute("COMMIT")
        except BaseException:
            _rollback(conn)
            raise
        self._committed(groups)
        return True

    def _begin(self, conn: sqlite3.Connection, *, groups: _Groups) -> None:
        """The start of a batch with calls: its inserts, then the first call's savepoint."""
        self._set_level(conn, groups)
        conn.execute("BEGIN IMMEDIATE")
        self._insert(conn, groups.enqueues)
        conn.execute(f"SAVEPOINT {SAVEPOINT}")

    def _end_call(
        self, conn: sqlite3.Connection, *, failed: bool, last: bool, groups: _Groups, now: EpochMs
    ) -> bool:
        """After a call: keep or undo what it did, then start the next call, or finish the
        batch (settlements, claims, commit). Returns False when SQLite itself rolled the
        whole transaction back under a failed call (SQLITE_FULL, an I/O error)."""
        if failed:
            if not conn.in_transaction:
                return False
            conn.execute(f"ROLLBACK TO {SAVEPOINT}")
        conn.execute(f"RELEASE {SAVEPOINT}")
        if not last:
            conn.execute(f"SAVEPOINT {SAVEPOINT}")
            return True
        self._settle(conn, groups.settles, now)
        self._claim(conn, groups.claims, now)
        conn.execute("COMMIT")
        self._committed(groups)
        return True

    def _set_level(self, conn: sqlite3.Connection, groups: _Groups) -> None:
        level = self._durable if groups.enqueues else Synchronous.NORMAL
        if level is not self._level:
            conn.execute(f"PRAGMA synchronous = {level.value}")
            self._level = level

    def _committed(self, groups: _Groups) -> None:
        if groups.enqueues and self._verify is not None:
            self._verify()

    def _insert(self, conn: sqlite3.Connection, ops: list[EnqueueOp]) -> None:
        if not ops:
            return
        params: list[object] = []
        for op in ops:
            params += (op.session, op.kind, op.payload, op.dedupe_key, op.created_at, op.created_at)
        sql = insert_statement(self._q["insert_messages"], len(ops))
        cursor = conn.execute(sql, params)
        count, last = cursor.rowcount, cursor.lastrowid or 0
        if count == len(ops):
            # Every row went in, with ids one apart, the last one ``last``.
            first = last - count + 1
            for offset, op in enumerate(ops):
                op.message_id, op.created = first + offset, True
            return
        inserted = conn.execute(
            self._q["inserted_messages"], {"last": last, "count": count}
        ).fetchall()
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
        found = conn.execute(self._q["select_by_dedupe_keys"], {"keys": keys}).fetchall()
        existing = {(row["session_id"], row["dedupe_key"]): int(row["id"]) for row in found}
        for op in duplicates:
            op.message_id, op.created = existing[(op.session, op.dedupe_key)], False

    def _claim(self, conn: sqlite3.Connection, ops: list[ClaimOp], now: EpochMs) -> bool:
        """Claim the heads that are due; tell the others when theirs will be. Returns
        whether it wrote (some head was due)."""
        ops = [op for op in ops if op.only_if is None or op.only_if()]
        if not ops:
            return False
        params = {
            "sessions": json.dumps([op.session for op in ops], ensure_ascii=False),
            "now": now,
            "latest_due": later(now, self._longest_wait),
        }
        heads = {row["session_id"]: row for row in conn.execute(self._q["session_heads"], params)}
        due = [session for session, head in heads.items() if head["due"]]
        for op in ops:
            head = heads.get(op.session)
            op.head_available_at = None if head is None else EpochMs(int(head["available_at"]))
        if not due:
            return False
        params["sessions"] = json.dumps(due, ensure_ascii=False)
        params["lease_until"] = later(now, self._stored_lease)
        rows = conn.execute(self._q["claim_heads"], params).fetchall()
        by_session = {row["session_id"]: row for row in rows}
        for op in ops:
            op.row = by_session.get(op.session)
        return True

    def _settle(
        self,
        conn: sqlite3.Connection,
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
            rows = conn.execute(
                self._q[action.value], {"claims": json.dumps(claims), "now": now}
            ).fetchall()
            matched = {int(row["id"]) for row in rows}
            for op in ops:
                op.matched = op.message_id in matched

    # -- batches with calls (back on the loop between statements) ---------------------------

    async def _run_with_calls(self, groups: _Groups, now: EpochMs) -> None:
        """Inserts, then each call in a savepoint of its own, then settlements and claims,
        in one transaction: a trip to the thread to begin, one per statement of a call, and
        one after each call."""
        conn = self._conn
        await conn.run(functools.partial(self._begin, groups=groups))
        calls = groups.calls
        for index, call in enumerate(calls):
            failure: Exception | None = None
            try:
                call.result = await call.fn(Transaction(conn, now))
            except Exception as exc:
                failure = exc
            end = functools.partial(
                self._end_call,
                failed=failure is not None,
                last=index == len(calls) - 1,
                groups=groups,
                now=now,
            )
            if not await conn.run(end):
                assert failure is not None
                raise failure  # the batch is lost, not only this call, and says why
            if failure is not None:
                call.error = self._error_of(failure)

    async def _call_alone(self, op: CallOp[Any], now: EpochMs) -> None:
        """A call outside any transaction (a WAL checkpoint); its error stays its own."""
        try:
            op.result = await op.fn(Transaction(self._conn, now))
        except Exception as exc:
            op.error = self._error_of(exc)

    def _error_of(self, exc: Exception) -> Exception:
        return exc if not isinstance(exc, sqlite3.Error) else self._storage_error(exc)

    def _storage_error(self, exc: sqlite3.Error) -> StorageError:
        error = storage_error(exc)
        if self._on_storage_error is not None:
            self._on_storage_error(error)
        return error


@dataclass(slots=True)
class _Groups:
    """A batch's operations by kind, in the order they run: inserts, calls, settlements
    (one statement per action), claims."""

    enqueues: list[EnqueueOp] = field(default_factory=list)
    calls: list[CallOp[Any]] = field(default_factory=list)
    settles: dict[SettleAction, list[SettleOp]] = field(
        default_factory=lambda: {action: [] for action in SettleAction}
    )
    claims: list[ClaimOp] = field(default_factory=list)

    @classmethod
    def of(cls, batch: list[Operation]) -> _Groups:
        groups = cls()
        for op in batch:
            if isinstance(op, EnqueueOp):
                groups.enqueues.append(op)
            elif isinstance(op, ClaimOp):
                groups.claims.append(op)
            elif isinstance(op, SettleOp):
                groups.settles[op.action].append(op)
            elif isinstance(op, CallOp):
                groups.calls.append(op)
        return groups

    @property
    def writes(self) -> int:
        """Write statements other than the claim: inserts, and one per kind of settlement."""
        return bool(self.enqueues) + sum(1 for ops in self.settles.values() if ops)


def _failed(batch: list[Operation], exc: BaseException) -> StorageError | None:
    """Leave ``exc`` (a ``StorageError`` when SQLite raised it) on every operation of a batch
    that did not commit; returns the storage error, for the writer's listener."""
    stored = storage_error(exc) if isinstance(exc, sqlite3.Error) else None
    error = exc if stored is None else stored
    for op in batch:
        if isinstance(op, ClaimOp):
            op.row = None
        op.error = error
    return stored


def _tell(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: object) -> None:
    """From the writer's thread: have the loop run ``fn(*args)``."""
    with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
        loop.call_soon_threadsafe(fn, *args)


def _rollback(conn: sqlite3.Connection) -> None:
    if conn.in_transaction:
        # A failed COMMIT may already have rolled back on its own.
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")


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
