"""The per-session generator: claims one message at a time, in order, lingering when idle."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from memq.exceptions import ClaimError, SessionBusyError
from memq.kinds import MessageKind
from memq.queue._claim import Claim, ClaimState

if TYPE_CHECKING:
    from memq.queue._hooks import QueueHooks


class SessionStream:
    """``async for claim in queue.stream(session_id)``: see ``Queue.stream``.

    Settle each claim before asking for the next. Use ``async with queue.stream(...) as s``
    (or ``aclose()``) when you may leave the loop early with a claim unsettled: closing hands
    it back to the queue.

    Inside ``async with``, acking a claim also claims the session's next message in the same
    commit, ready for the next iteration: a stream that is sure to be closed can take it
    early (closing hands it back, its attempt refunded, like any unsettled claim).
    """

    def __init__(self, queue: QueueHooks, session_id: str, linger: float) -> None:
        if linger < 0:
            raise ValueError(f"linger must not be negative, not {linger}")
        self._queue = queue
        self.session_id = session_id
        self.linger = linger
        self._current: Claim | None = None
        self._next: Claim | None = None  # claimed with the ack of ``_current``
        self._managed = False  # used as a context manager: sure to be closed
        self._finished = False

    def __aiter__(self) -> SessionStream:
        return self

    async def __anext__(self) -> Claim:
        current = self._current
        if current is not None and current.state is ClaimState.ACTIVE:
            await self.aclose()
            raise ClaimError(
                f"message {current.message.id} was not settled before the next claim was "
                "asked for; it was handed back (use `async with claim:` or ack/fail it)"
            )
        self._current = None
        if self._finished:
            raise StopAsyncIteration
        if current is not None and current.message.kind is MessageKind.SUMMARIZE:
            # A summarize request ends the batch: the worker starts a new stream for more.
            await self.aclose()
            raise StopAsyncIteration
        claim = self._take_next() or await self._next_claim()
        if claim is None:
            await self.aclose()
            raise StopAsyncIteration
        self._current = claim
        return claim

    def _claims_ahead(self, claim: Claim) -> bool:
        """Whether the ack of ``claim`` should claim the next message for this stream: it is
        this stream's current claim, the stream will ask for another, and will be closed."""
        return (
            self._managed
            and not self._finished
            and self._current is claim
            and self._next is None
            and claim.message.kind is not MessageKind.SUMMARIZE
        )

    def _set_next(self, claim: Claim) -> None:
        """The next message, claimed with the current one's ack."""
        self._next = claim

    def _take_next(self) -> Claim | None:
        claim, self._next = self._next, None
        if claim is None or claim.state is not ClaimState.ACTIVE:
            return None  # handed back meanwhile (the queue closed, the session forgotten)
        self._queue._session_owners[self.session_id] = self
        return claim

    def _holds(self, claim: Claim) -> bool:
        return claim is self._current or claim is self._next

    def _holds_other_than(self, claim: Claim) -> bool:
        """Whether an active claim other than ``claim`` keeps this stream owning its
        session."""
        return any(
            held is not None and held is not claim and held.state is ClaimState.ACTIVE
            for held in (self._current, self._next)
        )

    async def _next_claim(self) -> Claim | None:
        queue = self._queue
        owner = queue._session_owners.get(self.session_id)
        if owner is not None and owner is not self:
            raise SessionBusyError(f"session {self.session_id!r} already has an active stream")
        queue._session_owners[self.session_id] = self
        try:
            claim = await self._wait_for_claim()
        finally:
            if queue._session_owners.get(self.session_id) is self:
                del queue._session_owners[self.session_id]
        if claim is not None:
            # Ownership rides with the unsettled claim; Queue._claim_settled drops it.
            queue._session_owners[self.session_id] = self
        return claim

    async def _wait_for_claim(self) -> Claim | None:
        queue = self._queue
        idle_until = queue.clock.monotonic() + self.linger
        while not queue.closed:
            waiter = queue._wakeups.arm(self.session_id)
            try:
                claim, due_at = await queue._claim(self.session_id)
                if claim is not None:
                    return claim
                waiter.waiting = True  # from now on an enqueue may claim for this stream
                woken = await self._wait(waiter.event, idle_until, due_at)
                claim = await waiter.take()
                if claim is not None:
                    return claim
                if not woken:
                    return None
            finally:
                queue._wakeups.disarm(self.session_id, waiter)
                await waiter.abandon()  # a claim made for it that it did not take goes back
        return None

    async def _wait(self, wakeup: anyio.Event, idle_until: float, due_at: float | None) -> bool:
        """Sleep until woken, until the head is due, or until the linger ends (False).

        A session whose head is backing off waits for it past the linger: that message is
        this session's unfinished work, and the backoff is short by design.
        """
        queue = self._queue
        while not wakeup.is_set():
            now = queue.clock.monotonic()
            until = due_at if due_at is not None else idle_until
            if now >= until:
                return due_at is not None
            with anyio.move_on_after(min(until - now, queue._changes.interval)):
                await wakeup.wait()
            if not wakeup.is_set():
                await queue._changes.poll()
        return True

    async def aclose(self) -> None:
        """End the stream; an unsettled claim goes back to the queue, its attempt refunded."""
        self._finished = True
        held = [c for c in (self._current, self._next) if c is not None]
        with anyio.CancelScope(shield=True):
            for claim in held:
                await claim.release()  # if still active; also ends the stream's ownership
            await self._queue._stream_closed(self)
        self._current = self._next = None

    async def __aenter__(self) -> SessionStream:
        self._managed = True
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
