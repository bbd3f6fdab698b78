"""``QueueBase``: what the SQLite queue (``memq.queue.Queue``) and the PostgreSQL one
(``memq.queue.postgres.PgQueue``) share; the type to name for "a queue of either backend".

The claim bookkeeping (active claims, session owners, claims to hand back), the settlement
decisions (retry or fail, defer), streams, the inspection reads and the maintenance loop live
here once. A backend supplies its primitives: how a settlement or a claim is written
(``_settle_op``, ``_claim_op``, ``_submit_all``), what a claim must match to settle (its
attempts on SQLite, its claim token on PostgreSQL: ``_check_of``), and its reads (``_fetch``).
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any, ClassVar, Final, NamedTuple, Protocol, Self, TypeVar

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import InvalidMessageError, QueueClosedError, StorageError
from memq.kinds import MessageKind
from memq.limits import MAX_KEY_CHARS
from memq.queue._claim import Claim, ClaimState, Effect
from memq.queue._clock import (
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
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._wakeup import Wakeups
from memq.queue._writer import EnqueueOp, FailDetails, SettleAction

if TYPE_CHECKING:
    from memq.queue._files import Replacement
    from memq.queue._hooks import ChangeWatcher
    from memq.queue._writer import Transaction

log = structlog.get_logger("memq.queue")
T = TypeVar("T")

KINDS: Final = frozenset(kind.value for kind in MessageKind)
PRUNE_CHUNK: Final = 2000
# One encoder for every payload: json.dumps with options builds a new one per call.
_JSON: Final = json.JSONEncoder(ensure_ascii=False, allow_nan=False, separators=(",", ":"))


class Handback(NamedTuple):
    """A claim whose settlement could not be written, to be released once the queue can
    write: its session, and what the release must match (``QueueBase._check_of``)."""

    session_id: str
    check: int


class Settlement(Protocol):
    """A backend's write of one settlement, as the shared code reads it once done."""

    message_id: int
    matched: bool
    error: BaseException | None


class Claiming(Protocol):
    """A backend's claim of a session's head, as the shared code reads it once done."""

    error: BaseException | None
    head_available_at: EpochMs | None

    @property
    def row(self) -> Any: ...


