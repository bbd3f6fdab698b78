"""The team server's audit log (and each key's use per hour) kept for a number of days.

Rows come from the team server's requests and ``memq keys`` (made, revoked, refused,
deleted). ``prune_if_due`` deletes what is older than the retention at most once per
``interval`` seconds of the monotonic clock. Two callers share it: the requests' path
(the first request prunes at once), and ``run``, the daemon's background task beside the
queue's maintenance, so a server that gets no requests (idle, or only ``memq keys`` on its
database) still drops its old rows. The cut-off is read on the queue's wall clock, as the
rows' times are stamped.
"""

from __future__ import annotations

import math
from typing import Final

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import MemqError
from memq.queue import Clock
from memq.team.keys import RunsTransactions, prune_audit

log = structlog.get_logger("memq.team")

DAY_MS: Final = 86_400_000
PRUNE_INTERVAL: Final = 3600.0  # seconds between prunes


class AuditRetention:
    """Prunes the audit log past ``days`` (see the module docstring).

    Args:
        queue: where the rows are (the team server's queue).
        clock: the queue's clock (``now`` for the cut-off, ``monotonic`` for the interval).
        days: how long a row is kept.
        interval: seconds between prunes.
    """

    def __init__(
        self,
        queue: RunsTransactions,
        clock: Clock,
        *,
        days: int,
        interval: float = PRUNE_INTERVAL,
    ) -> None:
        if days < 1 or interval <= 0:
            raise ValueError("days must be at least 1 and interval positive")
        self.days = days
        self._queue = queue
        self._clock = clock
        self._interval = interval
        self._next: float = -math.inf  # due at once: the first request prunes

    async def prune(self) -> int:
        """Delete the rows older than ``days``; the audit rows deleted."""
        before = int(self._clock.now()) - self.days * DAY_MS
        deleted = await prune_audit(self._queue, before)
        if deleted:
            log.info("team.audit_pruned", rows=deleted, days=self.days)
        return deleted

    async def prune_if_due(self) -> None:
        """``prune`` when ``interval`` has passed since the last; a failure is logged, and
        tried again at the next interval (the request goes on)."""
        now = self._clock.monotonic()
        if now < self._next:
            return
        self._next = now + self._interval
        try:
            await self.prune()
        except MemqError as exc:
            log.warning("team.audit_prune_failed", error=str(exc))

    async def run(
        self,
        *,
        poll: float = PRUNE_INTERVAL,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """``prune_if_due`` now, and again whenever ``interval`` has passed, until cancelled
        (start it in the daemon's task group). It sleeps until the next prune is due, at most
        ``poll`` seconds at a time (a test's clock moves without it)."""
        if poll <= 0:
            raise ValueError("poll must be positive")
        task_status.started()
        while True:
            await self.prune_if_due()
            # A request may have pruned meanwhile: then the next is due an interval later.
            await anyio.sleep(min(poll, max(self._next - self._clock.monotonic(), 0.0)))
