"""What memq answers about memory, as JSON-ready values and error messages.

The daemon's routes (``memq.worker.http``) and the CLI's direct reads of the database file
(``memq.memory.direct``, when no daemon answers) both build their answers here from the same
readers, so that a command prints the same whichever of the two answered.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any

from memq.limits import MAX_CONTEXT_BUDGET
from memq.memory.context import ContextBuilder
from memq.memory.search import SearchHit


def search_answer(hits: Iterable[SearchHit]) -> dict[str, Any]:
    """``{"items": [...], "total": N}`` of a search's hits, best first."""
    items = [hit.to_dict() for hit in hits]
    return {"items": items, "total": len(items)}


async def context_answer(
    builder: ContextBuilder,
    project: str | None,
    *,
    budget_tokens: int,
    exclude_session: str | None = None,
    assistants: Sequence[str] | None = None,
    authors: Sequence[str] | None = None,
) -> dict[str, Any]:
    """``{"project", "context", "has_memory"}``: the project's context within the budget
    (of ``assistants``' sessions and ``authors``' records only, when given), and whether
    memory holds anything of the project at all, so that an empty context can say why: no
    memory, or a budget too small for any of it."""
    text = await builder.build(
        project,
        budget_tokens=budget_tokens,
        exclude_session=exclude_session,
        assistants=assistants,
        authors=authors,
    )
    has_memory = bool(text)
    if not text and project is not None and budget_tokens < MAX_CONTEXT_BUDGET:
        # Empty: built again with room for everything tells which (only then: it costs a
        # second read of the project's newest records).
        has_memory = bool(
            await builder.build(
                project,
                budget_tokens=MAX_CONTEXT_BUDGET,
                exclude_session=exclude_session,
                assistants=assistants,
                authors=authors,
            )
        )
    return {"project": project, "context": text, "has_memory": has_memory}


def no_session(session_key: str) -> str:
    """The error for a session memory does not hold."""
    return f"no session {session_key}"


def no_record(message_id: int) -> str:
    """The error for a timeline around a message that left no record."""
    return f"no memory record came from message {message_id}"


def parse_time(text: str) -> datetime:
    """An ISO-8601 time a user gave (``2025-01-31``, ``2025-01-31T12:00:00Z``, ...) as an
    aware datetime, UTC when it names no zone. Raises ``ValueError`` for anything else."""
    value = datetime.fromisoformat(text)
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
