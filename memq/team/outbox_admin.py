"""What a person does with the outbox to the team server (``memq upstream``): list the events
it holds, send the refused ones again, drop those that will never be sent.

One set of functions for both ways in: the daemon's routes (``/api/upstream/...``, on the
queue's writer) and the CLI with no daemon (``memq.team.direct``'s database, SQLite or
PostgreSQL). Each call is one transaction; a request naming ids is checked whole first, so
a wrong id changes nothing.

The order contract. The forwarder sends waiting rows in id order, so each session's events
go in the order they happened, but a refused event does not hold back the later events of
its session: a refusal is the server's lasting answer about that event (out of the key's
scope, malformed, too large), and holding the session behind it would stop its forwarding
until a person acted. So a retried event reaches the server after the later events of its
session that were sent meanwhile; among the rows waiting at the time, it goes first (the
lowest id first). Retrying never duplicates: the event keeps its local id, and so its
dedupe key upstream.

Dropping forgets an event that will not be sent (refused, or kept local for want of a git
remote). Only by id, never "all", and each drop is logged (``upstream.dropped``) with what
was dropped: the event stays in local memory; only its copy on its way upstream goes.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol, TypeVar

import structlog

from memq.exceptions import InvalidRequestError, MessageNotFoundError, OutboxEventStateError
from memq.limits import MAX_INTEGER, MAX_PAGE
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries
from memq.team.outbox import OutboxState

log = structlog.get_logger("memq.upstream")

QUERIES: Final = load_queries("upstream")
MAX_IDS: Final = 1000  # ids named in one request ({"all": true} has no limit)
T = TypeVar("T")


class RunsTransactions(Protocol):
    """The queue's writer, or ``memq.team.direct``'s database."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction and return its result."""


@dataclass(frozen=True, slots=True)
class HeldEvent:
    """One outbox row as ``memq upstream list`` shows it."""

    message_id: int
    session_id: str
    kind: str
    state: str
    attempts: int
    last_error: str | None
    created_at: int  # epoch ms
    next_attempt_at: int  # epoch ms

    def to_dict(self, now_ms: int) -> dict[str, Any]:
        """As the API answers it; ages in seconds at ``now_ms``."""
        due = self.state == OutboxState.WAITING and self.next_attempt_at > now_ms
        return {
            "message_id": self.message_id,
            "session_id": self.session_id,
            "kind": self.kind,
            "state": self.state,
            "attempts": self.attempts,
            "last_error": self.last_error,
            "created_at": self.created_at,
            "age_seconds": max(now_ms - self.created_at, 0) / 1000,
            "next_attempt_in_seconds": (self.next_attempt_at - now_ms) / 1000 if due else None,
        }


def _held(row: Any) -> HeldEvent:
    return HeldEvent(
        message_id=int(row["message_id"]),
        session_id=str(row["session_id"]),
        kind=str(row["kind"]),
        state=str(row["state"]),
        attempts=int(row["attempts"]),
        last_error=row["last_error"],
        created_at=int(row["created_at"]),
        next_attempt_at=int(row["next_attempt_at"]),
    )


def parse_states(values: Iterable[str]) -> frozenset[OutboxState]:
    """``state`` filters (comma-separated or repeated); none given: waiting and refused.

    Raises:
        InvalidRequestError: a state the outbox does not have.
    """
    names = [part.strip() for value in values for part in value.split(",") if part.strip()]
    known = {state.value: state for state in OutboxState}
    unknown = [name for name in names if name not in known]
    if unknown:
        raise InvalidRequestError(
            f"unknown outbox state {', '.join(unknown)}: use {', '.join(known)}"
        )
    if not names:
        return frozenset({OutboxState.WAITING, OutboxState.REFUSED})
    return frozenset(known[name] for name in names)


def ids_or_all(body: Mapping[str, Any]) -> list[int] | None:
    """The ids a retry body names (``{"ids": [N, ...]}``), or None for ``{"all": true}``.

    Raises:
        InvalidRequestError: anything else.
    """
    if body.get("all") is True:
        if "ids" in body:
            raise InvalidRequestError('give {"ids": [N, ...]} or {"all": true}, not both')
        return None
    return _ids(body, '{"ids": [N, ...]} or {"all": true}')


def ids_only(body: Mapping[str, Any]) -> list[int]:
    """The ids a drop body names (``{"ids": [N, ...]}``): a drop is never of "all".

    Raises:
        InvalidRequestError: anything else.
    """
    return _ids(body, '{"ids": [N, ...]}')


