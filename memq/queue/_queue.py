"""The durable per-session queue: open, enqueue, stream, settle, inspect, maintain, close."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import Any, Final, NamedTuple, TypeVar, cast

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import (
    InvalidMessageError,
    QueueClosedError,
    StorageError,
)
from memq.kinds import MessageKind
from memq.limits import MAX_KEY_CHARS
from memq.queue import _files
from memq.queue._claim import Claim, ClaimState, Effect
from memq.queue._clock import (
    SYSTEM_CLOCK,
    Clock,
    EpochMs,
    StoredSpans,
    earlier,
    later,
    seconds_until,
    span,
)
from memq.queue._connection import Parameters, ThreadConnection
from memq.queue._files import DatabaseFiles, FileProblem, Replacement
from memq.queue._lock import InstanceLock, lock_path_for
from memq.queue._models import (
    Enqueued,
    FailedMessage,
    MaintenanceReport,
    Message,
    MessageStatus,
    QueueStats,
    StatusCounts,
    from_epoch_ms,
)
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._wakeup import ForeignChangeWatcher, Handoff, Wakeups
from memq.queue._writer import (
    CallOp,
    ClaimOp,
    EnqueueOp,
    FailDetails,
    GroupCommitWriter,
    Operation,
    SettleAction,
    SettleOp,
    Transaction,
    storage_error,
)
from memq.storage import connection, schema
from memq.storage.connection import Synchronous
from memq.storage.sqlfile import load_queries

log = structlog.get_logger("memq.queue")
T = TypeVar("T")

QUERIES: Final = load_queries("queue")
KINDS: Final = frozenset(kind.value for kind in MessageKind)
PRUNE_CHUNK: Final = 2000
INTERRUPTED: Final = "interrupted: the process died while this message was processing"
# One encoder for every payload: json.dumps with options builds a new one per call.
_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Handback(NamedTuple):
    """A claim whose settlement could not be written, to be released once the queue can
    write: its session, and the attempt that the release must match."""

    session_id: str
    attempts: int


class Queue:
    """A durable FIFO queue per session on one SQLite file.

    Open it with ``await Queue.open(path)``; it needs no task group. Only one ``Queue`` may
    have a file open at a time, across processes.
    """

    def __init__(
        self,
        path: Path,
        *,
        settings: QueueSettings,
        lock: InstanceLock,
        writer: ThreadConnection,
        reader: ThreadConnection,
        files: DatabaseFiles,
        foreign_version: int,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.path = path
        self.settings = settings
        self.clock = clock
        self._spans = StoredSpans.from_settings(settings)
        self._lock = lock
        self._writer_conn = writer
        self._reader = reader
        self._connections = (writer, reader)
        self._closed = False
        self._closing = anyio.Event()  # wakes the maintenance loops at close
        # The files at the database's paths (memq.queue._files): what this queue found
        # changed, whether it stopped writing because of it, and what it did about it.
        self._files = files
        self._files_changed: tuple[FileProblem, ...] = ()
        self._writes_stopped = False
        self._rescue_lock = anyio.Lock()
        self._replacement: Replacement | None = None
        self._replaced = anyio.Event()
        self._wakeups = Wakeups()
        self._changes = ForeignChangeWatcher(
            self._wakeups,
            settings.change_check_interval,
            self._read_foreign_version,
            self._sessions_with_pending,
            version=foreign_version,
        )
        self._writer = GroupCommitWriter(
            writer,
            QUERIES,
            durable=settings.synchronous,
            max_batch=settings.max_batch,
            max_batch_bytes=settings.max_batch_bytes,
            stored_lease=self._spans.stored_lease,
            longest_wait=self._spans.longest_wait,
            clock=clock,
            on_commit=self._after_commit,
            verify=self._verify_files,
            on_storage_error=self._storage_failed,
        )
        self._active_claims: set[Claim] = set()
        self._session_owners: dict[str, SessionStream] = {}
        # Claims whose settlement could not be written (a full disk), by message id: each is
        # released with the next claim of its session, or by maintenance, whichever is first.
        self._handbacks: dict[int, Handback] = {}
        self._storage_listeners: list[Callable[[StorageError], None]] = []

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        settings: QueueSettings | None = None,
        *,
        max_attempts: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> Queue:
        """Take the instance lock, migrate the schema, recover orphaned claims, and return
        the open queue. ``clock`` is where it reads the time (tests pass one they move).

        Raises ``QueueLockedError`` at once if the file is already open, ``SchemaError`` if a
        newer memq wrote it, ``StorageError`` if it is not a usable SQLite database.
        """
        settings = settings or QueueSettings()
        if max_attempts is not None:
            settings = replace(settings, max_attempts=max_attempts)
        db_path, lock = await anyio.to_thread.run_sync(_lock_database, Path(path))
        return await cls._open_locked(db_path, lock, settings, clock)

    @classmethod
    async def _open_locked(
        cls, db_path: Path, lock: InstanceLock, settings: QueueSettings, clock: Clock
    ) -> Queue:
        """``open`` once the instance lock is held; releases it when opening fails."""
        opened: list[ThreadConnection] = []
        files: DatabaseFiles | None = None
        try:
            await anyio.to_thread.run_sync(_install_leftover_copy, db_path)
            await anyio.to_thread.run_sync(_prepare_database, db_path, settings, clock)
            writer = await _connect(db_path, settings.synchronous, settings, opened, "writer")
            reader = await _connect(db_path, Synchronous.NORMAL, settings, opened, "reader")
            # A first read makes SQLite open (create) the WAL and its index, so the files
            # recorded next are the ones the connections use.
            await reader.execute_fetchall("SELECT count(*) FROM sqlite_master")
            # Where the watch for other processes' rows starts: the writer's data_version
            # moves only when another connection commits, never for the queue's own writes.
            foreign_version = await _data_version(writer)
            files = await anyio.to_thread.run_sync(DatabaseFiles.open, db_path)
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                for conn in opened:
                    await conn.close()
            lock.release()
            if isinstance(exc, sqlite3.Error | OSError):
                raise StorageError(f"cannot open queue database {db_path}: {exc}") from exc
            raise
        log.info("queue.opened", path=str(db_path), synchronous=settings.synchronous.value)
        return cls(
            db_path,
            settings=settings,
            lock=lock,
            writer=writer,
            reader=reader,
            files=files,
            foreign_version=foreign_version,
            clock=clock,
        )

    async def reopen(self) -> Queue:
        """Close this queue and open its database again, with the same settings and clock,
        holding the instance lock throughout (no other process can take the file between).
        What the owner does once ``replaced`` is set."""
        if not self._closed:
            await self._shut_down(hand_back_claims=True, release_lock=False)
            log.info("queue.closed", path=str(self.path))
        if not self._lock.held:
            reopened = await Queue.open(self.path, self.settings, clock=self.clock)
        else:
            reopened = await Queue._open_locked(self.path, self._lock, self.settings, self.clock)
        # Whoever hears of storage errors (a full disk: memq.worker.disk) hears the new one's.
        reopened._storage_listeners.extend(self._storage_listeners)
        return reopened

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    async def close(self) -> None:
        """Hand back unsettled claims, wake idle streams so they end, close the file and
        release the lock. Safe to call twice."""
        if self._closed:
            return
        await self._shut_down(hand_back_claims=True)
        log.info("queue.closed", path=str(self.path))

    async def _shut_down(self, *, hand_back_claims: bool, release_lock: bool = True) -> None:
        with anyio.CancelScope(shield=True):
            # Claims being made for waiting streams join the active ones before these go back.
            for handoff in self._wakeups.close():
                await handoff.wakeup.wait()
            active = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
            if hand_back_claims and not self._writes_stopped and (active or self._handbacks):
                try:
                    await _release_all(self, active)
                except StorageError as exc:
                    # Left 'processing': the next open returns them to pending.
                    log.warning("queue.release_failed", claims=len(active), error=str(exc))
            if hand_back_claims:
                # The last look before the connections, the only way to what they hold, close:
                # a file deleted since the last check is saved now, not lost with them.
                await self._last_file_check()
            self._closed = True
            self._closing.set()
            self._wakeups.wake_all()
            self._changes.close()
            await self._writer.close()
            for conn in self._connections:
                await conn.close()
            # Only now: closing a descriptor of the file earlier would drop SQLite's locks.
            self._files.close()
            if release_lock:
                self._lock.release()

    async def _last_file_check(self) -> None:
        try:
            if self._writes_stopped and self._replacement is None:
                await self._rescue(self._files_changed)  # a failed rescue: one more try
            else:
                await self.check_files()
        except (StorageError, OSError) as exc:
            log.exception("database.lost_on_close", path=str(self.path), error=str(exc))

    async def __aenter__(self) -> Queue:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise QueueClosedError(f"queue {self.path} is closed")

    # -- producing -------------------------------------------------------------------------

    async def enqueue(
        self,
        session_id: str,
        kind: MessageKind | str,
        payload: Any,
        dedupe_key: str | None = None,
        *,
        payload_json: str | None = None,
    ) -> Enqueued:
        """Store one message; durable when this returns.

        ``payload`` is any JSON value. A ``dedupe_key`` already used in this session returns
        the first message's id with ``created=False`` and stores nothing. ``payload_json`` is
        the payload's JSON text when the caller holds it already, parsed and checked strictly
        (``memq.events.parse_event_body``): it is stored as given, not encoded again.
        Raises ``InvalidMessageError`` for input that cannot be stored faithfully.
        """
        self._check_open()
        op = EnqueueOp(
            _check_id("session_id", session_id),
            _check_kind(kind),
            encode_payload(payload) if payload_json is None else payload_json,
            None if dedupe_key is None else _check_id("dedupe_key", dedupe_key),
            self.clock.now(),
        )
        await self._writer.submit(op, self._handoffs(op.session))
        if self._files_changed:
            # Committed to files that are no longer at the database's path: acknowledged only
            # once what this queue holds is saved there (raises StorageError if it cannot be).
            await self._rescue(self._files_changed)
        return Enqueued(op.message_id, op.created)

    # -- consuming -------------------------------------------------------------------------

    def stream(self, session_id: str, *, linger: float = 5.0) -> SessionStream:
        """Claims of ``session_id``'s messages in FIFO order, one at a time.

        When nothing is pending the stream waits up to ``linger`` seconds for more (woken at
        once by an enqueue in this process; rows from other processes are noticed within
        ``change_check_interval``), then ends. It also ends right after yielding a
        ``summarize`` message. One stream per session may hold a claim at a time.
        """
        self._check_open()
        return SessionStream(self, _check_id("session_id", session_id), linger)

    async def _claim(self, session_id: str) -> tuple[Claim | None, float | None]:
        """Claim the session's head if it is due. Returns the claim, or None and when (on
        ``clock.monotonic()``) the pending head becomes due, None when nothing is pending.
        A head that is not due is only looked at: nothing is written."""
        op = ClaimOp(session_id)
        # A claim whose settlement could not be written goes back first, in the same batch
        # (settlements run before claims): the session's head is claimed again, in order.
        handbacks = self._handback_ops({session_id})
        await self._writer.submit_all([*handbacks, op])
        self._handed_back(handbacks)
        failed = next((o.error for o in handbacks if o.error is not None), None)
        if failed is not None and op.row is not None:
            # The writer split the two into batches and only the claim's committed: that
            # message must not pass the head, so it goes back with it, later.
            self._handbacks[int(op.row["id"])] = Handback(session_id, int(op.row["attempts"]))
            raise failed
        if op.error is not None:
            raise op.error
        if op.row is None:
            return None, self._due_at(op.head_available_at)
        return self._claimed(op.row), None

    def _claimed(self, row: sqlite3.Row) -> Claim:
        """The claim of a row that a committed batch claimed."""
        message = Message(
            id=int(row["id"]),
            session_id=str(row["session_id"]),
            kind=MessageKind.parse(row["kind"]),
            payload=json.loads(row["payload"]),
            dedupe_key=row["dedupe_key"],
            attempts=int(row["attempts"]),
            created_at=from_epoch_ms(int(row["created_at"])),
        )
        claim = Claim(
            self,
            message,
            anyio.current_time() + self.settings.lease,
            claimed_at=self.clock.monotonic(),
        )
        self._active_claims.add(claim)
        return claim

    async def _head_due_at(self, session_id: str) -> float | None:
        """When (on ``clock.monotonic()``) the session's head becomes claimable."""
        rows = list(
            await self._reader.execute_fetchall(
                QUERIES["head_available_at"], {"session_id": session_id}
            )
        )
        return self._due_at(EpochMs(int(rows[0][0])) if rows else None)

    def _due_at(self, available_at: EpochMs | None) -> float | None:
        """``available_at`` (a head's, as stored) on ``clock.monotonic()``."""
        if available_at is None:
            return None
        wait = seconds_until(available_at, self.clock.now())
        if wait > self.settings.max_wait:
            wait = 0.0  # stored before the wall clock was set back: due now (see claim_heads)
        return self.clock.monotonic() + max(0.0, wait)

    async def _ack(self, claim: Claim, write: Effect | None) -> bool:
        self._check_open()
        message = claim.message
        ack: SettleOp | CallOp[bool]
        if write is None:
            ack = SettleOp(SettleAction.ACK, message.id, message.attempts)
        else:

            async def ack_and_write(tx: Transaction) -> bool:
                claims = json.dumps([[message.id, message.attempts]])
                if not await tx.fetchall(QUERIES["ack"], {"claims": claims, "now": tx.now_ms}):
                    return False
                await write(tx)
                return True

            ack = CallOp(ack_and_write)
        acked = functools.partial(_acked, ack)
        follow = self._follow_up(claim, acked)
        await self._writer.submit_all([ack] if follow is None else [ack, follow])
        if ack.error is not None:
            raise ack.error
        if follow is not None and follow.row is not None:
            # The stream's next message, claimed in the ack's commit.
            following = self._claimed(follow.row)
            stream = self._session_owners.get(message.session_id)
            if stream is not None and stream._claims_ahead(claim):
                stream._set_next(following)
            else:  # the stream was closed meanwhile
                await following.release()
        return acked()

    def _follow_up(self, claim: Claim, acked: Callable[[], bool]) -> ClaimOp | None:
        """A claim of the next message to make with ``claim``'s ack, when the stream that
        holds ``claim`` will ask for it (``SessionStream._claims_ahead``)."""
        session_id = claim.message.session_id
        stream = self._session_owners.get(session_id)
        if stream is None or not stream._claims_ahead(claim):
            return None
        if any(h.session_id == session_id for h in self._handbacks.values()):
            return None  # those go back first, with the stream's own claim
        return ClaimOp(session_id, only_if=acked)

    async def _fail(self, claim: Claim, error: str) -> MessageStatus | None:
        self._check_open()
        message = claim.message
        exhausted = message.attempts >= self.settings.max_attempts
        status = MessageStatus.FAILED if exhausted else MessageStatus.PENDING
        now = self.clock.now()
        available_at = now if exhausted else later(now, self._spans.retry_wait(message.attempts))
        details = FailDetails(status.value, available_at, error)
        op = SettleOp(SettleAction.FAIL, message.id, message.attempts, details)
        await self._writer.submit(op)
        if not op.matched:
            return None
        event = "message.failed" if exhausted else "message.retry_scheduled"
        (log.warning if exhausted else log.info)(
            event,
            session_id=message.session_id,
            message_id=message.id,
            attempt=message.attempts,
            max_attempts=self.settings.max_attempts,
            retry_in=None if exhausted else seconds_until(available_at, now),
            error=error,
        )
        return status

    async def _defer(self, claim: Claim, delay: float, reason: str) -> bool:
        self._check_open()
        message = claim.message
        available_at = later(self.clock.now(), span(min(delay, self.settings.max_defer)))
        details = FailDetails(MessageStatus.PENDING.value, available_at, reason)
        op = SettleOp(SettleAction.RELEASE, message.id, message.attempts, details)
        await self._writer.submit(op)
        if op.matched:
            log.info(
                "message.deferred",
                session_id=message.session_id,
                message_id=message.id,
                delay=delay,
                reason=reason,
            )
        return op.matched

    async def _release(self, claim: Claim) -> bool:
        if self._closed:
            return False
        op = SettleOp(SettleAction.RELEASE, claim.message.id, claim.message.attempts)
        await self._writer.submit(op)
        return op.matched

    def _lose_claims(self, message_ids: Iterable[int]) -> None:
        """Claims whose rows were deleted or taken back: they can no longer be settled."""
        gone = set(message_ids)
        for claim in [c for c in self._active_claims if c.message.id in gone]:
            claim.state = ClaimState.LOST
            self._claim_settled(claim)

    def _claim_settled(self, claim: Claim) -> None:
        self._active_claims.discard(claim)
        session_id = claim.message.session_id
        owner = self._session_owners.get(session_id)
        if owner is not None and owner._holds(claim) and not owner._holds_other_than(claim):
            del self._session_owners[session_id]

    def _unsettled(self, claim: Claim) -> None:
        """``claim``'s settlement could not be written (a storage error): keep it to hand
        back later, and free its session at once rather than when the lease runs out."""
        message = claim.message
        self._handbacks[message.id] = Handback(message.session_id, message.attempts)
        claim.state = ClaimState.UNSETTLED
        self._claim_settled(claim)
        log.warning(
            "claim.unsettled",
            session_id=message.session_id,
            message_id=message.id,
            reason="its settlement could not be written; handed back when the queue can write",
        )

    async def _stream_closed(self, stream: SessionStream) -> None:
        """A stream ended. Nothing to do here: SQLite's one consumer per session is
        ``_session_owners`` (the PostgreSQL queue lets go of the session's lease)."""

    def _handback_ops(self, sessions: set[str] | None = None) -> list[SettleOp]:
        """Releases for the claims waiting to be handed back (of ``sessions``, or all)."""
        return [
            SettleOp(SettleAction.RELEASE, message_id, handback.attempts)
            for message_id, handback in self._handbacks.items()
            if sessions is None or handback.session_id in sessions
        ]

    def _handed_back(self, ops: list[SettleOp]) -> None:
        """Forget the handbacks whose release committed (matched or not: a row the watchdog
        took back or a revert deleted needs nothing more)."""
        for op in ops:
            if op.error is None:
                self._handbacks.pop(op.message_id, None)

    async def hand_back_unsettled(self) -> int:
        """Write the releases of claims whose settlement failed on a storage error; returns
        how many went back. Run by ``maintain``; a new claim of their session does it too.
        Raises ``StorageError`` when they still cannot be written."""
        self._check_open()
        ops = self._handback_ops()
        if not ops:
            return 0
        sessions = {self._handbacks[op.message_id].session_id for op in ops}
        await self._writer.submit_all(ops)
        self._handed_back(ops)
        error = next((op.error for op in ops if op.error is not None), None)
        if error is not None:
            raise error
        self._wakeups.wake(sessions)
        released = [op.message_id for op in ops if op.matched]
        if released:
            log.info("claim.handed_back", message_ids=released)
        return len(released)

    def on_storage_error(self, listener: Callable[[StorageError], None]) -> None:
        """Call ``listener`` with every storage error a write meets (``DiskFullError`` when
        out of space), synchronously, before the writer's caller sees it. It must not raise."""
        self._storage_listeners.append(listener)

    def _storage_failed(self, error: StorageError) -> None:
        for listener in self._storage_listeners:
            try:
                listener(error)
            except Exception:
                log.exception("storage_listener.failed")

    def _handoffs(self, session_id: str) -> list[Handoff]:
        """A claim for the stream that waits on ``session_id``, if any, to make right after
        an enqueue to it (in its batch). A session with a claim waiting to be handed back is
        left to its stream: that claim goes back first."""
        if self._handbacks and any(
            handback.session_id == session_id for handback in self._handbacks.values()
        ):
            return []
        return self._wakeups.handoffs((session_id,))

    def _after_commit(self, batch: list[Operation]) -> None:
        for op in batch:
            if isinstance(op, Handoff) and op.row is not None:
                op.waiter.claim = self._claimed(op.row)
        self._wakeups.wake(op.session for op in batch if isinstance(op, EnqueueOp) and op.created)

    def _verify_files(self) -> None:
        """In the writer's thread, after a commit that accepted messages and before they are
        acknowledged: were they written where the next start will look? Three stat calls
        per commit, next to its fsync."""
        if self._files_changed:
            return
        try:
            self._files_changed = self._files.check()
        except OSError as exc:
            log.warning("database.check_failed", path=str(self.path), error=str(exc))

    # -- the files under the queue ---------------------------------------------------------

    @property
    def replaced(self) -> Replacement | None:
        """Set once the database's files were found deleted or swapped and what this queue
        held was saved at the path (see ``memq.queue._files``). The queue then takes no more
        writes: ``reopen`` it (after closing every other connection to the old file)."""
        return self._replacement

    async def wait_replaced(self) -> Replacement:
        """Wait until ``replaced`` is set, and return it."""
        await self._replaced.wait()
        assert self._replacement is not None
        return self._replacement

    async def check_files(self) -> Replacement | None:
        """Compare the files at the database's paths with the ones open here; when they
        differ, save what this queue holds at the path and stop writing. Returns the
        replacement (also one made earlier), None while the files are the queue's own.

        Raises ``StorageError`` when the copy cannot be saved (writes stay stopped; the
        next check tries again) and ``OSError`` when the paths cannot be examined.
        """
        if self._replacement is not None or self._closed:
            return self._replacement
        problems = self._files_changed or self._files.check()
        if not problems:
            return None
        return await self._rescue(problems)

    async def _rescue(self, problems: tuple[FileProblem, ...]) -> Replacement:
        """Save what this queue holds at its path, once, whoever asks first."""
        with anyio.CancelScope(shield=True):
            async with self._rescue_lock:
                replacement = self._replacement or await self._save_at_path(problems)
        return replacement

    async def _save_at_path(self, problems: tuple[FileProblem, ...]) -> Replacement:
        found = [problem.value for problem in problems]
        if not self._writes_stopped:
            self._files_changed = problems
            self._writes_stopped = True
            log.error(
                "database.files_changed",
                path=str(self.path),
                found=found,
                action="stopped writing; saving what the queue holds",
            )
            # Every commit already queued runs to its end first: the copy includes it.
            await self._writer.close()
        stamp = _files.new_stamp()
        partial: Path | None = None
        try:
            target, written = await anyio.to_thread.run_sync(_files.open_backup, self.path, stamp)
            partial = written
            try:
                # Through the writer's connection: it sees every commit, including those in
                # a WAL that has no name any more.
                await self._connections[0].backup(target)
            finally:
                await anyio.to_thread.run_sync(target.close)
            saved = await anyio.to_thread.run_sync(_files.seal, written, self.path, stamp)
            partial = None
            installed = await anyio.to_thread.run_sync(
                functools.partial(_files.install, self.path, saved, files=self._files, stamp=stamp)
            )
        except (sqlite3.Error, OSError) as exc:
            if partial is not None:
                partial.unlink(missing_ok=True)
            log.exception(
                "database.rescue_failed", path=str(self.path), found=found, error=str(exc)
            )
            raise StorageError(
                f"the files of {self.path} changed under memq ({'; '.join(found)}) and what "
                f"it holds could not be saved there: {exc}"
            ) from exc
        self._replacement = Replacement(problems, installed)
        log.error(
            "database.replaced",
            path=str(self.path),
            found=found,
            action="saved what the queue held through its open connection and put it at the "
            "path; reopening",
            kept_aside=[str(p) for p in installed.kept_aside],
            taken_in=installed.taken_in,
            unreadable=list(installed.unreadable),
        )
        self._replaced.set()
        return self._replacement

    async def _watch_files(self) -> None:
        """Check the files every ``file_check_interval`` seconds until the queue closes or
        they were replaced (a failed rescue is tried again at the next check)."""
        while not self._closed and self._replacement is None:
            await self._sleep_unless_closed(self.settings.file_check_interval)
            try:
                await self.check_files()
            except StorageError:
                pass  # logged as database.rescue_failed
            except OSError as exc:
                log.warning("database.check_failed", path=str(self.path), error=str(exc))

    async def _sleep_unless_closed(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._closing.wait()

    # -- foreign writers -------------------------------------------------------------------

    async def wait_for_foreign_rows(self) -> None:
        """Return once another process has committed to the file since the last look: rows
        that the hook's fallback wrote directly, which no enqueue here announced. The queue
        looks every ``change_check_interval`` while anyone waits (one look for all of them,
        idle streams included). Raises ``QueueClosedError`` when the queue closes, and
        ``StorageError`` when the look fails."""
        self._check_open()
        await self._changes.wait()

    async def _read_foreign_version(self) -> int:
        try:
            return await _data_version(self._writer_conn)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def _sessions_with_pending(self, session_ids: list[str]) -> list[str]:
        try:
            rows = await self._reader.execute_fetchall(
                QUERIES["sessions_with_pending"], {"sessions": json.dumps(session_ids)}
            )
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc
        return [str(row["session_id"]) for row in rows]

    # -- inspecting ------------------------------------------------------------------------

    async def stats(self) -> QueueStats:
        """Counts by status, overall and per session, and the database and WAL sizes."""
        self._check_open()
        rows = await self._reader.execute_fetchall(QUERIES["count_by_session_and_status"])
        per_session: dict[str, dict[str, int]] = {}
        for row in rows:
            per_session.setdefault(row["session_id"], {})[row["status"]] = int(row["n"])
        sessions = {sid: StatusCounts(**counts) for sid, counts in sorted(per_session.items())}
        totals = {
            status.value: sum(getattr(c, status.value) for c in sessions.values())
            for status in MessageStatus
        }
        return QueueStats(
            counts=StatusCounts(**totals),
            sessions=sessions,
            database_bytes=_file_size(self.path),
            wal_bytes=_file_size(self.path.with_name(self.path.name + "-wal")),
            active_streams=len(self._session_owners),
        )

    async def has_pending(self, session_id: str) -> bool:
        """Whether ``session_id`` has a pending message (due now or backing off)."""
        self._check_open()
        if any(h.session_id == session_id for h in self._handbacks.values()):
            return True  # a claim waiting to be handed back: its message is still to do
        return await self._head_due_at(session_id) is not None

    async def data_version(self) -> int:
        """A number that changes whenever any connection commits to the file (SQLite's
        ``PRAGMA data_version``); cheap enough to poll every second."""
        self._check_open()
        return await _data_version(self._reader)

    async def read(self, sql: str, parameters: Parameters = ()) -> list[sqlite3.Row]:
        """Rows of one read on the queue's reader connection, for the layers above that keep
        their tables in this file: it sees every commit so far and never waits for the writer
        (a look-up that usually finds nothing need not queue behind a batch)."""
        self._check_open()
        try:
            return await self._reader.execute_fetchall(sql, parameters)
        except sqlite3.Error as exc:
            raise storage_error(exc) from exc

    async def sessions_with_backlog(self) -> list[str]:
        """Sessions that have at least one pending message (the worker schedules these)."""
        self._check_open()
        rows = await self._reader.execute_fetchall(QUERIES["sessions_with_backlog"])
        sessions = {str(row["session_id"]) for row in rows}
        sessions.update(h.session_id for h in self._handbacks.values())
        return sorted(sessions)

    async def failed(self, session_id: str | None = None, limit: int = 100) -> list[FailedMessage]:
        """Messages that ran out of attempts, oldest failure first."""
        self._check_open()
        rows = await self._reader.execute_fetchall(
            QUERIES["list_failed"], {"session_id": session_id, "limit": limit}
        )
        return [
            FailedMessage(
                id=int(row["id"]),
                session_id=str(row["session_id"]),
                kind=MessageKind.parse(row["kind"]),
                payload=json.loads(row["payload"]) if row["payload"] is not None else None,
                dedupe_key=row["dedupe_key"],
                attempts=int(row["attempts"]),
                created_at=from_epoch_ms(int(row["created_at"])),
                failed_at=from_epoch_ms(int(row["finished_at"])),
                last_error=row["last_error"],
            )
            for row in rows
        ]

    async def processing_messages(self, limit: int = 100) -> list[dict[str, Any]]:
        """What is processing now, longest running first, as JSON-ready values: its id,
        session, kind, attempts, ``started_at`` (ISO-8601 UTC) and ``running_seconds`` by
        this queue's clock."""
        self._check_open()
        rows = await self._reader.execute_fetchall(QUERIES["processing_messages"], {"limit": limit})
        now = self.clock.now()
        return [
            {
                "message_id": int(row["id"]),
                "session_id": str(row["session_id"]),
                "kind": str(row["kind"]),
                "attempts": int(row["attempts"]),
                "started_at": from_epoch_ms(int(row["started_at"]))
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
                # A wall clock set back since the claim must not show a negative time.
                "running_seconds": max(-seconds_until(EpochMs(int(row["started_at"])), now), 0.0),
            }
            for row in rows
            if row["started_at"] is not None
        ]

    async def status_of(self, message_id: int) -> MessageStatus | None:
        """The status of one message, or None when there is no such message."""
        self._check_open()
        rows = list(await self._reader.execute_fetchall(QUERIES["get_message"], {"id": message_id}))
        return MessageStatus(rows[0]["status"]) if rows else None

    # -- repairing -------------------------------------------------------------------------

    async def retry(self, message_ids: Sequence[int] | None = None) -> list[int]:
        """Give failed messages (these, or all when None) a fresh set of attempts.
        Returns the ids that were failed and are pending again."""
        self._check_open()
        if message_ids is None:
            query, params = QUERIES["retry_all_failed"], {}
        else:
            ids = [int(i) for i in message_ids]
            query, params = QUERIES["retry_failed"], {"ids": json.dumps(ids)}
        rows = await self._transaction(lambda tx: tx.fetchall(query, {**params, "now": tx.now_ms}))
        self._wakeups.wake({str(row["session_id"]) for row in rows})
        retried = sorted(int(row["id"]) for row in rows)
        if retried:
            log.info("message.retried", message_ids=retried)
        return retried

    async def forget_session(self, session_id: str) -> int:
        """Delete every queue row of ``session_id``; returns how many. Stop its stream first:
        a claim still held afterwards can no longer be acked."""
        return await self.forget_session_from(session_id, 0)  # message ids start at 1

    async def forget_session_from(self, session_id: str, from_message_id: int) -> int:
        """Delete the session's queue rows from ``from_message_id`` on, whatever their status
        (a revert). Stop its stream first. Returns how many."""
        self._check_open()
        params = {"session_id": session_id, "from_id": from_message_id}
        rows = await self._transaction(
            lambda tx: tx.fetchall(QUERIES["delete_session_from"], params)
        )
        deleted = [int(row["id"]) for row in rows]
        self._lose_claims(deleted)
        for message_id in deleted:
            self._handbacks.pop(message_id, None)
        return len(rows)

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in a write transaction of the group-commit writer and return its result.

        ``fn`` gets a ``Transaction`` and must only run statements on it: the writer is
        shared, so slow work inside ``fn`` delays every other write. If ``fn`` raises,
        nothing it did is kept and the error propagates.
        """
        self._check_open()
        return await self._transaction(fn)

    async def move_session(self, from_session: str, to_session: str) -> tuple[int, int]:
        """Give ``from_session``'s rows to ``to_session`` (a transfer); a row whose dedupe
        key the target already has is the same event and is dropped. Stop both streams
        first. Returns (moved, dropped)."""
        self._check_open()
        to_session = _check_id("session_id", to_session)
        params = {"from_id": from_session, "to_id": to_session}

        async def move(tx: Transaction) -> tuple[int, int]:
            moved = await tx.fetchall(QUERIES["move_session"], params)
            dropped = await tx.fetchall(QUERIES["drop_moved_duplicates"], params)
            return len(moved), len(dropped)

        result = await self._transaction(move)
        for message_id, handback in list(self._handbacks.items()):
            if handback.session_id == from_session:
                self._handbacks[message_id] = handback._replace(session_id=to_session)
        self._wakeups.wake([to_session])
        return result

    async def _transaction(
        self, fn: Callable[[Transaction], Awaitable[T]], *, transactional: bool = True
    ) -> T:
        op: CallOp[T] = CallOp(fn, transactional=transactional)
        await self._writer.submit(op)
        return cast(T, op.result)

    # -- maintenance -----------------------------------------------------------------------

    async def maintain(self) -> MaintenanceReport:
        """One pass of upkeep: hand back claims whose settlement could not be written (a
        full disk), take back expired leases, prune old settled rows, and checkpoint the WAL
        when it has grown past ``wal_checkpoint_bytes``."""
        self._check_open()
        settings = self.settings
        now = self.clock.now()
        await self.hand_back_unsettled()
        held, expired = self._claims_by_lease()
        reclaimed = await self._transaction(
            lambda tx: tx.fetchall(
                QUERIES["reclaim_expired_leases"],
                {
                    "held": json.dumps(held),
                    "expired": json.dumps(expired),
                    "now": tx.now_ms,
                    "available_at": later(tx.now_ms, self._spans.retry_wait(1)),
                    "max_attempts": settings.max_attempts,
                    "error": f"lease expired: not settled within {settings.lease:g} s",
                },
            )
        )
        for row in reclaimed:
            log.warning(
                "lease.expired",
                session_id=row["session_id"],
                message_id=row["id"],
                status=row["status"],
                attempt=row["attempts"],
            )
        self._lose_claims(int(row["id"]) for row in reclaimed)
        self._wakeups.wake({str(row["session_id"]) for row in reclaimed})
        spans = self._spans
        processed = await self._prune("prune_processed", earlier(now, spans.processed_retention))
        failed = await self._prune("prune_failed", earlier(now, spans.failed_retention))
        if processed or failed:
            log.info("retention.pruned", processed=processed, failed=failed)
        wal_path = self.path.with_name(self.path.name + "-wal")
        checkpointed = False
        if _file_size(wal_path) > settings.wal_checkpoint_bytes:
            await self._transaction(
                lambda tx: tx.fetchall("PRAGMA wal_checkpoint(TRUNCATE)"), transactional=False
            )
            checkpointed = True
            log.info("wal.checkpointed", wal_bytes=_file_size(wal_path))
        return MaintenanceReport(
            leases_reclaimed=len(reclaimed),
            processed_pruned=processed,
            failed_pruned=failed,
            wal_bytes=_file_size(wal_path),
            checkpointed=checkpointed,
            reclaimed_ids=tuple(int(row["id"]) for row in reclaimed),
        )

    def _claims_by_lease(self) -> tuple[list[int], list[int]]:
        """Ids of the claims held here, and of those held past the stored lease, measured
        on the monotonic clock."""
        now = self.clock.monotonic()
        held = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
        limit = self.settings.stored_lease
        expired = [c.message.id for c in held if now - c.claimed_at > limit]
        return [c.message.id for c in held], expired

    async def _prune(self, query: str, before: EpochMs) -> int:
        total = 0
        params = {"before": before, "chunk": PRUNE_CHUNK}
        while True:
            deleted = await self._transaction(lambda tx: tx.execute(QUERIES[query], params))
            total += int(deleted)
            if deleted < PRUNE_CHUNK:
                return total

    async def run_maintenance(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``maintain`` every ``maintenance_interval`` seconds, and check the database's
        files every ``file_check_interval`` seconds (``check_files``), until the queue closes.
        Start it in the owner's task group: ``tg.start_soon(queue.run_maintenance)``."""
        task_status.started()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_files)
            while not self._closed and not self._writes_stopped:
                try:
                    await self.maintain()
                except QueueClosedError:
                    break
                except StorageError as exc:
                    log.warning("maintenance.failed", error=str(exc))
                await self._sleep_unless_closed(self.settings.maintenance_interval)


