"""Issue 17: the team server's audit log is pruned while no request comes.

``AuditRetention.run`` (started by the daemon beside the team listener) calls
``prune_if_due`` at start and whenever its interval has passed: the production settings
(90 days, an hour between prunes) on a clock the test moves, on each backend. Only its
polling (how often it looks at that clock) is shortened, so the test need not sleep an hour.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from memq.exceptions import AuthenticationError
from memq.queue import Clock
from memq.team import keys
from memq.team.audit_retention import PRUNE_INTERVAL, AuditRetention
from tests.conftest import FAST
from tests.helpers.backends import Backend
from tests.helpers.clock import FakeClock

DAY = 86_400.0
START_MS = 1_800_000_000_000
POLL = 0.005  # real seconds between looks at the test's clock


class Counted(AuditRetention):
    """An ``AuditRetention`` that tells each prune it made."""

    def __init__(self, queue: Any, clock: Clock) -> None:
        super().__init__(queue, clock, days=90)
        self.pruned: list[int] = []

    async def prune(self) -> int:
        deleted = await super().prune()
        self.pruned.append(deleted)
        return deleted


async def refusal(queue: Any, address: str) -> None:
    """One audit row, at the clock's time: a refused token."""
    with pytest.raises(AuthenticationError):
        await keys.authenticate(queue, "nonsense", None, address=address)


def addresses(backend: Backend) -> list[str]:
    return [str(r["address"]) for r in backend.table("SELECT address FROM audit_log ORDER BY id")]


async def prunes(retention: Counted, count: int) -> None:
    """Wait (a few seconds at most) until ``retention`` made ``count`` prunes."""
    with anyio.fail_after(5):
        while len(retention.pruned) < count:  # noqa: ASYNC110 - a test's look, no event
            await anyio.sleep(POLL)


async def test_an_idle_server_prunes_past_90_days_hourly(backend: Backend) -> None:
    clock = FakeClock(wall_ms=START_MS)
    queue = await backend.open(FAST, clock=clock)
    await refusal(queue, "198.51.100.1")
    clock.advance(10 * DAY)
    await refusal(queue, "198.51.100.2")  # 10 days younger
    retention = Counted(queue, clock)
    assert PRUNE_INTERVAL == 3600.0
    async with anyio.create_task_group() as tg:
        await tg.start(lambda task_status: retention.run(poll=POLL, task_status=task_status))
        await prunes(retention, 1)  # at start: 10 days old is young
        assert retention.pruned == [0]
        assert addresses(backend) == ["198.51.100.1", "198.51.100.2"]

        clock.advance(80 * DAY + 1)  # the first a second past 90 days; hours passed
        await prunes(retention, 2)
        assert retention.pruned[1] == 1
        assert addresses(backend) == ["198.51.100.2"]

        # The second row past 90 days too, on the wall clock alone: the last prune was
        # less than an hour ago (3600 s, not 3600 ms), so it waits.
        clock.step_wall(10 * DAY)
        clock.advance(3599)
        await anyio.sleep(50 * POLL)
        assert len(retention.pruned) == 2
        assert addresses(backend) == ["198.51.100.2"]
        clock.advance(1)  # an hour since the last prune
        await prunes(retention, 3)
        assert retention.pruned[2] == 1
        assert addresses(backend) == []
        tg.cancel_scope.cancel()


async def test_poll_must_be_positive(backend: Backend) -> None:
    retention = AuditRetention(backend.queue, FakeClock(), days=90)
    with pytest.raises(ValueError, match="poll must be positive"):
        await retention.run(poll=0)
