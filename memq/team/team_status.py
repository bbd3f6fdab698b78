"""The team server's part of ``memq status`` (``memq serve --team``): where its listener
listens and how (TLS, or behind a TLS-terminating proxy), its keys, and what they asked in
the last hours (``key_use``, one row per key and hour) and how often the server refused
(the audit log's ``refused`` rows). Read in one transaction of the queue's."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final, Protocol, TypeVar

from memq.queue import Transaction
from memq.storage.sqlfile import load_queries
from memq.team.keys import HOUR_MS, RECENT_HOURS

if TYPE_CHECKING:
    from memq.team.server import TeamListener

QUERIES: Final = load_queries("team_status")
T = TypeVar("T")


class RunsTransactions(Protocol):
    """The queue's writer (its transactions see every commit)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one transaction and return its result."""


async def team_server_status(queue: RunsTransactions, listener: TeamListener) -> dict[str, Any]:
    """The ``team_server`` key of the status document."""

    async def read(tx: Transaction) -> dict[str, Any]:
        now = tx.now_ms
        this_hour = now - now % HOUR_MS
        keys = (await tx.fetchall(QUERIES["key_counts"]))[0]
        day_start = this_hour - (RECENT_HOURS - 1) * HOUR_MS

        async def requests(since: int) -> int:
            rows = await tx.fetchall(QUERIES["requests_since"], {"since": since})
            return int(rows[0]["requests"])

        refused = await tx.fetchall(
            QUERIES["refused_since"], {"since": now - RECENT_HOURS * HOUR_MS}
        )
        return {
            "address": listener.address,
            "tls": listener.tls,
            "proxy": listener.proxy,
            "keys_active": int(keys["active"]),
            "keys_revoked": int(keys["revoked"]),
            "requests_this_hour": await requests(this_hour),
            "requests_recent": await requests(day_start),
            "refused_recent": int(refused[0]["refused"]),
            "recent_hours": RECENT_HOURS,
        }

    return await queue.run_in_transaction(read)
