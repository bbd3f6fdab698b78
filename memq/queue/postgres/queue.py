"""``PgQueue``: ``memq.queue.Queue``'s public API on PostgreSQL, for several daemons sharing
one database.

What both backends share (claims, streams, settlement decisions, the inspection reads,
the maintenance loop) is ``memq.queue._core.QueueBase``; this class writes them its way. What
differs from SQLite:

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
import functools
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Final, TypeVar, cast

import anyio
import psycopg
import psycopg_pool
import structlog
from psycopg.rows import dict_row

from memq.exceptions import QueueClosedError, SessionBusyError, StorageError
from memq.queue._claim import Claim, ClaimState, Effect
from memq.queue._clock import SYSTEM_CLOCK, Clock, EpochMs, later
from memq.queue._core import Claiming, QueueBase, _check_id
from memq.queue._files import Replacement
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._writer import EnqueueOp, FailDetails, Operation, SettleAction, Transaction
from memq.queue.postgres.heartbeat import Heartbeat, SweepReport
from memq.queue.postgres.leases import LeaseBook
from memq.queue.postgres.listener import Listener, NotifyWatcher
from memq.queue.postgres.settings import PgSettings
from memq.queue.postgres.writer import (
    EVERY_SESSION,
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
# Seconds a close waits for the heartbeat task to finish its beat before cancelling it.
STOP_BEATING_WITHIN: Final = 10.0
T = TypeVar("T")

QUERIES: Final = load_queries("queue", POSTGRES)
PG_QUERIES: Final = load_queries("pg_queue", POSTGRES)
Pool = psycopg_pool.AsyncConnectionPool[psycopg.AsyncConnection[Any]]


class PgQueue(QueueBase):
    """A durable FIFO queue per session in a PostgreSQL schema that several daemons share.

    Open it with ``await PgQueue.open(url)``; close it with ``await queue.close()``.
    """

    _queries = QUERIES
    _changes: NotifyWatcher

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
        super().__init__(settings=settings, clock=clock)
        self.url = url
        self.pg_settings = pg
        self.options = options
        self.channel = channel
        self._pool = pool
        self._heartbeat = heartbeat
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
        self._tokens: dict[int, int] = {}  # message id -> the token of its claim here
        # Leases whose drop at a stream's end failed: session -> token, dropped again at
        # the next beat (this daemon's beats keep them alive: no sweep ever would).
        self._stale_leases: dict[str, int] = {}
        self._keep_alive: asyncio.Task[None] | None = None
        self._stop_beating = anyio.Event()  # the heartbeat task ends after its current beat

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
                else:
                    await self._announce_leaving()
            self._closed = True
            self._closing.set()
            self._wakeups.wake_all()
            self._changes.close()
            await self._listener.close()
            await self._writer.close()
            await self._pool.close()

    async def _announce_leaving(self) -> None:
        """Tell the other daemons to look at their backlogs again: the sessions this one let
        go as it stopped (its claims handed back, its streams ended with work left) are
        theirs now, and no enqueue may come soon to say so."""
        params = {"channel": self.channel, "payload": EVERY_SESSION}
        try:
            await self._in_transaction(lambda tx: tx.execute(PG_QUERIES["notify"], params))
        except (StorageError, QueueClosedError) as exc:
            log.warning("queue.leave_unannounced", error=str(exc))

    async def _stop_keep_alive(self) -> None:
        task, self._keep_alive = self._keep_alive, None
        if task is None:
            return
        # Asked to stop, not cancelled at once: a beat that found this daemon declared
        # dead registers it again, and a cancel landing after that insert committed but
        # before its id was read here would leave the new row behind for good (the close
        # unregisters the id it knows). Every statement has a time limit; past this bound
        # the task is cancelled anyway.
        self._stop_beating.set()
        with anyio.move_on_after(STOP_BEATING_WITHIN):
            await asyncio.shield(task)
        if not task.done():
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
        await self._submit_all([*ops, *handbacks])
        for claim in claims:
            claim.state = ClaimState.RELEASED
            self._claim_settled(claim)
        self._handed_back(handbacks)
        failed = next((op.error for op in [*ops, *handbacks] if op.error is not None), None)
        if failed is not None:
            # Not unregistering: that would drop the leases while a row is 'processing'.
            # The other daemons' sweep hands the rows back and drops the leases together.
            raise failed if isinstance(failed, StorageError) else StorageError(str(failed))

    def _closed_text(self) -> str:
        return "the PostgreSQL queue is closed"

    # -- heartbeats ------------------------------------------------------------------------

    async def _beat_and_sweep(self) -> None:
        while not self._closed:
            with anyio.move_on_after(self.pg_settings.heartbeat_interval):
                await self._stop_beating.wait()
            if self._closed or self._stop_beating.is_set():
                return
            try:
                if not await self._heartbeat.beat():
                    await self._fenced()
            except StorageError as exc:
                log.warning(
                    "daemon.heartbeat_failed", missed=self._heartbeat.missed, error=str(exc)
                )
            try:
                await self._drop_stale_leases()
            except QueueClosedError:
                return
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
        await self._drop_stale_leases()
        return alive

    async def _drop_stale_leases(self) -> None:
        """Drop again the leases whose drop failed; those that fail again are kept for the
        next beat. By token: a lease a stream here has taken again since carries a new one
        and stays."""
        ops = [LeaseDropOp(session, token) for session, token in self._stale_leases.items()]
        if not ops:
            return
        await self._writer.submit_all(ops)
        dropped = []
        for op in ops:
            if op.error is None and self._stale_leases.get(op.session) == op.token:
                del self._stale_leases[op.session]
                dropped.append(op.session)
        error = next((op.error for op in ops if op.error is not None), None)
        if error is not None:
            log.warning("lease.drop_failed", sessions=sorted(self._stale_leases), error=str(error))
        if dropped:
            log.info("lease.dropped_late", sessions=sorted(dropped))

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
        self._stale_leases.clear()  # and dropped those leases
        self._book.clear()
        if self._stop_beating.is_set():
            return  # closing: nothing to register again for
        await self._heartbeat.register()
        self._wakeups.wake_all()

    async def daemons(self) -> list[dict[str, Any]]:
        """Every registered daemon: id, host, pid, port, heartbeat age (ms), sessions held."""
        return await self.read(PG_QUERIES["live_daemons"])

    # -- producing -------------------------------------------------------------------------

    async def _write_enqueue(self, op: EnqueueOp) -> None:
        await self._writer.submit(op)

    # -- consuming -------------------------------------------------------------------------

    async def _submit_all(self, ops: Sequence[Any]) -> None:
        await self._writer.submit_all(ops)

    def _settle_op(
        self, action: SettleAction, message_id: int, check: int, details: FailDetails | None
    ) -> PgSettleOp:
        return PgSettleOp(action, message_id, check, details)

    def _claim_op(self, session_id: str) -> PgClaimOp:
        return PgClaimOp(session_id)

    def _check_of(self, claim: Claim) -> int:
        return self._tokens.get(claim.message.id, 0)  # 0: no claim token ever matches

    def _check_of_row(self, row: Any) -> int:
        return int(row["claim_token"])

    async def _claim(self, session_id: str) -> tuple[Claim | None, float | None]:
        if self._heartbeat.missed >= 2:
            # Acks would be fenced anyway once the others declare this daemon dead.
            raise StorageError("the database missed this daemon's last heartbeats: not claiming")
        return await super()._claim(session_id)

    def _not_claimed(self, op: Claiming) -> float | None:
        if isinstance(op, PgClaimOp) and op.busy:
            return None  # another daemon holds the session: its stream lets it go
        return super()._not_claimed(op)

    def _claimed(self, row: Any) -> Claim:
        claim = super()._claimed(row)
        self._tokens[claim.message.id] = int(row["claim_token"])
        return claim

    async def _ack(self, claim: Claim, write: Effect | None) -> bool:
        self._check_open()
        message, token = claim.message, self._check_of(claim)
        ack: PgSettleOp | PgCallOp[bool]
        if write is None:
            ack = PgSettleOp(SettleAction.ACK, message.id, token)
        else:
            effect = cast(Callable[[PgTransaction], Awaitable[None]], write)

            async def ack_and_write(tx: PgTransaction) -> bool:
                params = {"ids": [message.id], "tokens": [token], "now": tx.now_ms}
                if not await tx.fetchall(QUERIES["ack"], params):
                    return False  # taken away: the effect is not run, nothing is written
                await effect(tx)
                return True

            ack = PgCallOp(ack_and_write)
        follow = self._follow_up(claim, functools.partial(_acked, ack))
        await self._writer.submit_all([ack] if follow is None else [ack, follow])
        if ack.error is not None:
            raise ack.error
        if follow is not None and follow.row is not None:
            await self._hand_on(claim, follow.row)
        return _acked(ack)

    def _follow_up(self, claim: Claim, acked: Callable[[], bool]) -> PgClaimOp | None:
        """A claim of the next message to make with ``claim``'s ack, when the stream that
        holds ``claim`` will ask for it (``SessionStream._claims_ahead``)."""
        session_id = claim.message.session_id
        stream = self._session_owners.get(session_id)
        if stream is None or not stream._claims_ahead(claim):
            return None
        if self._handing_back(session_id) or self._heartbeat.missed >= 2:
            return None  # those go back first; a daemon that missed beats claims nothing
        return PgClaimOp(session_id, only_if=acked)

    def _claim_settled(self, claim: Claim) -> None:
        self._tokens.pop(claim.message.id, None)
        super()._claim_settled(claim)

    async def _stream_closed(self, stream: SessionStream) -> None:
        """A stream ended: let go of its session's lease, unless a claim or another stream
        here still holds the session. A drop that fails is tried again at the next beat
        (or made moot by the next stream here, which takes the lease under a new token).

        A claim of the session whose settlement failed is still 'processing': the lease is
        let go only after its hand-back is written, or another daemon could claim the next
        message before it."""
        session_id = stream.session_id
        if not self._may_drop(session_id, stream):
            return
        handbacks = self._handback_ops({session_id})
        if handbacks:
            try:
                await self._submit_all(handbacks)
            except QueueClosedError:
                return
            self._handed_back(handbacks)
            failed = next((op.error for op in handbacks if op.error is not None), None)
            if failed is not None:
                log.warning("lease.kept", session_id=session_id, error=str(failed))
                return
            if not self._may_drop(session_id, stream):  # a stream began meanwhile
                return
        if self._handing_back(session_id):
            return
        await self._let_go(session_id, handed_back=bool(handbacks))

    async def _let_go(self, session_id: str, *, handed_back: bool) -> None:
        """Drop this daemon's lease on the session. When its rows were just handed back,
        say so to every daemon, this one's session manager too (its own notifications do
        not reach it): with no stream left, nothing else would look at them before the
        session's next event. A drop that fails is tried again at the next beat."""
        token = self._book.forget(session_id)
        ops: list[Operation] = []
        if token is not None:
            ops.append(LeaseDropOp(session_id, token))
        if handed_back:
            ops.append(PgCallOp(lambda tx: self._notify(tx, [session_id])))
        try:
            await self._writer.submit_all(ops)
        except QueueClosedError:
            return
        if handed_back:
            self._changes.notified([session_id])
        error = next((op.error for op in ops if op.error is not None), None)
        if error is not None and token is not None:
            self._stale_leases[session_id] = token
            log.warning("lease.drop_failed", session_id=session_id, error=str(error))

    def _may_drop(self, session_id: str, stream: SessionStream | None) -> bool:
        """Whether no claim here, and no stream here but ``stream``, holds the session."""
        owner = self._session_owners.get(session_id)
        if self._closed or (owner is not None and owner is not stream):
            return False
        return not any(c.message.session_id == session_id for c in self._active_claims)

    async def _sessions_handed_back(self, sessions: list[str]) -> None:
        await super()._sessions_handed_back(sessions)
        # One that no stream here holds is let go: kept, the lease would bar every other
        # daemon from it until this one streams it again.
        for session_id in sessions:
            if self._may_drop(session_id, None):
                await self._let_go(session_id, handed_back=True)

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

    async def _fetch(self, sql: str, parameters: Any) -> Sequence[Any]:
        return await self.read(sql, parameters)

    async def _head_pending(self, session_id: str) -> bool:
        params = {"session_id": session_id, "daemon": self.daemon_id}
        return bool(await self.read(PG_QUERIES["free_head"], params))

    async def _backlog(self) -> Iterable[str]:
        rows = await self.read(PG_QUERIES["free_backlog"], {"daemon": self.daemon_id})
        return (str(row["session_id"]) for row in rows)

    async def _database_sizes(self) -> tuple[int, int]:
        return await self.database_bytes(), 0

    async def database_bytes(self) -> int:
        rows = await self.read(PG_QUERIES["database_bytes"])
        return int(rows[0]["bytes"])

    # SQLite's file watch has nothing to watch here (``replaced`` stays None).

    async def wait_replaced(self) -> Replacement | None:
        """Never returns: a server's database is not replaced under the queue."""
        await anyio.sleep_forever()
        return None  # pragma: no cover - never reached

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

        rows = await self._in_transaction(retry)
        return self._retried(rows)

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

        rows = await self._in_transaction(forget)
        if drop_lease:
            self._book.forget(session_id)
        self._forgotten(int(row["id"]) for row in rows)
        return len(rows)

    async def move_session(self, from_session: str, to_session: str) -> tuple[int, int]:
        """Give ``from_session``'s rows to ``to_session``; duplicates are dropped. Stop both
        streams first. Returns (moved, dropped).

        Unlike SQLite's, a claim here whose settlement failed is handed back in the move's
        own transaction, not left to the target's next claim: the move drops the source's
        lease, and another daemon could otherwise claim the target's next message while
        that one is still 'processing'. If the hand-back cannot be written, nothing moves
        (``StorageError``); a claim still in hand in either session, here or in another
        daemon, refuses the move (``SessionBusyError``)."""
        self._check_open()
        to_session = _check_id("session_id", to_session)
        params = {"from_id": from_session, "to_id": to_session, "session_id": from_session}
        handbacks = {
            message_id: handback
            for message_id, handback in self._handbacks.items()
            if handback.session_id in (from_session, to_session)
        }

        async def move(tx: PgTransaction) -> tuple[int, int]:
            if handbacks:
                release = {
                    "ids": list(handbacks),
                    "tokens": [h.check for h in handbacks.values()],
                    "available": [None] * len(handbacks),
                    "now": tx.now_ms,
                }
                await tx.fetchall(QUERIES["release"], release)
            busy = await tx.fetchall(PG_QUERIES["claims_in_sessions"], params)
            if busy:
                held = ", ".join(
                    f"message {row['id']} of {row['session_id']!r} (daemon {row['claimed_by']})"
                    for row in busy
                )
                raise SessionBusyError(f"not moved: still processing {held}; try again")
            moved = await tx.fetchall(QUERIES["move_session"], params)
            dropped = await tx.fetchall(QUERIES["drop_moved_duplicates"], params)
            await tx.execute(PG_QUERIES["drop_session_leases"], params)
            await self._notify(tx, [to_session])
            return len(moved), len(dropped)

        result = await self._in_transaction(move)
        for message_id in handbacks:
            self._handbacks.pop(message_id, None)
        if handbacks:
            log.info("claim.handed_back", message_ids=sorted(handbacks))
        self._book.forget(from_session)
        self._wakeups.wake([to_session])
        return result

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in a transaction of the group-commit writer (in a savepoint of its
        own) and return its result; if ``fn`` raises, nothing it did is kept."""
        # The memory and team code write against ``Transaction``'s methods, which a
        # PgTransaction has (its rows are dicts, read by column name as sqlite3.Row is).
        return await self._in_transaction(cast("Callable[[PgTransaction], Awaitable[T]]", fn))

    async def _in_transaction(self, fn: Callable[[PgTransaction], Awaitable[T]]) -> T:
        self._check_open()
        op: PgCallOp[T] = PgCallOp(fn)
        await self._writer.submit(op)
        return cast(T, op.result)

    # -- maintenance -----------------------------------------------------------------------

    # ``maintain`` is QueueBase's; VACUUM is autovacuum's.

    async def _reclaim_expired(
        self, held: list[int], expired: list[int], now: EpochMs
    ) -> Sequence[Any]:
        params = {
            "daemon": self.daemon_id,
            "held": held,
            "expired": expired,
            "now": now,
            "available_at": later(now, self._spans.retry_wait(1)),
            "max_attempts": self.settings.max_attempts,
            "error": self._lease_expired_text(),
        }
        return await self._in_transaction(
            lambda tx: tx.fetchall(QUERIES["reclaim_expired_leases"], params)
        )

    async def _delete_chunk(self, query: str, params: Mapping[str, Any]) -> int:
        return await self._in_transaction(lambda tx: tx.execute(QUERIES[query], params))


def _acked(ack: PgSettleOp | PgCallOp[bool]) -> bool:
    """Whether ``ack`` went through: it matched its claim, and was written."""
    if ack.error is not None:
        return False
    return ack.matched if isinstance(ack, PgSettleOp) else ack.result is True
