"""Turning one claimed message into memory, exactly once."""

from __future__ import annotations

import structlog

from memq.exceptions import ClaimLostError
from memq.memory.store import MemoryStore
from memq.processors.base import Processor
from memq.queue import Claim, ClaimState
from memq.worker.projects import project_for

log = structlog.get_logger("memq.processing")


class ClaimHandler:
    """Reads the session's context, runs the processor, and acks with the memory write, so
    the records and the ``processed`` mark commit in one transaction.

    ``async with claim`` bounds the work by the lease, records an exception as a failed
    attempt, and hands the message back if the session is cancelled.
    """

    def __init__(self, processor: Processor, store: MemoryStore) -> None:
        self._processor = processor
        self._store = store

    async def __call__(self, claim: Claim) -> None:
        message = claim.message
        bound = log.bind(session_id=message.session_id, message_id=message.id)
        bound.debug("message.claimed", kind=message.kind.value, attempt=message.attempts)
        try:
            async with claim:
                context = await self._store.context_for(message.session_id)
                result = await self._processor.process(message, context)
                cwd = message.payload.get("cwd") if isinstance(message.payload, dict) else None
                project = project_for(cwd if isinstance(cwd, str) else None)
                await claim.ack(self._store.effect(message, result, project=project))
        except ClaimLostError:
            bound.warning("message.lost", reason="lease expired before the ack")
            return
        if claim.state is ClaimState.ACKED:
            bound.info("message.processed", kind=message.kind.value, attempt=message.attempts)
