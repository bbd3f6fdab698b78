"""A claimed message and the ways to settle it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING

import anyio

from memq.exceptions import (
    ClaimLostError,
    ClaimSettledError,
    DiskFullError,
    LeaseExpiredError,
    StorageError,
)
from memq.queue._models import Message, MessageStatus
from memq.queue._writer import Transaction

if TYPE_CHECKING:
    from memq.queue._hooks import QueueHooks

Effect = Callable[[Transaction], Awaitable[None]]
"""Writes a consumer's result inside the transaction that marks its message processed."""

MAX_ERROR_CHARS = 4000


class ClaimState(StrEnum):
    """Where a claim is, from its consumer's point of view."""

    ACTIVE = "active"  # claimed; the consumer owes an ack, a fail or a release
    ACKED = "acked"  # processed, result stored
    FAILED = "failed"  # attempt failed: retried after backoff, or out of attempts
    RELEASED = "released"  # handed back unprocessed, attempt refunded
    DEFERRED = "deferred"  # handed back to be tried after a delay, attempt refunded
    LOST = "lost"  # its lease ran out and the message was handed back by the watchdog
    # Settling it failed on a storage error (a full disk): the queue hands the message back
    # (pending again, attempt refunded) with its next write for the session, and no longer
    # counts the session as busy.
    UNSETTLED = "unsettled"


def describe_error(error: BaseException | str) -> str:
    """The text stored as a message's ``last_error``."""
    text = error if isinstance(error, str) else f"{type(error).__name__}: {error}"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 1] + "…"


class Claim:
    """One claimed message. Settle it exactly once: ``ack``, ``fail`` or ``release``.

    ``async with claim:`` settles it for you and bounds the work by the lease: a normal exit
    acks, an exception fails the attempt (and is swallowed, so the stream goes on), running
    past the lease fails it with ``LeaseExpiredError``, and cancellation releases it. A full
    disk (``DiskFullError``) is not the message's fault: the message is deferred by
    ``retry_delay`` without counting the attempt, and the error propagates so that the
    consumer backs off.

    A ``fail``, ``defer`` or ``release`` that cannot be written (``StorageError``) leaves the
    claim ``UNSETTLED``: the queue hands the message back as soon as it can write, and the
    session is free for a new stream at once.
    """

    def __init__(
        self, queue: QueueHooks, message: Message, lease_deadline: float, *, claimed_at: float
    ) -> None:
        self._queue = queue
        self.message = message
        self.state = ClaimState.ACTIVE
        self.lease_deadline = lease_deadline  # anyio.current_time() by which to settle
        self.claimed_at = claimed_at  # the queue clock's monotonic(): the watchdog's start
        self._scope: anyio.CancelScope | None = None

    def __repr__(self) -> str:
        m = self.message
        return f"<Claim message={m.id} session={m.session_id!r} kind={m.kind} {self.state}>"

    def _lost(self) -> ClaimLostError:
        return ClaimLostError(f"message {self.message.id}: lease expired, claim taken back")

    def _check_active(self) -> None:
        if self.state is ClaimState.LOST:
            raise self._lost()
        if self.state is not ClaimState.ACTIVE:
            raise ClaimSettledError(f"message {self.message.id} was already {self.state}")

    async def ack(self, write: Effect | None = None) -> None:
        """Mark the message processed; ``write`` stores its result in the same transaction.

        If ``write`` raises, nothing of it is kept, the claim stays active and the error
        propagates (fail the claim with it). ``ClaimLostError`` means the lease ran out and
        another attempt owns the message now: nothing was written.
        """
        self._check_active()
        matched = await self._queue._ack(self, write)
        self._settled(ClaimState.ACKED if matched else ClaimState.LOST)
        if not matched:
            raise self._lost()

    async def fail(self, error: BaseException | str) -> MessageStatus:
        """Record a failed attempt: ``PENDING`` again after a backoff, or ``FAILED`` when the
        message is out of attempts. Returns which."""
        self._check_active()
        try:
            status = await self._queue._fail(self, describe_error(error))
        except StorageError:
            self._queue._unsettled(self)
            raise
        self._settled(ClaimState.FAILED if status is not None else ClaimState.LOST)
        if status is None:
            raise self._lost()
        return status

    async def defer(self, delay: float, reason: str = "") -> None:
        """Hand the message back to be tried again in ``delay`` seconds (at most the queue's
        ``max_defer``), without counting this attempt: for failures that are not the
        message's fault (a rate limit, a model API that is down). The session waits for it,
        in order."""
        self._check_active()
        if delay < 0:
            raise ValueError(f"delay must not be negative, not {delay}")
        try:
            matched = await self._queue._defer(self, delay, reason)
        except StorageError:
            self._queue._unsettled(self)
            raise
        self._settled(ClaimState.DEFERRED if matched else ClaimState.LOST)
        if not matched:
            raise self._lost()

    async def release(self) -> None:
        """Hand the message back unprocessed; its attempt is not counted. Safe to call on a
        settled claim (does nothing). When the release cannot be written now, the queue
        writes it later (the claim is ``UNSETTLED``); nothing is raised."""
        if self.state is not ClaimState.ACTIVE:
            return
        try:
            matched = await self._queue._release(self)
        except StorageError:
            self._queue._unsettled(self)
            return
        self._settled(ClaimState.RELEASED if matched else ClaimState.LOST)

    async def _out_of_space(self, error: DiskFullError) -> None:
        """The ack could not be written for want of space: try the message again shortly,
        its attempt refunded; if even that cannot be written, the claim is ``UNSETTLED``."""
        if self.state is not ClaimState.ACTIVE:
            return
        # Failing that, UNSETTLED (handed back with the queue's next write for it), or LOST.
        with contextlib.suppress(StorageError, ClaimLostError):
            await self.defer(self._queue.settings.retry_delay, describe_error(error))

    def _settled(self, state: ClaimState) -> None:
        self.state = state
        self._queue._claim_settled(self)

    async def __aenter__(self) -> Claim:
        self._scope = anyio.CancelScope(deadline=self.lease_deadline)
        self._scope.__enter__()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        scope, self._scope = self._scope, None
        assert scope is not None, "Claim.__aexit__ without __aenter__"
        lease_ran_out = scope.__exit__(exc_type, exc, traceback) and scope.cancelled_caught
        if self.state is not ClaimState.ACTIVE:
            return bool(lease_ran_out)
        if lease_ran_out:
            lease = self._queue.settings.lease
            await self.fail(LeaseExpiredError(f"not settled within its {lease:g} s lease"))
            return True
        if exc is None:
            try:
                await self.ack()
            except DiskFullError as full:
                await self._out_of_space(full)
                raise
            return False
        if isinstance(exc, DiskFullError):
            await self._out_of_space(exc)
            return False
        if isinstance(exc, Exception):
            await self.fail(exc)
            return True
        with anyio.CancelScope(shield=True):
            await self.release()
        return False
