"""Bounded storage and the figures ``memq status`` shows."""

from __future__ import annotations

from pathlib import Path

import anyio

from memq.queue import Queue, QueueSettings, StatusCounts
from memq.queue.testing import ManualClock
from tests.helpers.rows import all_rows


class TestRetention:
    async def test_old_settled_rows_are_pruned_and_pending_ones_never(self, db_path: Path) -> None:
        """Two days on, processed rows are gone, a failed row (kept 14 days) and a pending
        row (kept until processed) are still there."""
        clock = ManualClock()
        settings = QueueSettings(max_attempts=1)
        async with await Queue.open(db_path, settings, clock=clock) as queue:
            for i in range(5):
                await queue.enqueue("s", "observation", {"i": i})
            async for claim in queue.stream("s", linger=0):
                if claim.message.payload["i"] == 0:
                    await claim.fail("kept for a person to see")
                else:
                    await claim.ack()
            await queue.enqueue("s", "observation", {"waiting": True})
            clock.advance(2 * 24 * 3600)
            report = await queue.maintain()
        assert report.processed_pruned == 4
        assert report.failed_pruned == 0
        assert sorted(r["status"] for r in all_rows(db_path)) == ["failed", "pending"]

    async def test_a_large_history_is_pruned_in_chunks(self, db_path: Path) -> None:
        """More rows than one chunk are all pruned in one pass."""
        settings = QueueSettings(processed_retention=0)
        async with await Queue.open(db_path, settings) as queue:
            async with anyio.create_task_group() as tg:
                for i in range(2500):
                    tg.start_soon(queue.enqueue, f"s{i % 25}", "observation", {"i": i})
            for session in [f"s{i}" for i in range(25)]:
                async for claim in queue.stream(session, linger=0):
                    await claim.ack()
            await anyio.sleep(0.01)
            assert (await queue.maintain()).processed_pruned == 2500
            assert (await queue.stats()).counts.total == 0

    async def test_a_grown_wal_is_checkpointed_and_truncated(self, db_path: Path) -> None:
        """Past the threshold, maintenance truncates the WAL back to (almost) nothing."""
        settings = QueueSettings(wal_checkpoint_bytes=64 * 1024)
        async with await Queue.open(db_path, settings) as queue:
            for i in range(200):
                await queue.enqueue("s", "observation", {"blob": "x" * 2000, "i": i})
            assert (await queue.stats()).wal_bytes > 64 * 1024
            report = await queue.maintain()
            assert report.checkpointed
            assert report.wal_bytes < 64 * 1024


class TestStats:
    async def test_counts_by_status_overall_and_per_session_with_sizes(self, db_path: Path) -> None:
        """Every status is present (zeros too), per session and in total, with file sizes."""
        async with await Queue.open(db_path, QueueSettings(max_attempts=1)) as queue:
            for session, n in (("a", 3), ("b", 2)):
                for i in range(n):
                    await queue.enqueue(session, "observation", {"i": i})
            stream = queue.stream("a", linger=0)
            first = await stream.__anext__()
            await first.ack()
            second = await stream.__anext__()
            await second.fail("no")
            held = await stream.__anext__()
            stats = await queue.stats()
            await held.release()
        assert stats.counts == StatusCounts(pending=2, processing=1, processed=1, failed=1)
        assert stats.sessions["a"] == StatusCounts(processing=1, processed=1, failed=1)
        assert stats.sessions["b"].as_dict() == {
            "pending": 2,
            "processing": 0,
            "processed": 0,
            "failed": 0,
        }
        assert stats.database_bytes > 0
        assert stats.wal_bytes > 0
        assert stats.active_streams == 1