class QueueBase(ABC):
    """A durable FIFO queue per session: the public API of both backends, and the hooks
    their claims and streams call (``memq.queue._hooks.QueueHooks``)."""

    _queries: ClassVar[Mapping[str, str]]  # the backend's form of queue.sql
    _changes: ChangeWatcher

    def __init__(self, *, settings: QueueSettings, clock: Clock) -> None:
        self.settings = settings
        self.clock = clock
        self._spans = StoredSpans.from_settings(settings)
        self._closed = False
        self._closing = anyio.Event()  # wakes the maintenance loops at close
        self._wakeups = Wakeups()
        self._active_claims: set[Claim] = set()
        self._session_owners: dict[str, SessionStream] = {}
        # Claims whose settlement could not be written (a full disk), by message id: each is
        # released with the next claim of its session, or by maintenance, whichever is first.
        self._handbacks: dict[int, Handback] = {}
        self._storage_listeners: list[Callable[[StorageError], None]] = []

    # -- the backend's primitives ----------------------------------------------------------

    @abstractmethod
    def _closed_text(self) -> str:
        """The message of ``QueueClosedError`` once closed."""

    @abstractmethod
    async def _submit_all(self, ops: Sequence[Any]) -> None:
        """Run the backend's operations together; errors are left on each."""

    @abstractmethod
    def _settle_op(
        self, action: SettleAction, message_id: int, check: int, details: FailDetails | None
    ) -> Settlement:
        """The backend's settlement of a claim that must match ``check``."""

    @abstractmethod
    def _claim_op(self, session_id: str) -> Claiming:
        """The backend's claim of the session's head."""

    @abstractmethod
    def _check_of(self, claim: Claim) -> int:
        """What a settlement of ``claim`` must match."""

    @abstractmethod
    def _check_of_row(self, row: Any) -> int:
        """What a settlement of the claim of a claimed ``row`` must match."""

    @abstractmethod
    async def _fetch(self, sql: str, parameters: Any) -> Sequence[Any]:
        """Rows of one read of the queue's tables (by column name)."""

    @abstractmethod
    async def _database_sizes(self) -> tuple[int, int]:
        """The database's bytes, and its write-ahead log's (0 where not the queue's)."""

    @abstractmethod
    async def _head_pending(self, session_id: str) -> bool:
        """Whether the session has a pending message that this queue may take."""

    @abstractmethod
    async def _backlog(self) -> Iterable[str]:
        """Sessions with a pending message that this queue may take."""

    @abstractmethod
    async def _delete_chunk(self, query: str, params: Mapping[str, Any]) -> int:
        """Run one chunk of a prune (a named query of queue.sql); rows deleted."""

    @abstractmethod
    async def _write_enqueue(self, op: EnqueueOp) -> None:
        """Write one message: committed (durable) when this returns."""

    @abstractmethod
    async def _reclaim_expired(
        self, held: list[int], expired: list[int], now: EpochMs
    ) -> Sequence[Any]:
        """Take back the claims held here past the stored lease (``reclaim_expired_leases``,
        ``held`` by this queue, ``expired`` among them); the rows taken back."""

    @abstractmethod
    async def _ack(self, claim: Claim, write: Effect | None) -> bool: ...

    @abstractmethod
    async def _stream_closed(self, stream: SessionStream) -> None: ...

    # -- opening and closing ---------------------------------------------------------------

    @property
    def closed(self) -> bool:
        """Whether ``close`` was called."""
        return self._closed

    @abstractmethod
    async def close(self) -> None:
        """Hand back unsettled claims and close. Safe to call twice."""

    @abstractmethod
    async def reopen(self) -> QueueBase:
        """A new queue on the same database, with this one's settings and clock (after its
        files were replaced, or a restart of the daemon's serving round)."""

    # -- what each backend does its own way --------------------------------------------------
    # The daemon, the memory code and the team code name ``QueueBase``: these are the
    # public operations whose SQL or mechanics differ between the backends.

    @abstractmethod
    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one write transaction of the group-commit writer and return its
        result; if ``fn`` raises, nothing it did is kept. On PostgreSQL ``fn`` gets a
        ``PgTransaction``: the same methods, rows read by column name alike."""

    @abstractmethod
    async def read(self, sql: str, parameters: Any = ()) -> list[Any]:
        """The rows of one read-only statement (read by column name)."""

    @abstractmethod
    async def retry(self, message_ids: Sequence[int] | None = None) -> list[int]:
        """Failed messages (these, or all) back to pending with fresh attempts; their ids."""

    @abstractmethod
    async def forget_session(self, session_id: str) -> int:
        """Delete every queue row of a session; how many."""

    @abstractmethod
    async def forget_session_from(self, session_id: str, from_message_id: int) -> int:
        """Delete a session's rows from ``from_message_id`` on (a revert); how many."""

    @abstractmethod
    async def move_session(self, from_session: str, to_session: str) -> tuple[int, int]:
        """Move a session's rows to another session key (a transfer); (moved, duplicates)."""

    @abstractmethod
    async def wait_for_foreign_rows(self) -> None:
        """Return when rows written by another process (or daemon) may be waiting."""

    @property
    def replaced(self) -> Replacement | None:
        """Set once the database's files were found replaced (SQLite); None otherwise."""
        return None

    @abstractmethod
    async def wait_replaced(self) -> Replacement | None:
        """Wait until the database's files are replaced (never, on a server)."""

    async def __aenter__(self) -> Self:
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
            raise QueueClosedError(self._closed_text())

    async def _sleep_unless_closed(self, seconds: float) -> None:
        with anyio.move_on_after(seconds):
            await self._closing.wait()

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
        await self._write_enqueue(op)
        return Enqueued(op.message_id, op.created)

    # -- consuming -------------------------------------------------------------------------

    def stream(self, session_id: str, *, linger: float = 5.0) -> SessionStream:
        """Claims of ``session_id``'s messages in FIFO order, one at a time.

        When nothing is pending the stream waits up to ``linger`` seconds for more (woken at
        once by an enqueue in this process; rows from other processes are noticed within
        ``change_check_interval``, or by notification on PostgreSQL), then ends. It also
        ends right after yielding a ``summarize`` message. One stream per session may hold
        a claim at a time; on PostgreSQL, a session whose lease another daemon holds yields
        nothing here until that daemon lets go.
        """
        self._check_open()
        return SessionStream(self, _check_id("session_id", session_id), linger)

    async def _claim(self, session_id: str) -> tuple[Claim | None, float | None]:
        """Claim the session's head if it is due. Returns the claim, or None and when (on
        ``clock.monotonic()``) the pending head becomes due, None when nothing is pending."""
        op = self._claim_op(session_id)
        # A claim whose settlement could not be written goes back first, in the same batch
        # (settlements run before claims): the session's head is claimed again, in order.
        handbacks = self._handback_ops({session_id})
        await self._submit_all([*handbacks, op])
        self._handed_back(handbacks)
        failed = next((o.error for o in handbacks if o.error is not None), None)
        if failed is not None and op.row is not None:
            # The writer split the two into batches and only the claim's committed: that
            # message must not pass the head, so it goes back with it, later.
            self._handbacks[int(op.row["id"])] = Handback(session_id, self._check_of_row(op.row))
            raise failed
        if op.error is not None:
            raise op.error
        if op.row is None:
            return None, self._not_claimed(op)
        return self._claimed(op.row), None

    def _not_claimed(self, op: Claiming) -> float | None:
        """When to look again after ``op`` claimed nothing: when its head becomes due."""
        return self._due_at(op.head_available_at)

    async def _hand_on(self, claim: Claim, row: Any) -> None:
        """The stream's next message (``row``), claimed in ``claim``'s ack commit: set as
        the next of the stream that holds ``claim``, or handed back when that stream was
        closed meanwhile."""
        following = self._claimed(row)
        stream = self._session_owners.get(claim.message.session_id)
        if stream is not None and stream._claims_ahead(claim):
            stream._set_next(following)
        else:
            await following.release()

    def _claimed(self, row: Any) -> Claim:
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

    def _due_at(self, available_at: EpochMs | None) -> float | None:
        """``available_at`` (a head's, as stored) on ``clock.monotonic()``."""
        if available_at is None:
            return None
        wait = seconds_until(available_at, self.clock.now())
        if wait > self.settings.max_wait:
            wait = 0.0  # stored before the wall clock was set back: due now (see claim_heads)
        return self.clock.monotonic() + max(0.0, wait)

    async def _settle(
        self, action: SettleAction, claim: Claim, details: FailDetails | None = None
    ) -> bool:
        """Write one settlement of ``claim``; whether it still held its message."""
        op = self._settle_op(action, claim.message.id, self._check_of(claim), details)
        await self._submit_all([op])
        if op.error is not None:
            raise op.error
        return op.matched

    async def _fail(self, claim: Claim, error: str) -> MessageStatus | None:
        self._check_open()
        message = claim.message
        exhausted = message.attempts >= self.settings.max_attempts
        status = MessageStatus.FAILED if exhausted else MessageStatus.PENDING
        now = self.clock.now()
        available_at = now if exhausted else later(now, self._spans.retry_wait(message.attempts))
        details = FailDetails(status.value, available_at, error)
        if not await self._settle(SettleAction.FAIL, claim, details):
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
        matched = await self._settle(SettleAction.RELEASE, claim, details)
        if matched:
            log.info(
                "message.deferred",
                session_id=message.session_id,
                message_id=message.id,
                delay=delay,
                reason=reason,
            )
        return matched

    async def _release(self, claim: Claim) -> bool:
        if self._closed:
            return False
        return await self._settle(SettleAction.RELEASE, claim)

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
        self._handbacks[message.id] = Handback(message.session_id, self._check_of(claim))
        claim.state = ClaimState.UNSETTLED
        self._claim_settled(claim)
        log.warning(
            "claim.unsettled",
            session_id=message.session_id,
            message_id=message.id,
            reason="its settlement could not be written; handed back when the queue can write",
        )

    def _handback_ops(self, sessions: set[str] | None = None) -> list[Settlement]:
        """Releases for the claims waiting to be handed back (of ``sessions``, or all)."""
        return [
            self._settle_op(SettleAction.RELEASE, message_id, handback.check, None)
            for message_id, handback in self._handbacks.items()
            if sessions is None or handback.session_id in sessions
        ]

    def _handed_back(self, ops: Sequence[Settlement]) -> None:
        """Forget the handbacks whose release committed (matched or not: a row taken back
        or deleted meanwhile needs nothing more)."""
        for op in ops:
            if op.error is None:
                self._handbacks.pop(op.message_id, None)

    def _handing_back(self, session_id: str) -> bool:
        """Whether a claim of the session waits to be handed back."""
        return any(h.session_id == session_id for h in self._handbacks.values())

    async def hand_back_unsettled(self) -> int:
        """Write the releases of claims whose settlement failed on a storage error; returns
        how many went back. Run by ``maintain``; a new claim of their session does it too.
        Raises ``StorageError`` when they still cannot be written."""
        self._check_open()
        ops = self._handback_ops()
        if not ops:
            return 0
        sessions = {self._handbacks[op.message_id].session_id for op in ops}
        await self._submit_all(ops)
        self._handed_back(ops)
        error = next((op.error for op in ops if op.error is not None), None)
        await self._sessions_handed_back(sorted(s for s in sessions if not self._handing_back(s)))
        if error is not None:
            raise error
        released = [op.message_id for op in ops if op.matched]
        if released:
            log.info("claim.handed_back", message_ids=released)
        return len(released)

    async def _sessions_handed_back(self, sessions: list[str]) -> None:
        """Every claim of these sessions that waited to be handed back now has been."""
        self._wakeups.wake(sessions)

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

    def _retried(self, rows: Sequence[Any]) -> list[int]:
        """Failed messages were made pending again (``retry_failed``): their ids, sorted."""
        self._wakeups.wake({str(row["session_id"]) for row in rows})
        retried = sorted(int(row["id"]) for row in rows)
        if retried:
            log.info("message.retried", message_ids=retried)
        return retried

    def _forgotten(self, deleted: Iterable[int]) -> None:
        """These messages' rows were deleted: their claims are lost, nothing goes back."""
        ids = list(deleted)
        self._lose_claims(ids)
        for message_id in ids:
            self._handbacks.pop(message_id, None)

    # -- inspecting ------------------------------------------------------------------------

    async def has_pending(self, session_id: str) -> bool:
        """Whether ``session_id`` has a pending message (due now or backing off) that this
        queue may take."""
        self._check_open()
        if self._handing_back(session_id):
            return True  # a claim waiting to be handed back: its message is still to do
        return await self._head_pending(session_id)

    async def sessions_with_backlog(self) -> list[str]:
        """Sessions that have a pending message this queue may take (the worker schedules
        these)."""
        self._check_open()
        sessions = set(await self._backlog())
        sessions.update(h.session_id for h in self._handbacks.values())
        return sorted(sessions)

    async def stats(self) -> QueueStats:
        """Counts by status, overall and per session, and the database's sizes."""
        self._check_open()
        rows = await self._fetch(self._queries["count_by_session_and_status"], None)
        per_session: dict[str, dict[str, int]] = {}
        for row in rows:
            per_session.setdefault(row["session_id"], {})[row["status"]] = int(row["n"])
        sessions = {sid: StatusCounts(**counts) for sid, counts in sorted(per_session.items())}
        totals = {
            status.value: sum(getattr(c, status.value) for c in sessions.values())
            for status in MessageStatus
        }
        database_bytes, wal_bytes = await self._database_sizes()
        return QueueStats(
            counts=StatusCounts(**totals),
            sessions=sessions,
            database_bytes=database_bytes,
            wal_bytes=wal_bytes,
            active_streams=len(self._session_owners),
        )

    async def failed(self, session_id: str | None = None, limit: int = 100) -> list[FailedMessage]:
        """Messages that ran out of attempts, oldest failure first."""
        self._check_open()
        params = {"session_id": session_id, "limit": limit}
        rows = await self._fetch(self._queries["list_failed"], params)
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
        rows = await self._fetch(self._queries["processing_messages"], {"limit": limit})
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
        rows = await self._fetch(self._queries["get_message"], {"id": message_id})
        return MessageStatus(rows[0]["status"]) if rows else None

    # -- maintenance -----------------------------------------------------------------------

    async def maintain(self) -> MaintenanceReport:
        """One pass of upkeep: hand back claims whose settlement could not be written (a
        full disk), take back the claims held here past their lease, prune old settled rows,
        and the backend's own (``_upkeep``)."""
        self._check_open()
        now = self.clock.now()
        await self.hand_back_unsettled()
        held, expired = self._claims_by_lease()
        reclaimed = await self._reclaim_expired(held, expired, now)
        self._reclaimed(reclaimed)
        processed, failed = await self._prune_retained(now)
        report = MaintenanceReport(
            leases_reclaimed=len(reclaimed),
            processed_pruned=processed,
            failed_pruned=failed,
            reclaimed_ids=tuple(int(row["id"]) for row in reclaimed),
        )
        return await self._upkeep(report)

    async def _upkeep(self, report: MaintenanceReport) -> MaintenanceReport:
        """The backend's own part of a maintenance pass; ``report`` with it."""
        return report

    def _lease_expired_text(self) -> str:
        """The ``last_error`` of a claim taken back for its lease."""
        return f"lease expired: not settled within {self.settings.lease:g} s"

    def _claims_by_lease(self) -> tuple[list[int], list[int]]:
        """Ids of the claims held here, and of those held past the stored lease, measured
        on the monotonic clock."""
        now = self.clock.monotonic()
        held = [c for c in self._active_claims if c.state is ClaimState.ACTIVE]
        limit = self.settings.stored_lease
        expired = [c.message.id for c in held if now - c.claimed_at > limit]
        return [c.message.id for c in held], expired

    def _reclaimed(self, rows: Sequence[Any]) -> None:
        """Claims whose lease ran out were taken back (``reclaim_expired_leases``)."""
        for row in rows:
            log.warning(
                "lease.expired",
                session_id=row["session_id"],
                message_id=row["id"],
                status=row["status"],
                attempt=row["attempts"],
            )
        self._lose_claims(int(row["id"]) for row in rows)
        self._wakeups.wake({str(row["session_id"]) for row in rows})

    async def _prune_retained(self, now: EpochMs) -> tuple[int, int]:
        """Delete settled rows past their retention: (processed, failed) rows deleted."""
        spans = self._spans
        processed = await self._prune("prune_processed", earlier(now, spans.processed_retention))
        failed = await self._prune("prune_failed", earlier(now, spans.failed_retention))
        if processed or failed:
            log.info("retention.pruned", processed=processed, failed=failed)
        return processed, failed

    async def _prune(self, query: str, before: EpochMs) -> int:
        total = 0
        params = {"before": before, "chunk": PRUNE_CHUNK}
        while True:
            deleted = await self._delete_chunk(query, params)
            total += deleted
            if deleted < PRUNE_CHUNK:
                return total

    async def run_maintenance(
        self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED
    ) -> None:
        """Run ``maintain`` every ``maintenance_interval`` seconds until the queue closes.
        Start it in the owner's task group: ``tg.start_soon(queue.run_maintenance)``."""
        task_status.started()
        await self._maintain_until_closed()

    async def _maintain_until_closed(self) -> None:
        while not self._closed and self._may_maintain():
            try:
                await self.maintain()
            except QueueClosedError:
                return
            except StorageError as exc:
                log.warning("maintenance.failed", error=str(exc))
            await self._sleep_unless_closed(self.settings.maintenance_interval)

    def _may_maintain(self) -> bool:
        """Whether maintenance goes on (SQLite's stops once writes stopped)."""
        return True


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
