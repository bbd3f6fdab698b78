"""The session manager: one generator task per session that has work, a few at a time.

A session's task streams its messages (``Queue.stream``) and hands each claim to the
handler. At most ``capacity`` sessions hold a processing slot at once; slots are granted in
arrival order (anyio's ``CapacityLimiter`` is FIFO). A session that is only lingering for more
work gives its slot up as soon as another session is waiting for one, and a busy session
yields its slot after ``quantum`` messages when others wait, so no session starves another.

A session whose claim or ack fails on a storage error (a full disk) stops streaming, gives its
slot back, and tries again after ``storage_retry_delay`` seconds: its message is handed back
by the queue (``ClaimState.UNSETTLED``), so processing resumes within seconds of the disk
having room again, not after a lease runs out.

Intake comes first: before each message a session waits its turn at the ``intake`` gate
(``memq.worker.intake_gate``), which holds processing back while hook events are being
taken in, for at most ``intake_wait`` seconds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import anyio
import structlog
from anyio.abc import TaskGroup, TaskStatus

from memq.exceptions import QueueClosedError, StorageError
from memq.queue import Claim, MessageKind, QueueBase
from memq.worker.intake_gate import DEFAULT_MAX_WAIT, IntakeGate

log = structlog.get_logger("memq.sessions")

Handler = Callable[[Claim], Awaitable[None]]


@dataclass(eq=False)
class _SessionTask:
    session_id: str
    scope: anyio.CancelScope = field(default_factory=anyio.CancelScope)
    # Set when work may have arrived after the stream last looked (see _run_session).
    more_work: bool = True
    busy: bool = False  # a claim is being handled
    waiting: bool = False  # a claim is held, waiting its turn behind the intake
    # Set while the task holds a slot and streams; cancelled to take a lingerer's slot.
    stream_scope: anyio.CancelScope | None = None
    done: anyio.Event = field(default_factory=anyio.Event)


class SessionManager:
    """Schedules per-session generators; see the module docstring.

    Args:
        queue: the open queue.
        handler: settles one claim (``async with claim: ...``).
        capacity: sessions processed at once.
        linger: seconds an idle session's stream waits for more work.
        quantum: messages a session handles before yielding its slot to a waiting one.
        is_paused: whether a session is paused (its events queue; nothing runs): by its
            settings, or because its processor cannot be created (``SessionPauses``).
        storage_retry_delay: seconds a session waits after a storage error before it looks
            at its messages again.
        intake_wait: seconds a message waits at most for events being taken in (``intake``).
    """

    def __init__(
        self,
        queue: QueueBase,
        handler: Handler,
        *,
        capacity: int = 4,
        linger: float = 5.0,
        quantum: int = 32,
        is_paused: Callable[[str], bool] | None = None,
        storage_retry_delay: float = 1.0,
        intake_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self._queue = queue
        self._handler = handler
        self._limiter = anyio.CapacityLimiter(capacity)
        self.linger = linger
        self._quantum = quantum
        self._session_paused = is_paused or _never_paused
        self._storage_retry_delay = storage_retry_delay
        # The intake marks events in flight here; each message waits its turn (see above).
        self.intake = IntakeGate(max_wait=intake_wait, clock=queue.clock)
        self._tasks: dict[str, _SessionTask] = {}
        self._task_group: TaskGroup | None = None
        self._stopping = False
        self.pause_reason: str | None = None  # why processing is paused, when it is
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        self._grace = 0.0
        self._work_listeners: list[Callable[[str], None]] = []

    @property
    def active_sessions(self) -> list[str]:
        """Sessions whose generator task is running (streaming or waiting for a slot)."""
        return sorted(self._tasks)

    @property
    def processing(self) -> bool:
        """Whether any session is handling a message right now."""
        return any(task.busy for task in self._tasks.values())

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until ``stop``; at start, schedule every session that has a backlog."""
        try:
            async with anyio.create_task_group() as tg:
                self._task_group = tg
                backlog = await self._queue.sessions_with_backlog()
                for session_id in backlog:
                    self.notify(session_id)
                if backlog:
                    log.info("sessions.resumed", sessions=len(backlog))
                tg.start_soon(self._discover_foreign_rows)
                task_status.started()
                await self._stop.wait()
                await self._wind_down()
                tg.cancel_scope.cancel()
        finally:
            self._stopped.set()

    async def _discover_foreign_rows(self) -> None:
        """Schedule sessions whose rows another process wrote (the hook's fallback, while
        this daemon was slow to answer): no enqueue here announced them. The queue looks for
        such rows (``Queue.wait_for_foreign_rows``); its own writes never wake this."""
        while True:
            try:
                await self._queue.wait_for_foreign_rows()
                for session_id in await self._queue.sessions_with_backlog():
                    if session_id not in self._tasks:
                        self.notify(session_id)
            except QueueClosedError:
                return
            except StorageError as exc:
                # A read that failed must not take the daemon down; the queue looks again
                # after its interval.
                log.warning("sessions.rescan_failed", error=str(exc))

    @property
    def paused(self) -> bool:
        """Whether processing is paused (see ``pause``)."""
        return self.pause_reason is not None

    def pause(self, reason: str) -> None:
        """Stop processing every session until ``resume``; events still queue. Used when
        the model API refuses memq's credentials: retrying would fail every message."""
        if self.pause_reason is None:
            log.error("processing.paused", reason=reason)
        self.pause_reason = reason
        for task in self._tasks.values():
            if not task.busy:
                # Not handling one (a claim waiting its turn goes back untried); busy ones stop
                # after their message.
                task.scope.cancel()

    async def resume(self) -> bool:
        """Resume after ``pause``; every session with a backlog is scheduled again.
        Returns whether processing was paused."""
        if self.pause_reason is None:
            return False
        log.info("processing.resumed", reason=self.pause_reason)
        self.pause_reason = None
        for session_id in await self._queue.sessions_with_backlog():
            self.notify(session_id)
        return True

    def on_work(self, listener: Callable[[str], None]) -> None:
        """Call ``listener`` with the session of every ``notify``, paused or not (the
        forwarder to the team server wakes on it). It must not raise."""
        self._work_listeners.append(listener)

    def notify(self, session_id: str) -> None:
        """Work arrived for ``session_id``: make sure a task will look at it."""
        for listener in self._work_listeners:
            listener(session_id)
        if self._task_group is None or self._halted(session_id):
            return  # a paused session is scheduled again by ``resume`` or ``setting_changed``
        task = self._tasks.get(session_id)
        if task is not None:
            task.more_work = True
            return
        task = _SessionTask(session_id)
        self._tasks[session_id] = task
        self._task_group.start_soon(self._run_session, task, name=f"session {session_id}")

    async def forget(self, session_id: str) -> None:
        """Cancel the session's task and wait until it is gone (its claim is handed back)."""
        task = self._tasks.get(session_id)
        if task is None:
            return
        task.scope.cancel()
        await task.done.wait()

    async def setting_changed(self, session_id: str) -> None:
        """A session's settings changed: a paused one stops after its current message, a
        resumed one with a backlog is scheduled."""
        task = self._tasks.get(session_id)
        if self._session_paused(session_id):
            if task is not None and not task.busy:
                # Not handling one (a claim waiting its turn goes back untried); a busy one
                # stops after its message.
                task.scope.cancel()
        elif await self._queue.has_pending(session_id):
            self.notify(session_id)

    async def expire(self, session_id: str) -> None:
        """The session has been idle past its TTL: end its task if it is only lingering. A
        session handling a message, or with messages still pending, is not idle and is left
        alone (its stream ends by itself after its linger). An event that arrives while the
        task ends is scheduled again, not dropped."""
        task = self._tasks.get(session_id)
        if task is None or task.busy or task.waiting or await self._queue.has_pending(session_id):
            return
        if self._tasks.get(session_id) is not task or task.busy or task.waiting:
            return  # it ended, or took a new message, while we looked
        task.scope.cancel()  # it holds no claim; one being taken right now is handed back
        await task.done.wait()
        log.debug("session.generator_expired", session_id=session_id)
        if await self._queue.has_pending(session_id):
            self.notify(session_id)

    async def stop(self, grace: float) -> None:
        """Stop scheduling; let in-flight messages finish within ``grace`` seconds, then
        cancel (unfinished claims go back to pending). Returns when every task has ended."""
        self._grace = grace
        self._stop.set()
        await self._stopped.wait()

    async def _wind_down(self) -> None:
        self._stopping = True
        for task in self._tasks.values():
            if not task.busy:
                task.scope.cancel()  # lingering, waiting for a slot or its turn: nothing begun
        with anyio.move_on_after(self._grace):
            for task in list(self._tasks.values()):
                await task.done.wait()
        for task in list(self._tasks.values()):
            task.scope.cancel()
        for task in list(self._tasks.values()):
            await task.done.wait()

    async def _run_session(self, task: _SessionTask) -> None:
        try:
            with task.scope:
                while task.more_work and not self._halted(task.session_id):
                    task.more_work = False
                    self._preempt_a_lingerer()
                    try:
                        async with self._limiter:
                            await self._drain(task)
                    except StorageError as exc:
                        await self._back_off(task, exc)
        except Exception:
            # A bug in the handler or the queue must not take the daemon down with it;
            # the message was failed or handed back by ``async with claim``.
            log.exception("session.crashed", session_id=task.session_id)
        finally:
            if self._tasks.get(task.session_id) is task:
                del self._tasks[task.session_id]
            task.done.set()

    async def _drain(self, task: _SessionTask) -> None:
        # Nobody waiting for a slot: linger for more work. Otherwise drain and go.
        linger = 0.0 if self._limiter.statistics().tasks_waiting else self.linger
        task.stream_scope = scope = anyio.CancelScope()
        try:
            with scope:
                await self._stream(task, linger)
        finally:
            task.stream_scope = None
        if scope.cancelled_caught and not self._stopping:
            # Preempted while lingering; a message that arrived at that very moment was
            # handed back, so look once more before letting the task end.
            task.more_work = task.more_work or await self._queue.has_pending(task.session_id)

    async def _stream(self, task: _SessionTask, linger: float) -> None:
        handled = 0
        async with self._queue.stream(task.session_id, linger=linger) as stream:
            async for claim in stream:
                task.more_work = False
                # Not busy while it waits: a pause, forget or stop hands the claim back.
                task.waiting = True
                try:
                    await self.intake.turn()
                finally:
                    task.waiting = False
                task.busy = True
                try:
                    await self._handler(claim)
                finally:
                    task.busy = False
                handled += 1
                if claim.message.kind is MessageKind.SUMMARIZE:
                    task.more_work = True  # the stream ends after a summarize; look again
                if self._halted(task.session_id):
                    return
                if handled >= self._quantum and self._limiter.statistics().tasks_waiting:
                    task.more_work = True  # come back after the sessions waiting for a slot
                    return

    async def _back_off(self, task: _SessionTask, error: StorageError) -> None:
        """A claim or a settlement could not be written: the queue has handed the message
        back (or will, with this session's next claim). Wait a moment, slot given up, then
        look again; a forget, pause or stop in the meantime ends the wait."""
        task.more_work = True
        log.warning(
            "session.storage_failed",
            session_id=task.session_id,
            error=str(error),
            retry_in=self._storage_retry_delay,
        )
        await anyio.sleep(self._storage_retry_delay)

    def _halted(self, session_id: str) -> bool:
        """Whether the session must stop taking messages: stopping, or paused (all of
        processing, or this session by its settings)."""
        return self._stopping or self.paused or self._session_paused(session_id)

    def _preempt_a_lingerer(self) -> None:
        """When no slot is free, end one session that is only lingering, to free its slot."""
        if self._limiter.available_tokens > 0:
            return
        for other in self._tasks.values():
            if other.stream_scope is not None and not (other.busy or other.waiting):
                other.stream_scope.cancel()
                return


def _never_paused(session_id: str) -> bool:
    return False
