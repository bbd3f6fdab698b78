"""The activity tracker on a real queue file: what reaches ``session_activity``, how many
transactions it takes, and the background loop's triggers and shutdown flush."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from memq.exceptions import StorageError
from memq.memory.store import MemoryStore
from memq.processors import get_processor
from memq.queue import EpochMs, Queue, Transaction
from memq.worker.activity import ActivityTracker
from tests.conftest import FAST
from tests.helpers.clock import FakeClock

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code"
SESSION = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"


class Counting:
    """The queue, counting the tracker's transactions; ``failures`` are raised first."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.transactions = 0
        self.failures: list[Exception] = []

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[None]]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        await self.queue.run_in_transaction(fn)
        self.transactions += 1


def stored(db_path: Path) -> dict[str, int]:
    """``session_activity`` as an outside reader sees it."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    try:
        return dict(conn.execute("SELECT session_key, last_access_at FROM session_activity"))
    finally:
        conn.close()


@pytest.fixture
def writer(queue: Queue) -> Counting:
    return Counting(queue)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def wait_for(condition: Callable[[], bool]) -> None:
    """Yield to the tracker's loop until ``condition()`` holds (a hang fails after 10 s)."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the condition is the test's bookkeeping
            await anyio.sleep(0.005)


class TestFlushes:
    async def test_n_touches_are_one_transaction(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        activity = ActivityTracker(writer, clock=clock, flush_every_events=50)
        for i in range(49):
            activity.touch(f"s{i % 7}", at=EpochMs(10_000 + i))
            await activity.flush_if_due()
        assert (writer.transactions, stored(db_path)) == (0, {})
        activity.touch("s0", at=EpochMs(20_000))
        await activity.flush_if_due()
        assert writer.transactions == 1
        rows = stored(db_path)
        assert len(rows) == 7
        assert rows["s0"] == 20_000
        assert rows["s6"] == 10_048  # i = 48, its newest touch

    async def test_m_seconds_with_a_fake_clock(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        activity = ActivityTracker(writer, clock=clock, flush_interval=5.0)
        activity.touch("a", at=EpochMs(1))
        clock.advance(4.999)
        await activity.flush_if_due()
        assert stored(db_path) == {}
        clock.advance(0.001)
        await activity.flush_if_due()
        assert (writer.transactions, stored(db_path)) == (1, {"a": 1})

    async def test_nothing_is_written_when_idle(
        self, writer: Counting, clock: FakeClock, queue: Queue, db_path: Path
    ) -> None:
        """No touch, no write: not even an empty transaction."""
        activity = ActivityTracker(writer, clock=clock)
        version = await queue.data_version()
        clock.advance(3600)
        await activity.flush_if_due()
        await activity.flush()
        await activity.close()
        assert writer.transactions == 0
        assert await queue.data_version() == version

    async def test_times_never_go_backwards(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """A flush carrying an older time (a retry, a second tracker) keeps the newer one."""
        activity = ActivityTracker(writer, clock=clock)
        activity.touch("a", at=EpochMs(2_000))
        activity.touch("b", at=EpochMs(2_000))
        await activity.flush()
        activity.touch("a", at=EpochMs(1_000))
        activity.touch("b", at=EpochMs(3_000))
        await activity.flush()
        assert stored(db_path) == {"a": 2_000, "b": 3_000}

    async def test_a_failed_flush_is_retried_and_loses_nothing(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        activity = ActivityTracker(writer, clock=clock, flush_every_events=2, flush_interval=5)
        writer.failures.append(StorageError("SQLite: disk I/O error"))
        activity.touch("a", at=EpochMs(1))
        activity.touch("b", at=EpochMs(2))
        with capture_logs() as logs:
            await activity.flush_if_due()
        assert [e["event"] for e in logs] == ["activity.flush_failed"]
        assert stored(db_path) == {}
        clock.advance(5)
        await activity.flush_if_due()
        assert stored(db_path) == {"a": 1, "b": 2}

    async def test_forget_deletes_the_stored_time_for_good(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """A deleted session's row goes, and an unwritten touch does not bring it back."""
        activity = ActivityTracker(writer, clock=clock)
        activity.touch("deleted", at=EpochMs(1))
        activity.touch("kept", at=EpochMs(1))
        await activity.flush()
        activity.touch("deleted", at=EpochMs(2))
        await activity.forget("deleted")
        await activity.close()
        assert stored(db_path) == {"kept": 1}

    async def test_forget_waits_for_a_flush_in_flight(
        self, queue: Queue, clock: FakeClock, db_path: Path
    ) -> None:
        """A flush that already took the session's time commits before the delete, not
        after it (which would bring the row back)."""
        entered, proceed = anyio.Event(), anyio.Event()

        class Slow:
            async def run_in_transaction(
                self, fn: Callable[[Transaction], Awaitable[None]]
            ) -> None:
                if not entered.is_set():
                    entered.set()
                    await proceed.wait()
                await queue.run_in_transaction(fn)

        activity = ActivityTracker(Slow(), clock=clock)
        activity.touch("a", at=EpochMs(5))
        async with anyio.create_task_group() as tg:
            tg.start_soon(activity.flush)
            await entered.wait()
            tg.start_soon(activity.forget, "a")
            await anyio.lowlevel.checkpoint()
            proceed.set()
        assert stored(db_path) == {}

    async def test_a_hot_session_of_10000_events_costs_40_transactions(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """With the defaults (256 events or 5 s) and events 1 ms apart."""
        activity = ActivityTracker(writer, clock=clock)
        for i in range(10_000):
            activity.touch("hot", at=EpochMs(1_000_000 + i))
            clock.advance(0.001)
            await activity.flush_if_due()
        await activity.close()
        assert writer.transactions == 40
        assert stored(db_path) == {"hot": 1_009_999}

    async def test_a_closed_queue_is_a_warning_not_a_crash(
        self, db_path: Path, clock: FakeClock
    ) -> None:
        queue = await Queue.open(db_path, FAST)
        activity = ActivityTracker(queue, clock=clock)
        activity.touch("a")
        await queue.close()
        with capture_logs() as logs:
            assert await activity.flush() is False
        assert [e["event"] for e in logs] == ["activity.flush_failed"]
        assert activity.dirty == 1

    async def test_the_sessions_api_reads_what_was_flushed(
        self, queue: Queue, db_path: Path, clock: FakeClock
    ) -> None:
        """``SessionInfo.last_access_at`` is the flushed touch time."""
        payload: dict[str, Any] = json.loads(
            (FIXTURES / "UserPromptSubmit.json").read_text("utf-8")
        )
        await queue.enqueue(SESSION, "prompt", payload)
        store = await MemoryStore.open(db_path)
        try:
            processor = get_processor("extract")
            async for claim in queue.stream(SESSION, linger=0):
                result = await processor.process(claim.message, await store.context_for(SESSION))
                await claim.ack(store.effect(claim.message, result, project=None))
            touched = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
            clock.set_wall(int(touched.timestamp() * 1000))
            activity = ActivityTracker(queue, clock=clock)
            activity.touch(SESSION)
            await activity.flush()
            detail = await store.get_session(SESSION)
        finally:
            await store.close()
        assert detail is not None
        assert detail.last_access_at == touched


class TestBackgroundLoop:
    async def test_the_count_trigger_wakes_the_loop(self, writer: Counting, db_path: Path) -> None:
        """An hour-long interval: only the N-th touch can cause this write."""
        activity = ActivityTracker(writer, flush_every_events=3, flush_interval=3600)
        async with anyio.create_task_group() as tg:
            await tg.start(activity.run)
            activity.touch("a", at=EpochMs(1))
            activity.touch("a", at=EpochMs(2))
            await anyio.lowlevel.checkpoint()  # the first touch woke the loop: it set a deadline
            activity.touch("b", at=EpochMs(3))
            await wait_for(lambda: writer.transactions == 1)
            await activity.close()
        assert writer.transactions == 1  # one batch of three touches; close had none left
        assert stored(db_path) == {"a": 2, "b": 3}

    async def test_the_time_trigger_fires_without_more_touches(
        self, writer: Counting, db_path: Path
    ) -> None:
        """One touch, then silence: it is written once its interval has passed."""
        activity = ActivityTracker(writer, flush_every_events=1000, flush_interval=0.05)
        async with anyio.create_task_group() as tg:
            await tg.start(activity.run)
            activity.touch("a", at=EpochMs(7))
            await wait_for(lambda: writer.transactions == 1)
            await activity.close()
        assert stored(db_path) == {"a": 7}
        assert writer.transactions == 1

    async def test_close_ends_the_loop_and_writes_the_last_touches(
        self, writer: Counting, db_path: Path
    ) -> None:
        activity = ActivityTracker(writer, flush_every_events=1000, flush_interval=3600)
        async with anyio.create_task_group() as tg:
            await tg.start(activity.run)
            for i in range(5):
                activity.touch(f"s{i}", at=EpochMs(100 + i))
            await activity.close()
            # run() returns by itself: the task group ends without being cancelled.
        assert writer.transactions == 1
        assert stored(db_path) == {f"s{i}": 100 + i for i in range(5)}

    async def test_the_sweep_runs_in_the_background(self, writer: Counting) -> None:
        clock = FakeClock()
        activity = ActivityTracker(writer, ttl=60, sweep_interval=0.01, clock=clock)
        expired: list[str] = []
        activity.on_expire(expired.append)
        async with anyio.create_task_group() as tg:
            await tg.start(activity.run)
            activity.touch("a")
            clock.advance(61)
            await wait_for(lambda: expired == ["a"])
            await activity.close()
        assert activity.tracked == 0
