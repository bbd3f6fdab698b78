"""Real crashes: consumers killed with SIGKILL while they hold claims. On PostgreSQL the
next consumer's heartbeat sweep recovers them: the test expires the killed daemon's heartbeat
(``Backend.killed``) rather than wait out ``heartbeat_expiry``."""

from __future__ import annotations

import pytest

from memq.queue import MessageStatus, QueueSettings
from tests.helpers.backends import Backend
from tests.helpers.processes import kill_hard, read_line, spawn_child

pytestmark = pytest.mark.slow


class TestPoisonMessage:
    async def test_a_message_that_kills_its_consumer_ends_failed_and_the_rest_flow(
        self, backend: Backend
    ) -> None:
        """Each crash counts an attempt; after max_attempts the message is failed and the
        session's later messages are processed by the next consumer."""
        settings = QueueSettings(max_attempts=3)
        async with await backend.open(settings) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            poison = (await queue.enqueue("s", "observation", {"poison": True})).message_id
            for i in range(1, 4):
                await queue.enqueue("s", "observation", {"i": i})

        outcomes = []
        for _ in range(settings.max_attempts + 1):
            child = spawn_child("crash-on-poison", backend.target, "s")
            outcomes.append(read_line(child))
            kill_hard(child)
            backend.killed(child.pid)  # PostgreSQL: its heartbeat expired, as after expiry
            if outcomes[-1] == "drained":
                break
        assert outcomes == [f"crashing {poison}"] * 3 + ["drained"]

        rows = {r["id"]: r for r in backend.rows()}
        assert rows[poison]["status"] == MessageStatus.FAILED
        assert rows[poison]["attempts"] == 3
        assert "interrupted" in rows[poison]["last_error"]
        assert [r["status"] for i, r in sorted(rows.items()) if i != poison] == ["processed"] * 4

    async def test_killed_holders_lose_nothing_across_many_crashes(self, backend: Backend) -> None:
        """Five consumers killed in turn while holding claims: every message is still there,
        none stuck processing, and attempts never pass the maximum."""
        sessions = [f"s{i}" for i in range(4)]
        async with await backend.open(QueueSettings(max_attempts=3)) as queue:
            for i in range(12):
                await queue.enqueue(sessions[i % 4], "observation", {"i": i})
        for _ in range(5):
            child = spawn_child("hold-claims", backend.target, *sessions)
            assert read_line(child).startswith("[")
            kill_hard(child)
            backend.killed(child.pid)  # PostgreSQL: its heartbeat expired, as after expiry
        async with await backend.open(QueueSettings(max_attempts=3)) as queue:
            stats = await queue.stats()
        rows = backend.rows()
        assert len(rows) == 12
        assert stats.counts.processing == 0
        assert max(r["attempts"] for r in rows) <= 3
        # The four heads were claimed by every child: three times pending, then failed.
        assert stats.counts.failed == 4
        assert stats.counts.pending == 8
