"""The durable per-session queue: open, enqueue, stream, settle, inspect, maintain, close."""

from __future__ import annotations

import functools
import json
import os
import sqlite3
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any, Final, TypeVar, cast

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import StorageError
from memq.queue import _files
from memq.queue._claim import Claim, ClaimState, Effect
from memq.queue._clock import SYSTEM_CLOCK, Clock, EpochMs, later
from memq.queue._connection import Parameters, ThreadConnection
from memq.queue._core import (
    PRUNE_CHUNK,
    QueueBase,
    _check_id,
    _check_kind,
    encode_payload,
)
from memq.queue._files import DatabaseFiles, FileProblem, Replacement
from memq.queue._lock import InstanceLock, lock_path_for
from memq.queue._models import MaintenanceReport
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._wakeup import ForeignChangeWatcher, Handoff
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
INTERRUPTED: Final = "interrupted: the process died while this message was processing"
# Re-exported: the PostgreSQL queue and older imports name them here.
__all__ = ["PRUNE_CHUNK", "Queue", "_check_id", "_check_kind", "encode_payload"]


class Queue(QueueBase):
    """A durable FIFO queue per session on one SQLite file.

    Open it with ``await Queue.open(path)``; it needs no task group. Only one ``Queue`` may
    have a file open at a time, across processes.
    """

    _queries = QUERIES
    _changes: ForeignChangeWatcher

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
        super().__init__(settings=settings, clock=clock)
        self.path = path
        self._lock = lock
        self._writer_conn = writer
        self._reader = reader
        self._connections = (writer, reader)
        # The files at the database's paths (memq.queue._files): what this queue found
        # changed, whether it stopped writing because of it, and what it did about it.
        self._files = files
        self._files_changed: tuple[FileProblem, ...] = ()
        self._writes_stopped = False
        self._rescue_lock = anyio.Lock()
        self._replacement: Replacement | None = None
        self._replaced = anyio.Event()
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

    def _closed_text(self) -> str:
        return f"queue {self.path} is closed"

    # -- producing -------------------------------------------------------------------------

    async def _write_enqueue(self, op: EnqueueOp) -> None:
        await self._writer.submit(op, self._handoffs(op.session))
        if self._files_changed:
            # Committed to files that are no longer at the database's path: acknowledged only
            # once what this queue holds is saved there (raises StorageError if it cannot be).
            await self._rescue(self._files_changed)

    # -- consuming -------------------------------------------------------------------------

    async def _submit_all(self, ops: Sequence[Any]) -> None:
        await self._writer.submit_all(ops)

    def _settle_op(
        self, action: SettleAction, message_id: int, check: int, details: FailDetails | None
    ) -> SettleOp:
        return SettleOp(action, message_id, check, details)

    def _claim_op(self, session_id: str) -> ClaimOp:
        return ClaimOp(session_id)

    def _check_of(self, claim: Claim) -> int:
        return claim.message.attempts  # a claim's settlement matches its attempt

    def _check_of_row(self, row: Any) -> int:
        return int(row["attempts"])

    async def _head_due_at(self, session_id: str) -> float | None:
        """When (on ``clock.monotonic()``) the session's head becomes claimable."""
        rows = list(
            await self._reader.execute_fetchall(
                QUERIES["head_available_at"], {"session_id": session_id}
            )
        )
        return self._due_at(EpochMs(int(rows[0][0])) if rows else None)

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
            await self._hand_on(claim, follow.row)
        return acked()

    def _follow_up(self, claim: Claim, acked: Callable[[], bool]) -> ClaimOp | None:
        """A claim of the next message to make with ``claim``'s ack, when the stream that
        holds ``claim`` will ask for it (``SessionStream._claims_ahead``)."""
        session_id = claim.message.session_id
        stream = self._session_owners.get(session_id)
        if stream is None or not stream._claims_ahead(claim):
            return None
        if self._handing_back(session_id):
            return None  # those go back first, with the stream's own claim
        return ClaimOp(session_id, only_if=acked)

    async def _stream_closed(self, stream: SessionStream) -> None:
        """A stream ended. Nothing to do here: SQLite's one consumer per session is
        ``_session_owners`` (the PostgreSQL queue lets go of the session's lease)."""

    def _handoffs(self, session_id: str) -> list[Handoff]:
        """A claim for the stream that waits on ``session_id``, if any, to make right after
        an enqueue to it (in its batch). A session with a claim waiting to be handed back is
        left to its stream: that claim goes back first."""
        if self._handbacks and self._handing_back(session_id):
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

    async def _fetch(self, sql: str, parameters: Any) -> Sequence[Any]:
        return await self._reader.execute_fetchall(sql, () if parameters is None else parameters)

    async def _database_sizes(self) -> tuple[int, int]:
        return _file_size(self.path), _file_size(self.path.with_name(self.path.name + "-wal"))

    async def _head_pending(self, session_id: str) -> bool:
        return await self._head_due_at(session_id) is not None

    async def _backlog(self) -> Iterable[str]:
        rows = await self._reader.execute_fetchall(QUERIES["sessions_with_backlog"])
        return (str(row["session_id"]) for row in rows)

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
        return self._retried(rows)

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
        self._forgotten(int(row["id"]) for row in rows)
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

    async def _reclaim_expired(
        self, held: list[int], expired: list[int], now: EpochMs
    ) -> Sequence[Any]:
        return await self._transaction(
            lambda tx: tx.fetchall(
                QUERIES["reclaim_expired_leases"],
                {
                    "held": json.dumps(held),
                    "expired": json.dumps(expired),
                    "now": tx.now_ms,
                    "available_at": later(tx.now_ms, self._spans.retry_wait(1)),
                    "max_attempts": self.settings.max_attempts,
                    "error": self._lease_expired_text(),
                },
            )
        )

    async def _upkeep(self, report: MaintenanceReport) -> MaintenanceReport:
        """Checkpoint the WAL when it has grown past ``wal_checkpoint_bytes``."""
        wal_path = self.path.with_name(self.path.name + "-wal")
        checkpointed = False
        if _file_size(wal_path) > self.settings.wal_checkpoint_bytes:
            await self._transaction(
                lambda tx: tx.fetchall("PRAGMA wal_checkpoint(TRUNCATE)"), transactional=False
            )
            checkpointed = True
            log.info("wal.checkpointed", wal_bytes=_file_size(wal_path))
        return replace(report, wal_bytes=_file_size(wal_path), checkpointed=checkpointed)

    async def _delete_chunk(self, query: str, params: Mapping[str, Any]) -> int:
        return int(await self._transaction(lambda tx: tx.execute(QUERIES[query], params)))

    async def run_maintenance(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``maintain`` every ``maintenance_interval`` seconds, and check the database's
        files every ``file_check_interval`` seconds (``check_files``), until the queue closes.
        Start it in the owner's task group: ``tg.start_soon(queue.run_maintenance)``."""
        task_status.started()
        async with anyio.create_task_group() as tg:
            tg.start_soon(self._watch_files)
            await self._maintain_until_closed()

    def _may_maintain(self) -> bool:
        return not self._writes_stopped


async def _release_all(queue: Queue, claims: list[Claim]) -> None:
    """Release several claims, and those waiting to be handed back, in one batch (used at
    close). Raises ``StorageError`` when that cannot be written."""
    ops = [SettleOp(SettleAction.RELEASE, c.message.id, c.message.attempts) for c in claims]
    handbacks = queue._handback_ops()
    await queue._submit_all([*ops, *handbacks])
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
