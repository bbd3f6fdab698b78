"""Observations rewritten by the model that summarized their turn.

With turn batching (``MEMQ_BATCH_TURNS``), a model processor acks each tool call with the
record ``extract`` made of it, then asks the model once, with the turn's summary, to describe
all of them. Its descriptions are written by :func:`with_rewrites` inside the summary
message's ack: the summary, the rewrites and the ack commit in one transaction, or none of
them does (a crash, an invalid answer: the message is retried and the records stay as
``extract`` wrote them meanwhile). Rewriting the same record twice writes the same thing.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from typing import Final

from memq.memory.records import ObservationRecord
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("rewrites")
Write = Callable[[Transaction], Awaitable[None]]


def with_rewrites(write: Write, session_key: str, records: Sequence[ObservationRecord]) -> Write:
    """``write`` followed, in the same transaction, by the rewrites of ``records`` (stored
    observations of ``session_key``, by their ``id``; others are left alone)."""
    rows = [
        {
            "id": record.id,
            "session_key": session_key,
            "kind": record.kind.value,
            "title": record.title,
            "subtitle": record.subtitle,
            "narrative": record.narrative,
            "facts": json.dumps(list(record.facts), ensure_ascii=False),
            "concepts": json.dumps(list(record.concepts), ensure_ascii=False),
        }
        for record in records
        if record.id is not None
    ]

    async def both(tx: Transaction) -> None:
        await write(tx)
        if rows:
            await tx.executemany(QUERIES["rewrite_observation"], rows)

    return both
