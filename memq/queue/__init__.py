"""The durable per-session queue.

    from memq.queue import Queue

    queue = await Queue.open(path)
    message_id, created = await queue.enqueue(session_id, "observation", payload, dedupe_key)
    async for claim in queue.stream(session_id, linger=5.0):
        async with claim:               # ack on success, fail on error, release on cancel
            await process(claim.message)
    await queue.close()

This package knows nothing of HTTP, hooks or processors; the worker uses it through the names
exported here. ``QueueBase`` is the type of a queue of either backend (``Queue`` on SQLite,
``memq.queue.postgres.PgQueue`` on PostgreSQL).
"""

from __future__ import annotations

from memq.kinds import MessageKind
from memq.queue._claim import Claim, ClaimState, Effect
from memq.queue._clock import SYSTEM_CLOCK, Clock, EpochMs, SpanMs, earlier, later, span
from memq.queue._core import QueueBase
from memq.queue._files import FileProblem, Installed, Replacement
from memq.queue._lock import InstanceLock, lock_path_for
from memq.queue._models import (
    Enqueued,
    FailedMessage,
    MaintenanceReport,
    Message,
    MessageStatus,
    QueueStats,
    StatusCounts,
)
from memq.queue._queue import Queue
from memq.queue._settings import QueueSettings
from memq.queue._stream import SessionStream
from memq.queue._writer import Transaction, is_out_of_space
from memq.storage.connection import Synchronous

__all__ = [
    "SYSTEM_CLOCK",
    "Claim",
    "ClaimState",
    "Clock",
    "Effect",
    "Enqueued",
    "EpochMs",
    "FailedMessage",
    "FileProblem",
    "Installed",
    "InstanceLock",
    "MaintenanceReport",
    "Message",
    "MessageKind",
    "MessageStatus",
    "Queue",
    "QueueBase",
    "QueueSettings",
    "QueueStats",
    "Replacement",
    "SessionStream",
    "SpanMs",
    "StatusCounts",
    "Synchronous",
    "Transaction",
    "earlier",
    "is_out_of_space",
    "later",
    "lock_path_for",
    "span",
]
