"""Memory: what the processors made of a session's events, and the store that keeps it.

from memq.memory import MemoryStore

store = await MemoryStore.open(path)            # after Queue.open(path) migrated it
context = await store.context_for(message.session_id)
result = await processor.process(message, context)
await claim.ack(store.effect(message, result, project=project))
page = await store.observations(session_key, limit=100)

Callers that only use memory type against ``MemoryBackend`` (``memq.memory.backend``), the
interface ``MemoryStore`` implements on SQLite.
"""

from __future__ import annotations

from memq.memory.backend import MemoryBackend
from memq.memory.records import (
    ObservationKind,
    ObservationRecord,
    Page,
    ProcessResult,
    PromptRecord,
    SessionContext,
    SessionDetail,
    SessionInfo,
    SummaryRecord,
)
from memq.memory.store import MemoryStore

__all__ = [
    "MemoryBackend",
    "MemoryStore",
    "ObservationKind",
    "ObservationRecord",
    "Page",
    "ProcessResult",
    "PromptRecord",
    "SessionContext",
    "SessionDetail",
    "SessionInfo",
    "SummaryRecord",
]
