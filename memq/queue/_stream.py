"""The per-session generator: claims one message at a time, in order, lingering when idle."""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from memq.exceptions import ClaimError, SessionBusyError
from memq.queue._claim import Claim, ClaimState
from memq.queue._models import MessageKind

if TYPE_CHECKING:
    from memq.queue._queue import Queue


class SessionStream:
    """``async for claim in queue.stream(session_id)``: see ``Queue.stream``.

    Settle each claim before asking for the next. Use ``async with queue.stream(...) as s``
    (or ``aclose()``) when you may leave the loop early with a claim unsettled: closing hands
    it back to the queue.
    """

    def __init__(self, queue: Queue, session_id: str, linger: float) -> None:
        if linger < 0:
            raise ValueError(f"linger must not be negative, not {linger}")
        self._queue = queue
        self.session_id = session_id
        self.linger = linger
        self._current: Claim | None = None
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
        claim = await self._next_claim()
        if claim is None:
            await self.aclose()
            raise StopAsyncIteration
        self._current = claim
        return claim

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
            wakeup = queue._wakeups.arm(self.session_id)
            try:
                claim = await queue._claim(self.session_id)
                if claim is not None:
                    return claim
                due_at = await queue._head_due_at(self.session_id)
                if not await self._wait(wakeup, idle_until, due_at):
                    return None
            finally:
                queue._wakeups.disarm(self.session_id, wakeup)
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
        current = self._current
        if current is not None and current.state is ClaimState.ACTIVE:
            with anyio.CancelScope(shield=True):
                await current.release()  # also ends this stream's ownership of the session
        self._current = None

    async def __aenter__(self) -> SessionStream:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()
