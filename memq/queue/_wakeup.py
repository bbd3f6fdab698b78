"""Waking idle streams: at once for this process's writes, about once a second for others'.

An idle stream arms a ``Waiter`` for its session before it looks for work, so a commit that
lands between the look and the wait still wakes it. Once the stream waits, an enqueue to its
session claims the new head in the enqueue's own transaction and hands the claim over with the
wake-up (``Handoff``): the stream needs no trip to the database of its own before it yields.

Rows written by another process (the hook's fallback) cannot wake anyone in-process; SQLite's
``PRAGMA data_version``, read on the queue's write connection, moves only when another
connection committed, and then one query finds which waiting sessions have work. Whoever else
needs to hear of those rows (the worker's session manager, for sessions no stream is waiting
on) waits on the same look.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

import anyio

from memq.exceptions import QueueClosedError
from memq.queue._claim import Claim, ClaimState
from memq.queue._writer import ClaimOp


class Handoff(ClaimOp):
    """A claim of a waiting stream's session, made in the transaction of an enqueue to it."""

    __slots__ = ("waiter",)

    def __init__(self, session: str, waiter: Waiter) -> None:
        super().__init__(session)
        self.waiter = waiter


class Waiter:
    """An idle stream's place in ``Wakeups``: the event that wakes it, and a claim made for
    it while it waited."""

    __slots__ = ("claim", "event", "handoff", "waiting")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.waiting = False  # it looked and found nothing: a claim may be made for it
        self.handoff: Handoff | None = None  # the claim made for it, once its batch runs
        self.claim: Claim | None = None  # what that claim gave, once committed

    @property
    def open_for_handoff(self) -> bool:
        """No claim is being made for it, and none was (one that found nothing due, or
        failed, does not count)."""
        handoff = self.handoff
        return handoff is None or (handoff.done and self.claim is None)

    async def take(self) -> Claim | None:
        """The claim made for this waiter, if any and still active (a closing queue hands it
        back first): waits for the batch making it to end (a commit away)."""
        handoff = self.handoff
        if handoff is not None and not handoff.done:
            await handoff.wakeup.wait()
        claim, self.claim = self.claim, None
        return claim if claim is not None and claim.state is ClaimState.ACTIVE else None

    async def abandon(self) -> None:
        """The stream leaves without taking what was made for it: hand it back. Shielded
        from cancellation (this is a stream's clean-up)."""
        if self.open_for_handoff:
            return
        with anyio.CancelScope(shield=True):
            claim = await self.take()
            if claim is not None:
                await claim.release()


class Wakeups:
    """One waiter per idle session, woken when work may have arrived for it."""

    def __init__(self) -> None:
        self._waiters: dict[str, Waiter] = {}
        self._closed = False

    def arm(self, session_id: str) -> Waiter:
        """A fresh waiter for ``session_id``; call before checking for work."""
        waiter = Waiter()
        self._waiters[session_id] = waiter
        return waiter

    def disarm(self, session_id: str, waiter: Waiter) -> None:
        """Forget ``waiter`` unless a newer one replaced it."""
        if self._waiters.get(session_id) is waiter:
            del self._waiters[session_id]

    def handoffs(self, session_ids: Iterable[str]) -> list[Handoff]:
        """Claims to make for the streams of these sessions that wait with none made yet."""
        handoffs: list[Handoff] = []
        if self._closed:
            return handoffs
        for session_id in session_ids:
            waiter = self._waiters.get(session_id)
            if waiter is not None and waiter.waiting and waiter.open_for_handoff:
                waiter.handoff = Handoff(session_id, waiter)
                handoffs.append(waiter.handoff)
        return handoffs

    def wake(self, session_ids: Iterable[str]) -> None:
        """Wake the idle streams of these sessions, if any."""
        for session_id in session_ids:
            waiter = self._waiters.get(session_id)
            if waiter is not None:
                waiter.event.set()

    def close(self) -> list[Handoff]:
        """Make no more claims for waiters; returns those whose batch has not ended yet."""
        self._closed = True
        return [
            waiter.handoff
            for waiter in self._waiters.values()
            if waiter.handoff is not None and not waiter.handoff.done
        ]

    def wake_all(self) -> None:
        """Wake every idle stream (the queue is closing)."""
        self.wake(list(self._waiters))

    def armed(self) -> list[str]:
        """Sessions with an idle stream."""
        return list(self._waiters)


class ForeignChangeWatcher:
    """Polls for other processes' commits at most once per interval, however many ask: idle
    streams (``poll``) and anyone who waits for such rows (``wait``)."""

    def __init__(
        self,
        wakeups: Wakeups,
        interval: float,
        read_version: Callable[[], Awaitable[int]],
        sessions_with_pending: Callable[[list[str]], Awaitable[list[str]]],
        *,
        version: int | None = None,
    ) -> None:
        self._wakeups = wakeups
        self.interval = interval
        self._read_version = read_version
        self._sessions_with_pending = sessions_with_pending
        self._version = version  # as last read; None: the first read only records it
        self._checked_at = -float("inf")
        self._checking = False
        self._changed = anyio.Event()  # set by the next poll that sees a change
        self._closed = False
        self.checks = 0  # polls that queried the database, for tests

    async def poll(self) -> None:
        """Check for commits by other connections; wake idle sessions that now have work,
        and whoever ``wait``s."""
        now = anyio.current_time()
        if self._checking or now - self._checked_at < self.interval:
            return
        self._checking = True
        self._checked_at = now
        try:
            self.checks += 1
            version = await self._read_version()
            if version == self._version:
                return
            first, self._version = self._version is None, version
            if first:
                return
            changed, self._changed = self._changed, anyio.Event()
            changed.set()
            armed = self._wakeups.armed()
            if armed:
                self._wakeups.wake(await self._sessions_with_pending(armed))
        finally:
            self._checking = False

    async def wait(self) -> None:
        """Return after the next poll that sees another connection's commit; poll every
        ``interval`` meanwhile. Raises ``QueueClosedError`` once closed."""
        changed = self._changed
        while not changed.is_set() and not self._closed:
            with anyio.move_on_after(self.interval):
                await changed.wait()
            if not changed.is_set() and not self._closed:
                await self.poll()
        if self._closed:
            raise QueueClosedError

    def close(self) -> None:
        """The queue closed: end every ``wait``."""
        self._closed = True
        self._changed.set()