def _ids(body: Mapping[str, Any], shape: str) -> list[int]:
    ids = body.get("ids")
    if not isinstance(ids, list) or not ids or not all(_is_id(i) for i in ids):
        raise InvalidRequestError(
            f"give {shape}; an event's id is its message id, a whole number of at least 1"
        )
    if len(ids) > MAX_IDS:
        raise InvalidRequestError(f"at most {MAX_IDS} ids at once")
    return list(dict.fromkeys(ids))


def _is_id(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and 0 < value <= MAX_INTEGER


async def held_events(
    database: RunsTransactions, states: Iterable[OutboxState], limit: int
) -> dict[str, Any]:
    """The rows in ``states``, first ``limit`` in id order, with the counts of every state:
    the body of ``GET /api/upstream/events``."""
    if not 1 <= limit <= MAX_PAGE:
        raise InvalidRequestError(f"limit must be 1 to {MAX_PAGE}")
    wanted = set(states)
    flags = {state.value: int(state in wanted) for state in OutboxState}

    async def read(tx: Transaction) -> dict[str, Any]:
        rows = await tx.fetchall(QUERIES["held"], {**flags, "limit": limit})
        counts = {state.value: 0 for state in OutboxState}
        for row in await tx.fetchall(QUERIES["count_by_state"]):
            counts[str(row["state"])] = int(row["n"])
        machine = await tx.fetchall(QUERIES["machine"])
        return {
            "items": [_held(row).to_dict(tx.now_ms) for row in rows],
            "counts": counts,
            "machine": machine[0]["machine"] if machine else None,
        }

    return await database.run_in_transaction(read)


async def retry_refused(database: RunsTransactions, ids: Sequence[int] | None) -> list[int]:
    """Make refused rows wait again, due at once: ``ids`` (each must be refused), or every
    refused row (None). Returns the ids, in order."""

    async def write(tx: Transaction) -> list[int]:
        if ids is None:
            rows = await tx.fetchall(QUERIES["retry_refused"])
            return sorted(int(row["message_id"]) for row in rows)
        await _require(tx, ids, {OutboxState.REFUSED}, "retried")
        for message_id in ids:
            await tx.fetchall(QUERIES["retry_refused_one"], {"id": message_id})
        return sorted(ids)

    retried = await database.run_in_transaction(write)
    log.info("upstream.retried", message_ids=retried)
    return retried


async def drop_unsent(database: RunsTransactions, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Delete the outbox rows ``ids``, each refused or kept local; returns what was dropped."""
    allowed = {OutboxState.REFUSED, OutboxState.LOCAL_ONLY}

    async def write(tx: Transaction) -> list[dict[str, Any]]:
        await _require(tx, ids, allowed, "dropped")
        dropped = []
        for message_id in ids:
            for row in await tx.fetchall(QUERIES["drop_unsent"], {"id": message_id}):
                dropped.append(
                    {
                        "message_id": int(row["message_id"]),
                        "session_id": str(row["session_id"]),
                        "kind": str(row["kind"]),
                        "state": str(row["state"]),
                        "last_error": row["last_error"],
                    }
                )
        return dropped

    dropped = await database.run_in_transaction(write)
    for item in dropped:  # one line each: what was given up on, and why it was not sent
        log.warning("upstream.dropped", **item)
    return dropped


async def _require(
    tx: Transaction, ids: Sequence[int], states: set[OutboxState], verb: str
) -> None:
    """Refuse the whole request when an id is not in the outbox (404) or in another state
    (409): saying "retried" or "dropped" of it would hide the wrong id."""
    found: dict[int, str | None] = {}
    for message_id in ids:
        rows = await tx.fetchall(QUERIES["outbox_state"], {"id": message_id})
        found[message_id] = str(rows[0]["state"]) if rows else None
    missing = [str(i) for i, state in found.items() if state is None]
    if missing:
        raise MessageNotFoundError(
            f"no event {', '.join(missing)} in the outbox (memq upstream list shows them)"
        )
    wrong = [f"{i} is {state}" for i, state in found.items() if state not in states]
    if wrong:
        allowed = " or ".join(sorted(state.value for state in states))
        raise OutboxEventStateError(
            f"only {allowed} events can be {verb}: event {', '.join(wrong)}"
        )
