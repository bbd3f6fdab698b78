"""The queue's value types: states, messages and the figures it reports (the kinds are
``memq.kinds``, which the hook names without loading the queue)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, NamedTuple

from memq.kinds import MessageKind


class MessageStatus(StrEnum):
    """Where a message is in its life. Stored as text in ``pending_messages.status``."""

    # Accepted and durable; claimable once ``available_at`` has passed (retry backoff).
    PENDING = "pending"
    # Claimed by the consumer that holds its lease; returns to PENDING if that consumer dies.
    PROCESSING = "processing"
    # Done: its result was stored in the same transaction; the payload is dropped.
    PROCESSED = "processed"
    # Out of attempts; kept with its last error until retried or pruned.
    FAILED = "failed"


class Enqueued(NamedTuple):
    """What ``Queue.enqueue`` returns: the message id, and False when it was a duplicate."""

    message_id: int
    created: bool


def from_epoch_ms(value: int) -> datetime:
    """A stored millisecond timestamp as an aware UTC datetime."""
    return datetime.fromtimestamp(value / 1000, tz=UTC)


@dataclass(frozen=True, slots=True)
class Message:
    """A claimed message, as its consumer sees it."""

    id: int
    session_id: str
    kind: MessageKind
    payload: Any
    dedupe_key: str | None
    attempts: int  # including the attempt this claim is
    created_at: datetime  # when the event was accepted: results carry this time


@dataclass(frozen=True, slots=True)
class FailedMessage:
    """A message that ran out of attempts, for a person to inspect and retry."""

    id: int
    session_id: str
    kind: MessageKind
    payload: Any
    dedupe_key: str | None
    attempts: int
    created_at: datetime
    failed_at: datetime
    last_error: str | None


@dataclass(frozen=True, slots=True)
class StatusCounts:
    """How many messages are in each status."""

    pending: int = 0
    processing: int = 0
    processed: int = 0
    failed: int = 0

    @property
    def total(self) -> int:
        """All messages."""
        return self.pending + self.processing + self.processed + self.failed

    def as_dict(self) -> dict[str, int]:
        """``{status: count}`` with every status present, zeros included."""
        return {status.value: getattr(self, status.value) for status in MessageStatus}


@dataclass(frozen=True, slots=True)
class QueueStats:
    """A snapshot of the queue for ``memq status``."""

    counts: StatusCounts
    sessions: Mapping[str, StatusCounts]
    database_bytes: int
    wal_bytes: int
    active_streams: int = 0


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    """What one maintenance pass did."""

    leases_reclaimed: int = 0
    processed_pruned: int = 0
    failed_pruned: int = 0
    wal_bytes: int = 0
    checkpointed: bool = False
    reclaimed_ids: tuple[int, ...] = field(default=(), repr=False)
