"""``PgQueue``: ``memq.queue.Queue``'s public API on PostgreSQL, for several daemons sharing
one database.

It reuses the queue's ``Claim``, ``SessionStream``, ``Wakeups`` and models: those call a
handful of hooks on their queue (``_claim``, ``_ack``, ``_fail``, ``_defer``, ``_release``,
``_claim_settled``, ``_unsettled``, ``_stream_closed``, ``_session_owners``, ``_wakeups``,
``_changes``), which this class provides. What differs from SQLite:

- one consumer per session across daemons is a session lease (``leases``), taken by a
  stream's first claim and dropped when it ends; a session another daemon holds yields
  nothing here;
- every settlement names its claim's token: 0 rows means the claim was taken away
  (``ClaimLostError``), and an ack's writes roll back with it;
- wake-ups come by LISTEN/NOTIFY (``listener``), and recovery from a daemon's death by the
  heartbeat sweep (``heartbeat``), not from a file lock at start.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import replace
from types import TracebackType
from typing import Any, Final, NamedTuple, TypeVar, cast

import anyio
import psycopg
import psycopg_pool
import structlog
from anyio.abc import TaskStatus
from psycopg.rows import dict_row

from memq.exceptions import QueueClosedError, StorageError
from memq.kinds import MessageKind
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
from memq.queue._queue import PRUNE_CHUNK, _check_id, _check_kind, encode_payload
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._wakeup import Wakeups
from memq.queue._writer import EnqueueOp, FailDetails, Operation, SettleAction
from memq.queue.postgres.heartbeat import Heartbeat, SweepReport
from memq.queue.postgres.leases import LeaseBook
from memq.queue.postgres.listener import Listener, NotifyWatcher
from memq.queue.postgres.settings import PgSettings
from memq.queue.postgres.writer import (
    LeaseDropOp,
    PgCallOp,
    PgClaimOp,
    PgSettleOp,
    PgTransaction,
    PgWriter,
    Row,
    notify_payload,
)
from memq.storage.postgres import connection, schema
from memq.storage.postgres.connection import ConnectOptions, storage_errors
from memq.storage.postgres.statements import pg_form
from memq.storage.sqlfile import POSTGRES, load_queries

log = structlog.get_logger("memq.queue")
T = TypeVar("T")

QUERIES: Final = load_queries("queue", POSTGRES)
PG_QUERIES: Final = load_queries("pg_queue", POSTGRES)
Pool = psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class Handback(NamedTuple):
    """A claim whose settlement could not be written: released once the queue can write."""

    session_id: str
    token: int


class PgQueue:
    """A durable FIFO queue per session in a PostgreSQL schema that several daemons share.

    Open it with ``await PgQueue.open(url)``; close it with ``await queue.close()``.
    """

    def __init__(
        self,
        url: str,
        *,
        settings: QueueSettings,
        pg: PgSettings,
        options: ConnectOptions,
        pool: Pool,
        heartbeat: Heartbeat,
        channel: str,
        clock: Clock,
    ) -> None:
        self.url = url
        self.settings = settings
        self.pg_settings = pg
        self.options = options
        self.clock = clock
        self.channel = channel
        self._spans = StoredSpans.from_settings(settings)
        self._pool = pool
        self._heartbeat = heartbeat
        self._closed = False
        self._closing = anyio.Event()
        self._wakeups = Wakeups()
        self._book = LeaseBook()
        self._changes = NotifyWatcher(
            self._wakeups,
            pg.listen_fallback_poll,
            self._sessions_with_pending,
            lambda: self._listener.listening,
        )
        self._listener = Listener(
            self._connect,
            channel,
            self._changes,
            own_pid=lambda: self._writer.backend_pid,
            reconnect_min=pg.reconnect_min,
            reconnect_max=pg.reconnect_max,
        )
        self._writer = PgWriter(
            self._connect,
            QUERIES,
            PG_QUERIES,
            url=url,
            clock=clock,
            daemon=lambda: self._heartbeat.daemon_id,
            book=self._book,
            channel=channel,
            max_batch=settings.max_batch,
            max_batch_bytes=settings.max_batch_bytes,
            stored_lease=self._spans.stored_lease,
            longest_wait=self._spans.longest_wait,
            on_commit=self._after_commit,
            on_storage_error=self._storage_failed,
        )
        self._active_claims: set[Claim] = set()
        self._tokens: dict[int, int] = {}  # message id -> the token of its claim here
        self._session_owners: dict[str, SessionStream] = {}
        self._handbacks: dict[int, Handback] = {}
        self._storage_listeners: list[Callable[[StorageError], None]] = []
        self._keep_alive: asyncio.Task[None] | None = None

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    async def open(
        cls,
        url: str,
        settings: QueueSettings | None = None,
        *,
        pg: PgSettings | None = None,
        options: ConnectOptions | None = None,
        max_attempts: int | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> PgQueue:
        """Migrate the schema, register this daemon, start listening and beating, and
        return the open queue. Raises ``StorageError`` when the server cannot be used,
        ``SchemaError`` when a newer memq wrote the schema."""
        settings = settings or QueueSettings()
        if max_attempts is not None:
            settings = replace(settings, max_attempts=max_attempts)
        pg = pg or PgSettings()
        options = options or ConnectOptions()
        pool = await connection.open_pool(url, options)
        try:
            async with pool.connection() as conn:
                await schema.migrate(conn, url=url)
                with storage_errors(url):
                    cursor = await conn.execute("SELECT current_schema()")
                    row = await cursor.fetchone()
            channel = f"memq_{row[0] if row is not None and row[0] else 'public'}"
            heartbeat = Heartbeat(pool, PG_QUERIES, pg, url=url, channel=channel)
            await heartbeat.register()
            queue = cls(
                url,
                settings=settings,
                pg=pg,
                options=options,
                pool=pool,
                heartbeat=heartbeat,
                channel=channel,
                clock=clock,
            )
        except BaseException:
            with anyio.CancelScope(shield=True):
                await pool.close()
            raise
        await queue._start()
        log.info("queue.opened", backend="postgres", daemon_id=heartbeat.daemon_id)
        return queue

    async def _start(self) -> None:
        await self._listener.start()
        with contextlib.suppress(StorageError):
            await self.sweep()
        self._keep_alive = asyncio.get_running_loop().create_task(self._beat_and_sweep())

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        return await connection.connect(self.url, self.options)

    @property
    def daemon_id(self) -> int:
        """This daemon's id in ``daemons`` (a new one after it was fenced)."""
        return self._heartbeat.daemon_id

    @property
    def listener(self) -> Listener:
        return self._listener

    @property
    def closed(self) -> bool:
        return self._closed

    async def reopen(self) -> PgQueue:
        """Close this queue and open it again with the same settings and clock."""
        await self.close()
        reopened = await PgQueue.open(
            self.url, self.settings, pg=self.pg_settings, options=self.options, clock=self.clock
        )
        reopened._storage_listeners.extend(self._storage_listeners)
        return reopened

    async def close(self) -> None:
        """Hand back unsettled claims, drop this daemon's leases and registration, and
        close every connection. Safe to call twice."""
        if self._closed:
            return
        await self._shut_down(hand_back=True)
        log.info("queue.closed", backend="postgres")

    async def _shut_down(self, *, hand_back: bool) -> None:
        with anyio.CancelScope(shield=True):
            # The heartbeat task stops first: a beat after the unregister below would find
            # the row gone and register again, and a sweep racing the close would meet a
            # closed queue or pool.
            await self._stop_keep_alive()
            self._wakeups.close()
            if hand_back:
                active = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
                try:
                    await self._release_all(active)
                    await self._heartbeat.unregister()
                except (StorageError, QueueClosedError) as exc:
                    # Left as they are: the other daemons' sweep hands them back.
                    log.warning("queue.release_failed", claims=len(active), error=str(exc))
            self._closed = True
            self._closing.set()
            self._wakeups.wake_all()
            self._changes.close()
            await self._listener.close()
            await self._writer.close()
            await self._pool.close()

    async def _stop_keep_alive(self) -> None:
        task, self._keep_alive = self._keep_alive, None
        if task is None:
            return
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass  # what the cancel above causes (the caller's own scope is shielded)
        except Exception:
            log.exception("daemon.heartbeat_task_failed")

    async def _release_all(self, claims: list[Claim]) -> None:
        ops = [
            PgSettleOp(SettleAction.RELEASE, c.message.id, self._tokens[c.message.id])
            for c in claims
            if c.message.id in self._tokens
        ]
        handbacks = self._handback_ops()
        await self._writer.submit_all([*ops, *handbacks])
        for claim in claims:
            claim.state = ClaimState.RELEASED
            self._claim_settled(claim)
        self._handed_back(handbacks)
        failed = next((op.error for op in [*ops, *handbacks] if op.error is not None), None)
        if failed is not None:
            # Not unregistering: that would drop the leases while a row is 'processing'.
            # The other daemons' sweep hands the rows back and drops the leases together.
            raise failed if isinstance(failed, StorageError) else StorageError(str(failed))

    async def __aenter__(self) -> PgQueue:
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
            raise QueueClosedError("the PostgreSQL queue is closed")

    # -- heartbeats ------------------------------------------------------------------------

    async def _beat_and_sweep(self) -> None:
        while not self._closed:
            with anyio.move_on_after(self.pg_settings.heartbeat_interval):
                await self._closing.wait()
            if self._closed:
                return
            try:
                if not await self._heartbeat.beat():
                    await self._fenced()
            except StorageError as exc:
                log.warning(
                    "daemon.heartbeat_failed", missed=self._heartbeat.missed, error=str(exc)
                )
            if not self._heartbeat.may_sweep:
                continue
            try:
                await self.sweep()
            except QueueClosedError:
                return  # closed while sweeping: nothing is left to hand back from here
            except StorageError as exc:
                log.warning("daemon.sweep_failed", error=str(exc))

    async def beat(self) -> bool:
        """One heartbeat now; False when this daemon had been declared dead (it then stops
        what it held and registers again)."""
        self._check_open()
        alive = await self._heartbeat.beat()
        if not alive:
            await self._fenced()
        return alive

    async def sweep(self) -> SweepReport:
        """Declare daemons whose heartbeat expired dead and hand back what they held."""
        self._check_open()
        report = await self._heartbeat.sweep(
            max_attempts=self.settings.max_attempts, now=self.clock.now()
        )
        self._wakeups.wake({str(row["session_id"]) for row in report.claims})
        return report

    async def _fenced(self) -> None:
        """This daemon was declared dead: its claims and leases are no longer its."""
        lost = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
        log.error(
            "daemon.fenced",
            daemon_id=self._heartbeat.daemon_id,
            claims_lost=[c.message.id for c in lost],
            leases_lost=sorted(self._book.held()),
        )
        for claim in lost:
            claim.state = ClaimState.LOST
            self._claim_settled(claim)
        self._handbacks.clear()  # the sweep handed those rows back
        self._book.clear()
        await self._heartbeat.register()
        self._wakeups.wake_all()

    async def daemons(self) -> list[dict[str, Any]]:
        """Every registered daemon: id, host, pid, port, heartbeat age (ms), sessions held."""
        return await self.read(PG_QUERIES["live_daemons"])

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
        """Store one message; durable (committed) when this returns. See ``Queue.enqueue``."""
        self._check_open()
        op = EnqueueOp(
            _check_id("session_id", session_id),
            _check_kind(kind),
            encode_payload(payload) if payload_json is None else payload_json,
            None if dedupe_key is None else _check_id("dedupe_key", dedupe_key),
            self.clock.now(),
        )
        await self._writer.submit(op)
        return Enqueued(op.message_id, op.created)

    # -- consuming -------------------------------------------------------------------------

    def stream(self, session_id: str, *, linger: float = 5.0) -> SessionStream:
        """Claims of the session's messages in FIFO order; see ``Queue.stream``. A session
        whose lease another daemon holds yields nothing here until that daemon lets go."""
        self._check_open()
        return SessionStream(self, _check_id("session_id", session_id), linger)

    async def _claim(self, session_id: str) -> tuple[Claim | None, float | None]:
        if self._heartbeat.missed >= 2:
            # Acks would be fenced anyway once the others declare this daemon dead.
            raise StorageError("the database missed this daemon's last heartbeats: not claiming")
        op = PgClaimOp(session_id)
        handbacks = self._handback_ops({session_id})
        await self._writer.submit_all([*handbacks, op])
        self._handed_back(handbacks)
        failed = next((o.error for o in handbacks if o.error is not None), None)
        if failed is not None and op.row is not None:
            self._handbacks[int(op.row["id"])] = Handback(session_id, int(op.row["claim_token"]))
            raise failed
        if op.error is not None:
            raise op.error
        if op.row is None:
            return None, None if op.busy else self._due_at(op.head_available_at)
        return self._claimed(op.row), None

    def _claimed(self, row: Row) -> Claim:
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
        self._tokens[message.id] = int(row["claim_token"])
        self._active_claims.add(claim)
        return claim

    def _due_at(self, available_at: EpochMs | None) -> float | None:
        if available_at is None:
            return None
        wait = seconds_until(available_at, self.clock.now())
        if wait > self.settings.max_wait:
            wait = 0.0  # stored before the wall clock was set back: due now
        return self.clock.monotonic() + max(0.0, wait)

    def _token(self, claim: Claim) -> int:
        return self._tokens.get(claim.message.id, 0)  # 0: no claim token ever matches

    async def _ack(self, claim: Claim, write: Effect | None) -> bool:
        self._check_open()
        message, token = claim.message, self._token(claim)
        if write is None:
            op = PgSettleOp(SettleAction.ACK, message.id, token)
            await self._writer.submit(op)
            return op.matched
        effect = cast(Callable[[PgTransaction], Awaitable[None]], write)

        async def ack_and_write(tx: PgTransaction) -> bool:
            params = {"ids": [message.id], "tokens": [token], "now": tx.now_ms}
            if not await tx.fetchall(QUERIES["ack"], params):
                return False  # taken away: the effect is not run, nothing is written
            await effect(tx)
            return True

        call: PgCallOp[bool] = PgCallOp(ack_and_write)
        await self._writer.submit(call)
        return call.result is True

    async def _fail(self, claim: Claim, error: str) -> MessageStatus | None:
        self._check_open()
        message = claim.message
        exhausted = message.attempts >= self.settings.max_attempts
        status = MessageStatus.FAILED if exhausted else MessageStatus.PENDING
        now = self.clock.now()
        available_at = now if exhausted else later(now, self._spans.retry_wait(message.attempts))
        details = FailDetails(status.value, available_at, error)
        op = PgSettleOp(SettleAction.FAIL, message.id, self._token(claim), details)
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
        op = PgSettleOp(SettleAction.RELEASE, message.id, self._token(claim), details)
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
        op = PgSettleOp(SettleAction.RELEASE, claim.message.id, self._token(claim))
        await self._writer.submit(op)
        return op.matched

    def _lose_claims(self, message_ids: Iterable[int]) -> None:
        gone = set(message_ids)
        for claim in [c for c in self._active_claims if c.message.id in gone]:
            claim.state = ClaimState.LOST
            self._claim_settled(claim)

    def _claim_settled(self, claim: Claim) -> None:
        self._active_claims.discard(claim)
        self._tokens.pop(claim.message.id, None)
        session_id = claim.message.session_id
        owner = self._session_owners.get(session_id)
        if owner is not None and owner._holds(claim) and not owner._holds_other_than(claim):
            del self._session_owners[session_id]

    def _unsettled(self, claim: Claim) -> None:
        message = claim.message
        self._handbacks[message.id] = Handback(message.session_id, self._token(claim))
        claim.state = ClaimState.UNSETTLED
        self._claim_settled(claim)
        log.warning(
            "claim.unsettled",
            session_id=message.session_id,
            message_id=message.id,
            reason="its settlement could not be written; handed back when the queue can write",
        )

    async def _stream_closed(self, stream: SessionStream) -> None:
        """A stream ended: let go of its session's lease, unless a claim or another stream
        here still holds the session. A drop that fails is retaken by the next stream.

        A claim of the session whose settlement failed is still 'processing': the lease is
        let go only after its hand-back is written, or another daemon could claim the next
        message before it."""
        session_id = stream.session_id
        if not self._may_drop(session_id, stream):
            return
        handbacks = self._handback_ops({session_id})
        if handbacks:
            try:
                await self._writer.submit_all(handbacks)
            except QueueClosedError:
                return
            self._handed_back(handbacks)
            failed = next((op.error for op in handbacks if op.error is not None), None)
            if failed is not None:
                log.warning("lease.kept", session_id=session_id, error=str(failed))
                return
            if not self._may_drop(session_id, stream):  # a stream began meanwhile
                return
        if any(h.session_id == session_id for h in self._handbacks.values()):
            return
        token = self._book.forget(session_id)
        if token is None:
            return
        try:
            await self._writer.submit(LeaseDropOp(session_id, token))
        except (StorageError, QueueClosedError) as exc:
            log.warning("lease.drop_failed", session_id=session_id, error=str(exc))

    def _may_drop(self, session_id: str, stream: SessionStream) -> bool:
        owner = self._session_owners.get(session_id)
        if self._closed or (owner is not None and owner is not stream):
            return False
        return not any(c.message.session_id == session_id for c in self._active_claims)

    def _handback_ops(self, sessions: set[str] | None = None) -> list[Operation]:
        return [
            PgSettleOp(SettleAction.RELEASE, message_id, handback.token)
            for message_id, handback in self._handbacks.items()
            if sessions is None or handback.session_id in sessions
        ]

    def _handed_back(self, ops: list[Operation]) -> None:
        for op in ops:
            if op.error is None and isinstance(op, PgSettleOp):
                self._handbacks.pop(op.message_id, None)

    async def hand_back_unsettled(self) -> int:
        """Write the releases of claims whose settlement failed; returns how many went back."""
        self._check_open()
        ops = self._handback_ops()
        if not ops:
            return 0
        await self._writer.submit_all(ops)
        self._handed_back(ops)
        error = next((op.error for op in ops if op.error is not None), None)
        if error is not None:
            raise error
        return sum(1 for op in ops if isinstance(op, PgSettleOp) and op.matched)

    def on_storage_error(self, listener: Callable[[StorageError], None]) -> None:
        """Call ``listener`` with every storage error a write meets. It must not raise."""
        self._storage_listeners.append(listener)

    def _storage_failed(self, error: StorageError) -> None:
        for listener in self._storage_listeners:
            try:
                listener(error)
            except Exception:
                log.exception("storage_listener.failed")

    def _after_commit(self, batch: list[Operation]) -> None:
        # This daemon's own enqueues wake its streams at once; NOTIFY brings them to others.
        self._wakeups.wake(op.session for op in batch if isinstance(op, EnqueueOp) and op.created)

    # -- waking ----------------------------------------------------------------------------

    async def wait_for_foreign_rows(self) -> None:
        """Return on the next notification of rows (any daemon's enqueue, a sweep), or on
        each fallback poll while the listening connection is down."""
        self._check_open()
        await self._changes.wait()

    async def _sessions_with_pending(self, session_ids: list[str]) -> list[str]:
        rows = await self.read(QUERIES["sessions_with_pending"], {"sessions": session_ids})
        return [str(row["session_id"]) for row in rows]

    # -- reading ---------------------------------------------------------------------------

    async def read(self, sql: str, parameters: Any = None) -> list[Row]:
        """Rows of one read on a pool connection (no transaction), as dicts; a SQLite
        statement runs in its PostgreSQL form (``pg_form``)."""
        self._check_open()
        with storage_errors(self.url):
            async with self._pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
                await cur.execute(pg_form(sql), parameters)
                return await cur.fetchall() if cur.description is not None else []

    async def has_pending(self, session_id: str) -> bool:
        """Whether the session has a pending message that this daemon may take (no other
        daemon holds its lease)."""
        self._check_open()
        if any(h.session_id == session_id for h in self._handbacks.values()):
            return True
        params = {"session_id": session_id, "daemon": self.daemon_id}
        return bool(await self.read(PG_QUERIES["free_head"], params))

    async def sessions_with_backlog(self) -> list[str]:
        """Sessions with a pending message that no other daemon holds."""
        self._check_open()
        rows = await self.read(PG_QUERIES["free_backlog"], {"daemon": self.daemon_id})
        sessions = {str(row["session_id"]) for row in rows}
        sessions.update(h.session_id for h in self._handbacks.values())
        return sorted(sessions)

    async def stats(self) -> QueueStats:
        """Counts by status, overall and per session, and the database's size."""
        self._check_open()
        rows = await self.read(QUERIES["count_by_session_and_status"])
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
            database_bytes=await self.database_bytes(),
            wal_bytes=0,
            active_streams=len(self._session_owners),
        )

    async def database_bytes(self) -> int:
        rows = await self.read(PG_QUERIES["database_bytes"])
        return int(rows[0]["bytes"])

    async def failed(self, session_id: str | None = None, limit: int = 100) -> list[FailedMessage]:
        """Messages that ran out of attempts, oldest failure first."""
        self._check_open()
        rows = await self.read(QUERIES["list_failed"], {"session_id": session_id, "limit": limit})
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
        """What is processing now (any daemon's), longest running first."""
        self._check_open()
        rows = await self.read(QUERIES["processing_messages"], {"limit": limit})
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
                "running_seconds": max(-seconds_until(EpochMs(int(row["started_at"])), now), 0.0),
            }
            for row in rows
            if row["started_at"] is not None
        ]

    async def status_of(self, message_id: int) -> MessageStatus | None:
        """The status of one message, or None when there is no such message."""
        self._check_open()
        rows = await self.read(QUERIES["get_message"], {"id": message_id})
        return MessageStatus(rows[0]["status"]) if rows else None

    # SQLite's file watch has nothing to watch here.
    replaced = None

    async def wait_replaced(self) -> None:
        """Never returns: a server's database is not replaced under the queue."""
        await anyio.sleep_forever()

    async def check_files(self) -> None:
        return None

    # -- repairing -------------------------------------------------------------------------

    async def _notify(self, tx: PgTransaction, sessions: Iterable[str]) -> None:
        wanted = sorted(set(sessions))
        if wanted:
            params = {"channel": self.channel, "payload": notify_payload(wanted)}
            await tx.execute(PG_QUERIES["notify"], params)

    async def retry(self, message_ids: Sequence[int] | None = None) -> list[int]:
        """Give failed messages (these, or all when None) a fresh set of attempts."""
        self._check_open()
        if message_ids is None:
            query, params = QUERIES["retry_all_failed"], {}
        else:
            query, params = QUERIES["retry_failed"], {"ids": [int(i) for i in message_ids]}

        async def retry(tx: PgTransaction) -> list[Row]:
            rows = await tx.fetchall(query, {**params, "now": tx.now_ms})
            await self._notify(tx, (str(row["session_id"]) for row in rows))
            return rows

        rows = await self.run_in_transaction(retry)
        self._wakeups.wake({str(row["session_id"]) for row in rows})
        retried = sorted(int(row["id"]) for row in rows)
        if retried:
            log.info("message.retried", message_ids=retried)
        return retried

    async def forget_session(self, session_id: str) -> int:
        """Delete every queue row of the session and its lease; returns how many rows."""
        return await self._forget(session_id, 0, drop_lease=True)

    async def forget_session_from(self, session_id: str, from_message_id: int) -> int:
        """Delete the session's rows from ``from_message_id`` on (a revert)."""
        return await self._forget(session_id, from_message_id, drop_lease=False)

    async def _forget(self, session_id: str, from_id: int, *, drop_lease: bool) -> int:
        self._check_open()
        params = {"session_id": session_id, "from_id": from_id}

        async def forget(tx: PgTransaction) -> list[Row]:
            rows = await tx.fetchall(QUERIES["delete_session_from"], params)
            if drop_lease:
                await tx.execute(PG_QUERIES["drop_session_leases"], params)
            return rows

        rows = await self.run_in_transaction(forget)
        if drop_lease:
            self._book.forget(session_id)
        deleted = [int(row["id"]) for row in rows]
        self._lose_claims(deleted)
        for message_id in deleted:
            self._handbacks.pop(message_id, None)
        return len(rows)

    async def move_session(self, from_session: str, to_session: str) -> tuple[int, int]:
        """Give ``from_session``'s rows to ``to_session``; duplicates are dropped. Stop both
        streams first. Returns (moved, dropped)."""
        self._check_open()
        to_session = _check_id("session_id", to_session)
        params = {"from_id": from_session, "to_id": to_session, "session_id": from_session}

        async def move(tx: PgTransaction) -> tuple[int, int]:
            moved = await tx.fetchall(QUERIES["move_session"], params)
            dropped = await tx.fetchall(QUERIES["drop_moved_duplicates"], params)
            await tx.execute(PG_QUERIES["drop_session_leases"], params)
            await self._notify(tx, [to_session])
            return len(moved), len(dropped)

        result = await self.run_in_transaction(move)
        self._book.forget(from_session)
        for message_id, handback in list(self._handbacks.items()):
            if handback.session_id == from_session:
                self._handbacks[message_id] = handback._replace(session_id=to_session)
        self._wakeups.wake([to_session])
        return result

    async def run_in_transaction(self, fn: Callable[[PgTransaction], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction of the group-commit writer (in a savepoint of its
        own) and return its result; if ``fn`` raises, nothing it did is kept."""
        self._check_open()
        op: PgCallOp[T] = PgCallOp(fn)
        await self._writer.submit(op)
        return cast(T, op.result)

    # -- maintenance -----------------------------------------------------------------------

    async def maintain(self) -> MaintenanceReport:
        """One pass of upkeep: hand back unsettled claims, take back this daemon's claims
        held past their lease, prune old settled rows. (VACUUM is autovacuum's.)"""
        self._check_open()
        settings = self.settings
        now = self.clock.now()
        await self.hand_back_unsettled()
        clock_now = self.clock.monotonic()
        held = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
        expired = [c.message.id for c in held if clock_now - c.claimed_at > settings.stored_lease]
        params = {
            "daemon": self.daemon_id,
            "held": [c.message.id for c in held],
            "expired": expired,
            "now": now,
            "available_at": later(now, self._spans.retry_wait(1)),
            "max_attempts": settings.max_attempts,
            "error": f"lease expired: not settled within {settings.lease:g} s",
        }
        reclaimed = await self.run_in_transaction(
            lambda tx: tx.fetchall(QUERIES["reclaim_expired_leases"], params)
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
        return MaintenanceReport(
            leases_reclaimed=len(reclaimed),
            processed_pruned=processed,
            failed_pruned=failed,
            reclaimed_ids=tuple(int(row["id"]) for row in reclaimed),
        )

    async def _prune(self, query: str, before: EpochMs) -> int:
        total = 0
        params = {"before": before, "chunk": PRUNE_CHUNK}
        while True:
            deleted = await self.run_in_transaction(lambda tx: tx.execute(QUERIES[query], params))
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    async def run_maintenance(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``maintain`` every ``maintenance_interval`` seconds until the queue closes."""
        task_status.started()
        while not self._closed:
            try:
                await self.maintain()
            except QueueClosedError:
                return
            except StorageError as exc:
                log.warning("maintenance.failed", error=str(exc))
            with anyio.move_on_after(self.settings.maintenance_interval):
                await self._closing.wait()
