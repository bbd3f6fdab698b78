"""Turning one claimed message into memory, exactly once."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import structlog

from memq.exceptions import (
    ClaimLostError,
    ProcessorAuthError,
    ProcessorUnavailableError,
    StorageError,
    TransientProcessorError,
)
from memq.memory.backend import MemoryBackend
from memq.memory.model_usage import with_model_usage
from memq.memory.origin import origin_project
from memq.memory.projects import project_for
from memq.memory.records import ProcessResult, SessionContext
from memq.memory.rewrites import with_rewrites
from memq.processors.base import Processor
from memq.processors.budget import Budgeted
from memq.queue import Claim, ClaimState, Effect, Message, MessageKind

log = structlog.get_logger("memq.processing")

# A rate limit or an outage is not the message's fault: its attempts are spared, and the
# wait grows up to a few minutes. Every few transient failures in a row still count as one
# attempt, so an endpoint that never recovers ends with the message failed, not looping.
TRANSIENT_DELAY_FIRST: Final = 1.0
TRANSIENT_DELAY_MAX: Final = 300.0
TRANSIENT_FAILURES_PER_ATTEMPT: Final = 5


class TransientBackoff:
    """Consecutive transient failures per message, and how long to wait after each."""

    def __init__(self) -> None:
        self._failures: dict[int, int] = {}

    def record(self, message_id: int, retry_after: float | None) -> tuple[float, bool]:
        """Count one more failure; returns (delay, whether it should count as an attempt)."""
        failures = self._failures.get(message_id, 0) + 1
        self._failures[message_id] = failures
        # The service's own Retry-After wins; otherwise the delay doubles from a second.
        delay = TRANSIENT_DELAY_FIRST * 2 ** (failures - 1) if retry_after is None else retry_after
        counts = failures % TRANSIENT_FAILURES_PER_ATTEMPT == 0
        return min(delay, TRANSIENT_DELAY_MAX), counts

    def forget(self, message_id: int) -> None:
        """The message succeeded or failed for good."""
        self._failures.pop(message_id, None)


async def processing_context(store: MemoryBackend, message: Message) -> SessionContext:
    """What the processor is shown with ``message``. Only a summary looks back over the
    session; loading that history for every message made processing slower the longer a
    session ran. A tool call sees its turn (a bounded read: the evidence of a fix or of a
    repeated read); anything else, nothing."""
    if message.kind is MessageKind.SUMMARIZE:
        return await store.context_for(message.session_id)
    if message.kind is MessageKind.OBSERVATION:
        return await store.turn_for(message.session_id)
    return SessionContext(session_key=message.session_id, project=None)


class ClaimHandler:
    """Reads the session's context, runs the processor, and acks with the memory write, so
    the records and the ``processed`` mark commit in one transaction.

    ``async with claim`` bounds the work by the lease, records an exception as a failed
    attempt, and hands the message back if the session is cancelled.
    """

    def __init__(
        self,
        processor_for: Callable[[str], Processor],
        store: MemoryBackend,
        *,
        pause: Callable[[str], None] | None = None,
        budget: Budgeted | None = None,
        on_stored: Callable[[], None] | None = None,
    ) -> None:
        # Gives a session's processor (its settings may name one); asked for each message.
        self._processor_for = processor_for
        self._store = store
        self._pause = pause
        self._budget = budget  # the daily token budget: extract once it is spent
        self._transient = TransientBackoff()
        self._on_stored = on_stored  # after an ack committed: wakes the live feed

    async def _process(
        self, processor: Processor, message: Message, context: SessionContext
    ) -> ProcessResult:
        """The processor's result, or extract's once the daily token budget is spent."""
        if self._budget is None:
            return await processor.process(message, context)
        return await self._budget.process(processor, message, context)

    def _effect(self, message: Message, result: ProcessResult) -> Effect:
        """The memory write of ``result``, with what the model cost (same transaction)."""
        cwd = message.payload.get("cwd") if isinstance(message.payload, dict) else None
        # A team server's event is filed under its repository (memq.memory.origin).
        project = origin_project(message.payload) or project_for(
            cwd if isinstance(cwd, str) else None
        )
        effect = self._store.effect(message, result, project=project)
        if result.usage is not None:
            effect = with_model_usage(effect, message, result.usage, project=project)
        if result.rewritten:  # a turn's records, described with its summary
            effect = with_rewrites(effect, message.session_id, result.rewritten)
        return effect

    async def __call__(self, claim: Claim) -> None:
        message = claim.message
        ids = {"session_id": message.session_id, "message_id": message.id}
        log.debug("message.claimed", **ids, kind=message.kind.value, attempt=message.attempts)
        try:
            async with claim:
                # Looked up per message: a session's settings apply from its next message.
                try:
                    processor = self._processor_for(message.session_id)
                except ProcessorUnavailableError as exc:
                    # Its API key is missing: not the message's fault. The message goes
                    # back untried; the session manager sees the session paused and stops.
                    await claim.defer(0, f"session paused: {exc}")
                    log.warning("message.waiting", **ids, reason=str(exc))
                    return
                context = await processing_context(self._store, message)
                try:
                    result = await self._process(processor, message, context)
                except TransientProcessorError as exc:
                    delay, counts = self._transient.record(message.id, exc.retry_after)
                    if counts:
                        raise  # ``async with claim`` records it as a failed attempt
                    await claim.defer(delay, f"{type(exc).__name__}: {exc}")
                    return
                except ProcessorAuthError as exc:
                    # Every message would fail the same way: pause, keep the message.
                    await claim.defer(0, f"processing paused: {exc}")
                    if self._pause is not None:
                        self._pause(str(exc))
                    return
                await claim.ack(self._effect(message, result))
                if self._on_stored is not None:
                    self._on_stored()
                if self._budget is not None:
                    self._budget.spent_now(result)
        except ClaimLostError:
            log.warning("message.lost", **ids, reason="lease expired before the ack")
            return
        except StorageError as exc:
            # Its memory could not be written (a full disk): the message was handed back,
            # its attempt refunded (or is, with the session's next claim). The session
            # manager backs off and tries again.
            log.warning("message.storage_failed", **ids, error=str(exc), claim=claim.state.value)
            raise
        if claim.state is not ClaimState.DEFERRED:
            self._transient.forget(message.id)
        if claim.state is ClaimState.ACKED:
            # Debug level, as ``event.accepted``: at info, formatting and writing this line
            # cost more than the offline processor's own work. The row's mark records it.
            log.debug("message.processed", **ids, kind=message.kind.value, attempt=message.attempts)
