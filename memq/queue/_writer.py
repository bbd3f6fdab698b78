"""Group commit: every write of the queue goes through one writer, many operations per commit.

There is no writer task. A caller that finds the writer idle becomes the *leader*: it takes
every operation queued so far (its own included), runs them as one transaction, wakes their
callers, and hands leadership to the oldest operation still waiting, if any. Callers that arrive
while a batch runs just wait; the next leader takes them all at once. So concurrent enqueues,
claims and acks cost one commit (one fsync) per batch, and the queue needs no task group of its
own: ``await Queue.open(path)`` is usable at once, anywhere.

A batch is one trip to the write connection's thread (``memq.queue._connection``): one
function runs its whole transaction, ``BEGIN`` to ``COMMIT``, and each kind of operation in it
is one set-based statement (a JSON array read with ``json_each``, or one ``VALUES`` row per
message for inserts). Only a batch that carries a consumer's own statements (``CallOp``: an
ack with its result) comes back to the loop between them, since those are coroutines.

Claims ride other writes where they can: the claim of an idle stream's next message commits
with the enqueue that wakes it (``memq.queue._wakeup``), and a stream's next claim with the
ack of its previous message (``memq.queue._stream``). A look that finds nothing due writes
nothing.

One connection writes, at two levels of ``synchronous``: a batch that accepts new messages
commits at the configured level (their acknowledgement promises durability), any other at
``NORMAL``. Losing a claim or a settlement to an OS crash replays the message, never duplicates
it, because a result and its ack commit together.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import json
import sqlite3
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

SQLITE_FULL: Final = 13
# The -shm file could not grow: on a full disk, that is the disk.
SQLITE_IOERR_SHMSIZE: Final = 4874
OUT_OF_SPACE_ERRNOS: Final = frozenset({errno.ENOSPC, errno.EDQUOT})
SAVEPOINT: Final = "memq_call"


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


class GroupCommitWriter:
    """Owns the write connection; see the module docstring for how batches form.

    Args:
        conn: the write connection, opened at ``durable``.
        durable: the ``synchronous`` level of a batch that accepts new messages; any other
            batch commits at ``NORMAL``.
        verify: run in the writer's thread after each commit that accepted messages, before
            their callers hear of it (the queue checks that its files are still in place).
        claims_for: the claims to make in a batch along with its enqueues (for streams that
            wait on those sessions); they are part of the batch from then on.
        on_commit: run on the loop after each commit, with the batch.
        on_storage_error: told of every storage error a write meets.
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
        claims_for: Callable[[list[EnqueueOp]], Sequence[ClaimOp]] | None = None,
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
        self._claims_for = claims_for
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
        Returns whether it committed (a batch of claims with nothing due writes nothing)."""
        now = self._clock.now()
        groups = _Groups.of(batch)
        if groups.enqueues and self._claims_for is not None:
            claims = self._claims_for(groups.enqueues)
            groups.claims += claims
            batch += claims
        try:
            first = batch[0]
            if isinstance(first, CallOp) and not first.transactional:
                await self._call_alone(first, now)
                return True
            if groups.calls:
                await self._run_with_calls(groups, now)
                return True
            return await self._conn.run(functools.partial(self._write, groups=groups, now=now))
        except Exception as exc:
            if groups.calls:
                with contextlib.suppress(sqlite3.Error):  # a closed connection: nothing open
                    await self._conn.run(_rollback)
            error = exc if not isinstance(exc, sqlite3.Error) else self._storage_error(exc)
            for op in batch:
                if isinstance(op, ClaimOp):
                    op.row = None
                op.error = error
            return False

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