async def _release_all(queue: Queue, claims: list[Claim]) -> None:
    """Release several claims, and those waiting to be handed back, in one batch (used at
    close). Raises ``StorageError`` when that cannot be written."""
    ops = [SettleOp(SettleAction.RELEASE, c.message.id, c.message.attempts) for c in claims]
    handbacks = queue._handback_ops()
    await queue._writer.submit_all([*ops, *handbacks])
    queue._handed_back(handbacks)
    error = next((op.error for op in (*ops, *handbacks) if op.error is not None), None)
    if error is not None:
        raise error
    for claim, op in zip(claims, ops, strict=True):
        claim.state = ClaimState.RELEASED if op.matched else ClaimState.LOST
        queue._claim_settled(claim)


def _acked(ack: SettleOp | CallOp[bool]) -> bool:
    """Whether ``ack`` went through: it matched its claim, and was written."""
    if ack.error is not None:
        return False
    return ack.matched if isinstance(ack, SettleOp) else ack.result is True


def encode_payload(payload: Any) -> str:
    """``payload`` as compact JSON text that SQLite can store as valid UTF-8."""
    try:
        text = _JSON.encode(payload)
        text.encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidMessageError(f"payload is not storable JSON: {exc}") from None
    return text


def _check_id(name: str, value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidMessageError(f"{name} must be a non-empty string, not {value!r}")
    if len(value) > MAX_KEY_CHARS:
        raise InvalidMessageError(f"{name} is longer than {MAX_KEY_CHARS} characters")
    if "\x00" in value:
        raise InvalidMessageError(f"{name} contains a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidMessageError(f"{name} is not valid Unicode text") from None
    return value


def _check_kind(kind: object) -> str:
    if not isinstance(kind, str) or kind not in KINDS:
        known = ", ".join(sorted(KINDS))
        raise InvalidMessageError(f"unknown message kind {kind!r} (known: {known})")
    return str(kind)


def _file_size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _install_leftover_copy(path: Path) -> None:
    """Put in place a copy of the database that a process saved when its files were deleted
    under it, but died before installing (see ``memq.queue._files``)."""
    installed = _files.install_leftover(path)
    if installed is not None:
        log.error(
            "database.replaced",
            path=str(path),
            found=["a saved copy that was never put in place"],
            action="put the copy at the path",
            kept_aside=[str(p) for p in installed.kept_aside],
            taken_in=installed.taken_in,
            unreadable=list(installed.unreadable),
        )


def _lock_database(path: Path) -> tuple[Path, InstanceLock]:
    """Resolve ``path``, create its directory (0700) and take the instance lock."""
    db_path = path.expanduser().resolve()
    db_path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    return db_path, InstanceLock.acquire(lock_path_for(db_path))


def _prepare_database(path: Path, settings: QueueSettings, clock: Clock) -> None:
    """Blocking part of ``Queue.open``: WAL mode, migrations, recovery of orphaned claims."""
    connection.check_sqlite_version()  # a SchemaError when it is too old
    busy_ms = int(settings.busy_timeout * 1000)
    conn = connection.connect(path, synchronous=settings.synchronous, busy_timeout_ms=busy_ms)
    conn.row_factory = sqlite3.Row
    try:
        schema.migrate(conn)
        now = clock.now()
        rows = conn.execute(
            QUERIES["recover_orphans"],
            {"now": now, "max_attempts": settings.max_attempts, "error": INTERRUPTED},
        ).fetchall()
        for row in rows:
            log.warning(
                "recovery.reset",
                session_id=row["session_id"],
                message_id=row["id"],
                status=row["status"],
                attempt=row["attempts"],
            )
    finally:
        conn.close()


async def _connect(
    path: Path,
    synchronous: Synchronous,
    settings: QueueSettings,
    opened: list[ThreadConnection],
    role: str,
) -> ThreadConnection:
    pragmas = connection.connection_pragmas(synchronous, int(settings.busy_timeout * 1000))
    conn = await ThreadConnection.open(path, pragmas, name=f"memq-queue-{role}")
    opened.append(conn)
    return conn


async def _data_version(conn: ThreadConnection) -> int:
    rows = await conn.execute_fetchall(QUERIES["data_version"])
    return int(rows[0][0])
