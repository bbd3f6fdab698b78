"""The memory backend: what the rest of memq asks of the store that keeps memory.

``MemoryStore`` (``memq.memory.store``, SQLite) is the one backend today; a second one
implements this protocol and is held to the same tests.

Writes are not run by the backend. Each write method returns a ``MemoryWrite``: a function of
the queue's ``Transaction`` that the queue runs inside one of its own write transactions, so
memory and the queue's rows commit together or not at all::

    await claim.ack(backend.effect(message, result, project=project))  # with the processed mark
    await queue.run_in_transaction(backend.forget_effect(session_key))  # the other writes

A backend therefore keeps memory in the queue's database and writes it with the statements a
``Transaction`` runs there: a backend on another database comes with a queue on that database.
Reads run on the backend's own connection; each method reads one consistent state.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final, Protocol, TypeAlias, TypeVar

from memq.limits import DEFAULT_HISTORY_ITEMS, TURN_ITEMS
from memq.memory.history import History
from memq.memory.records import (
    ObservationRecord,
    Page,
    ProcessResult,
    SessionContext,
    SessionDetail,
    SessionInfo,
    SummaryRecord,
)
from memq.queue import Effect, Message, Transaction

T = TypeVar("T")

MemoryWrite: TypeAlias = Callable[[Transaction], Awaitable[T]]
"""A write of memory that returns a ``T``; the queue runs it in its write transaction."""

# Prompts and observations a processor is shown (its context): as many as the LLM summary
# prompt can show (memq.processors.llm.prompts: 20 prompts, 80 records), so the context is
# not what cuts a long turn short; still a bounded read however long the session runs.
CONTEXT_ITEMS: Final = 100


@dataclass(frozen=True, slots=True)
class TransferResult:
    """A transfer made: ``records`` of the source moved into the target; ``merged`` were
    copies of what the target held already, and left with the source."""

    records: int
    merged: int


class MemoryBackend(Protocol):
    """Sessions, prompts, observations and summaries: the writes (as ``MemoryWrite``
    functions the queue runs) and the reads the worker, its routes and the CLI use.

    Reads raise ``StorageError`` when the database cannot be read; paging with a negative
    ``limit`` or ``offset`` raises ``InvalidRequestError``.
    """

    # -- writes, run by the queue ----------------------------------------------------------

    def effect(self, message: Message, result: ProcessResult, *, project: str | None) -> Effect:
        """The write that stores ``message``'s memory (its session, its prompt, the result's
        observation and summary); pass it to ``claim.ack``. A second write for the same
        message raises ``StorageError``."""
        ...

    def forget_effect(self, session_key: str) -> MemoryWrite[int]:
        """A write that deletes the session and all its memory (its forks keep their copies);
        it returns how many rows it deleted."""
        ...

    def revert_effect(self, session_key: str, from_message_id: int) -> MemoryWrite[int]:
        """A write that forgets what the session learned from ``from_message_id`` on; it
        returns how many records it deleted."""
        ...

    def transfer_effect(self, from_key: str, to_key: str) -> MemoryWrite[TransferResult]:
        """A write that moves the session's memory to ``to_key`` and deletes the source;
        ``SameSessionError`` when the two are the same session."""
        ...

    def title_effect(self, session_key: str, title: str | None) -> MemoryWrite[str | None]:
        """A write that sets the session's title (None: the one from its first prompt) and
        returns it; it raises ``SessionNotFoundError`` when memory has no such session."""
        ...

    # -- reads -----------------------------------------------------------------------------

    async def revert_cutoff(self, session_key: str, last: int) -> int | None:
        """The first message id of the session's ``last`` newest messages that left memory;
        None when it has none."""
        ...

    async def has_session(self, session_key: str) -> bool:
        """Whether memory has the session."""
        ...

    async def has_message(self, session_key: str, message_id: int) -> bool:
        """Whether message ``message_id`` is the session's (in memory or still queued)."""
        ...

    async def context_for(
        self, session_key: str, *, max_items: int = CONTEXT_ITEMS
    ) -> SessionContext:
        """What a processor may know about the session: its project and recent history."""
        ...

    async def turn_for(self, session_key: str, *, max_items: int = TURN_ITEMS) -> SessionContext:
        """What a processor may know about a tool call: the session's last prompt and the
        newest observations since (at most ``max_items``)."""
        ...

    async def history(
        self, session_key: str, max_items: int = DEFAULT_HISTORY_ITEMS
    ) -> History | None:
        """The session's history for prompting; None when memory has no such session.
        ``InvalidRequestError`` when ``max_items`` is below 1."""
        ...

    async def list_sessions(
        self,
        limit: int = 100,
        offset: int = 0,
        *,
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
    ) -> Page[SessionInfo]:
        """Sessions, most recently active first; only ``assistants``' when given, and only
        those holding ``authors``' records when given."""
        ...

    async def get_session(self, session_key: str) -> SessionDetail | None:
        """The session with its prompts in order; None when memory has no such session."""
        ...

    async def observations(
        self, session_key: str, limit: int = 100, offset: int = 0
    ) -> Page[ObservationRecord]:
        """A page of the session's observations, oldest first, with their total."""
        ...

    async def summaries(
        self, session_key: str, limit: int = 100, offset: int = 0
    ) -> Page[SummaryRecord]:
        """A page of the session's summaries, oldest first, with their total."""
        ...

    async def close(self) -> None:
        """Close the backend's connections. Safe to call twice."""
        ...
