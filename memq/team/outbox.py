"""The laptop's outbox to the team server: the ``upstream_outbox`` table and its switch.

Rows come in by the trigger ``pending_messages_upstream`` (migration 0016), in the
transaction of the queue's insert, whoever made it: the daemon, or the hook's direct
insert while no daemon runs. ``upstream_config.enabled`` turns the trigger on; the daemon
sets it at each start from ``MEMQ_UPSTREAM`` (``set_enabled``), so it stays on while the
daemon is down. The forwarder (``memq.team.forwarder``) reads and settles rows here; each
settlement is one transaction of the queue's writer.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final, Protocol, TypeVar

from memq.queue import EpochMs, Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("upstream")
T = TypeVar("T")


class OutboxState(StrEnum):
    """Where an outbox row stands (``upstream_outbox.state``)."""

    WAITING = "waiting"  # to be sent, not before its next_attempt_at
    REFUSED = "refused"  # the server refused this event; kept, with its error, to be seen
    LOCAL_ONLY = "local_only"  # its directory has no git remote: never sent


class HoldsOutbox(Protocol):
    """The queue the outbox lives beside (``memq.queue.Queue``): its reader and its writer."""

    async def read(self, sql: str, parameters: Any = ()) -> Sequence[Any]:
        """Rows of one read."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one write transaction."""


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """One event waiting to be sent."""

    message_id: int  # its queue row's id: the event's ``local_id`` upstream
    session_id: str
    kind: str
    dedupe_key: str | None
    payload: str  # JSON text
    created_at: EpochMs
    attempts: int
    next_attempt_at: EpochMs

    @property
    def size(self) -> int:
        """Bytes it adds to a batch (about: its payload's text)."""
        return len(self.payload)

    def payload_value(self) -> Any:
        """The payload as a JSON value (None when its text is not JSON)."""
        try:
            return json.loads(self.payload)
        except ValueError:
            return None


@dataclass(frozen=True, slots=True)
class OutboxCounts:
    """Rows per state, and the oldest waiting event's time (None: nothing waits)."""

    waiting: int = 0
    refused: int = 0
    local_only: int = 0
    oldest_waiting_at: EpochMs | None = None


@dataclass(frozen=True, slots=True)
class Settlement:
    """What became of one batch, written in one transaction (``Outbox.settle``)."""

    sent: Sequence[int] = ()  # the server has them: deleted
    refused: Sequence[tuple[int, str]] = ()  # (id, the server's error)
    local_only: Sequence[tuple[int, str]] = ()  # (id, why it is not shareable)
    deferred: Sequence[int] = ()  # to be sent again at ``next_attempt_at``
    next_attempt_at: EpochMs | None = None
    error: str | None = None  # why they were deferred


class Outbox:
    """The outbox table, through the queue's connections.

    Args:
        queue: the open queue (its reader sees every commit; its writer is the only one).
        forward_only: ``MEMQ_UPSTREAM_MODE=forward``: nothing processes events here, so a
            sent event's queue row is marked processed, and a refused or local-only one's
            failed (with the reason), in the transaction that settles the outbox row.
    """

    def __init__(self, queue: HoldsOutbox, *, forward_only: bool = False) -> None:
        self._queue = queue
        self.forward_only = forward_only

    async def set_enabled(self, enabled: bool) -> None:
        """Whether events stored from now on (by anyone) fill the outbox."""
        params = {"enabled": int(enabled)}
        await self._queue.run_in_transaction(lambda tx: tx.execute(QUERIES["set_enabled"], params))

    async def machine(self, name: str) -> str:
        """The name this database goes by upstream: ``name`` when none is stored or no
        event waits, else the stored one (the server's dedupe key holds it, so an event
        that may have been sent keeps the name it was sent under)."""

        async def claim(tx: Transaction) -> str:
            rows = await tx.fetchall(QUERIES["claim_machine"], {"machine": name})
            claimed = str(rows[0]["machine"]) if rows else name
            # Remembered: after a rename, the server still holds records under the old name.
            await tx.execute(QUERIES["remember_machine"], {"machine": claimed})
            return claimed

        return await self._queue.run_in_transaction(claim)

    async def stored_machine(self) -> str | None:
        """The name stored by the last ``machine`` (None: none yet); changes nothing."""
        rows = await self._queue.read(QUERIES["machine"])
        return str(rows[0]["machine"]) if rows and rows[0]["machine"] is not None else None

    async def machines(self) -> list[str]:
        """Every name this database went by upstream (claimed by ``machine``), oldest
        rename or not: the server files records under each."""
        rows = await self._queue.read(QUERIES["machines"])
        return [str(row["name"]) for row in rows]

    async def waiting(self, limit: int) -> list[OutboxRow]:
        """The first ``limit`` waiting rows, in id order."""
        rows = await self._queue.read(QUERIES["next_waiting"], {"limit": limit})
        return [
            OutboxRow(
                message_id=int(row["message_id"]),
                session_id=str(row["session_id"]),
                kind=str(row["kind"]),
                dedupe_key=row["dedupe_key"],
                payload=str(row["payload"]),
                created_at=EpochMs(int(row["created_at"])),
                attempts=int(row["attempts"]),
                next_attempt_at=EpochMs(int(row["next_attempt_at"])),
            )
            for row in rows
        ]

    async def settle(self, done: Settlement) -> None:
        """Write what became of a batch, all of it in one transaction."""
        forward_only = self.forward_only

        async def write(tx: Transaction) -> None:
            now = tx.now_ms
            if done.sent:
                await tx.executemany(QUERIES["delete_sent"], _ids(done.sent))
                if forward_only:
                    rows = [{"id": i, "now": now} for i in done.sent]
                    await tx.executemany(QUERIES["mark_forwarded"], rows)
            for query, items in (
                ("mark_refused", done.refused),
                ("mark_local_only", done.local_only),
            ):
                if not items:
                    continue
                marked: list[dict[str, Any]] = [{"id": i, "error": e} for i, e in items]
                await tx.executemany(QUERIES[query], marked)
                if forward_only:
                    failed = [{**row, "now": now} for row in marked]
                    await tx.executemany(QUERIES["mark_not_forwarded"], failed)
            if done.deferred:
                due = done.next_attempt_at or now
                deferred: list[dict[str, Any]] = [
                    {"id": i, "next_attempt_at": due, "error": done.error} for i in done.deferred
                ]
                await tx.executemany(QUERIES["defer_waiting"], deferred)

        await self._queue.run_in_transaction(write)

    async def retry_refused(self) -> int:
        """Make the refused rows waiting again; returns how many."""
        rows = await self._queue.run_in_transaction(
            lambda tx: tx.fetchall(QUERIES["retry_refused"])
        )
        return len(rows)

    async def counts(self) -> OutboxCounts:
        """Rows per state, and the oldest waiting event's time."""
        rows = await self._queue.read(QUERIES["count_by_state"])
        by_state: dict[str, Mapping[str, Any]] = {str(row["state"]): row for row in rows}
        waiting = by_state.get(OutboxState.WAITING)

        def count(state: OutboxState) -> int:
            row = by_state.get(state)
            return int(row["n"]) if row is not None else 0

        return OutboxCounts(
            waiting=count(OutboxState.WAITING),
            refused=count(OutboxState.REFUSED),
            local_only=count(OutboxState.LOCAL_ONLY),
            oldest_waiting_at=None if waiting is None else EpochMs(int(waiting["oldest_at"])),
        )


def _ids(ids: Iterable[int]) -> list[dict[str, int]]:
    return [{"id": int(i)} for i in ids]
