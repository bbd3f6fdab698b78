"""Every time-based behaviour of the queue at its real settings, on a clock the test moves.

Each test sits just inside and just past a setting, so a value read in the wrong unit
(3600 taken as 3.6 s, or as 3600 ms) fails it.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from memq.queue import Claim, MessageStatus, Queue, QueueSettings, SessionStream
from memq.queue.testing import ManualClock
from tests.helpers.backends import Backend

HOUR = 3600.0
DAY = 24 * HOUR
POLL = 0.01  # change_check_interval: how often a waiting stream looks at the clock again
# Real time a waiting stream gets to show that it keeps waiting: many polls.
SETTLE = 0.2


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


async def open_queue(backend: Backend, clock: ManualClock, **settings: Any) -> Any:
    return await backend.open(QueueSettings(change_check_interval=POLL, **settings), clock=clock)


async def process_one(queue: Queue, session: str, *, fail: bool = False) -> int:
    """Claim the session's head and ack it (or fail it); returns its id."""
    stream = queue.stream(session, linger=0)
    claim = await stream.__anext__()
    if fail:
        await claim.fail("the processor said no")
    else:
        await claim.ack()
    await stream.aclose()
    return claim.message.id


class TestRetention:
    async def test_defaults_are_a_day_for_processed_and_two_weeks_for_failed(self) -> None:
        """The documented defaults, in seconds."""
        settings = QueueSettings()
        assert settings.processed_retention == DAY
        assert settings.failed_retention == 14 * DAY

    async def test_a_processed_row_is_kept_for_its_whole_retention(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """Not pruned after 86 s (the bug: seconds read as ms) nor at 24 h less a second;
        pruned a second past 24 h."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {"n": 1}, dedupe_key="toolu_1")
            await process_one(queue, "s")
            elapsed = 0.0
            for mark in (87.0, HOUR, DAY - 1):
                clock.advance(mark - elapsed)
                elapsed = mark
                report = await queue.maintain()
                assert report.processed_pruned == 0, f"pruned after {mark} s"
            clock.advance(2.0)
            assert (await queue.maintain()).processed_pruned == 1
        assert backend.rows() == []

    async def test_a_resent_event_is_a_duplicate_as_long_as_its_row_is_kept(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """The dedupe guarantee lasts the processed retention: a re-send 3 minutes or 23 hours
        later gets the original id back and stores nothing."""
        async with await open_queue(backend, clock) as queue:
            first = await queue.enqueue("s", "observation", {"n": 1}, dedupe_key="toolu_1")
            await process_one(queue, "s")
            for wait in (180.0, 23 * HOUR):
                clock.advance(wait)
                await queue.maintain()
                again = await queue.enqueue("s", "observation", {"n": 1}, dedupe_key="toolu_1")
                assert (again.message_id, again.created) == (first.message_id, False)
            assert (await queue.stats()).counts.processed == 1

    async def test_a_failed_row_stays_visible_for_fourteen_days(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """Still listed after 20 minutes (the bug) and at 14 days less a second; pruned after."""
        async with await open_queue(backend, clock, max_attempts=1) as queue:
            await queue.enqueue("s", "observation", {})
            failed_id = await process_one(queue, "s", fail=True)
            clock.advance(20 * 60)
            assert (await queue.maintain()).failed_pruned == 0
            clock.advance(14 * DAY - 20 * 60 - 1)
            assert (await queue.maintain()).failed_pruned == 0
            assert [m.id for m in await queue.failed()] == [failed_id]
            clock.advance(2.0)
            assert (await queue.maintain()).failed_pruned == 1
            assert await queue.failed() == []

    async def test_a_row_processed_100_seconds_ago_survives_on_the_real_clock(
        self, backend: Backend
    ) -> None:
        """Without a test clock too: a row settled 100 s ago is not pruned (the default
        retention is a day, not 86.4 s)."""
        async with await backend.open() as queue:
            await queue.enqueue("s", "observation", {}, dedupe_key="k")
            await process_one(queue, "s")
            await queue.run_in_transaction(
                lambda tx: tx.execute(
                    backend.sql("UPDATE pending_messages SET finished_at = finished_at - ?"),
                    (100_000,),
                )
            )
            assert (await queue.maintain()).processed_pruned == 0
            assert not (await queue.enqueue("s", "observation", {}, dedupe_key="k")).created


class TestLease:
    async def test_a_claim_is_taken_back_only_after_its_lease_and_grace(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """A 120 s lease is stored as 120 s plus 12 s of grace; the watchdog leaves the claim
        alone until then and takes it back after."""
        async with await open_queue(backend, clock, lease=120.0) as queue:
            await queue.enqueue("s", "observation", {})
            stream = queue.stream("s", linger=0)
            claim = await stream.__anext__()
            (row,) = backend.rows()
            assert row["lease_until"] - row["started_at"] == 132_000
            clock.advance(131.0)
            assert (await queue.maintain()).leases_reclaimed == 0
            clock.advance(2.0)
            report = await queue.maintain()
            assert report.reclaimed_ids == (claim.message.id,)
            (row,) = backend.rows()
            assert (row["status"], row["attempts"]) == ("pending", 1)
            await stream.aclose()


class NextClaim:
    """Asks a stream for its next claim in the background; ``claim`` is None if it ended."""

    def __init__(self, stream: SessionStream) -> None:
        self.stream = stream
        self.claim: Claim | None = None
        self.done = anyio.Event()

    async def run(self) -> None:
        try:
            self.claim = await self.stream.__anext__()
        except StopAsyncIteration:
            pass
        finally:
            self.done.set()

    async def result(self) -> Claim | None:
        with anyio.fail_after(5):
            await self.done.wait()
        return self.claim


class TestBackoff:
    async def test_a_failed_attempt_waits_one_second_then_four(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """The stored wait follows retry_delay and retry_backoff in seconds."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {})
            start = clock.now()
            await process_one(queue, "s", fail=True)
            (row,) = backend.rows()
            assert row["available_at"] - start == 1000
            clock.advance(1.0)
            await process_one(queue, "s", fail=True)
            (row,) = backend.rows()
            assert row["available_at"] - clock.now() == 4000

    async def test_a_stream_waits_for_its_backing_off_head_on_the_clock(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """The session's stream holds the head until its retry time, not a moment less, and
        takes it as soon as the clock gets there."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {})
            await process_one(queue, "s", fail=True)
            stream = queue.stream("s", linger=0)
            nxt = NextClaim(stream)
            async with anyio.create_task_group() as tg:
                tg.start_soon(nxt.run)
                clock.advance(0.9)
                await anyio.sleep(SETTLE)
                assert not nxt.done.is_set()
                clock.advance(0.1)
                claim = await nxt.result()
            assert claim is not None
            assert claim.message.attempts == 2
            await claim.ack()
            await stream.aclose()


class TestLinger:
    async def test_an_idle_stream_lingers_its_seconds_then_ends(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """linger=5.0 is five seconds of the clock: still waiting at 4.9 s, ended at 5 s."""
        async with await open_queue(backend, clock) as queue:
            nxt = NextClaim(queue.stream("s", linger=5.0))
            async with anyio.create_task_group() as tg:
                tg.start_soon(nxt.run)
                await anyio.sleep(SETTLE)
                clock.advance(4.9)
                await anyio.sleep(SETTLE)
                assert not nxt.done.is_set()
                clock.advance(0.1)
                assert await nxt.result() is None

    async def test_work_that_arrives_while_lingering_is_claimed_at_once(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """An enqueue wakes a lingering stream without the clock moving at all."""
        async with await open_queue(backend, clock) as queue:
            stream = queue.stream("s", linger=5.0)
            nxt = NextClaim(stream)
            async with anyio.create_task_group() as tg:
                tg.start_soon(nxt.run)
                await anyio.sleep(SETTLE)
                message = await queue.enqueue("s", "observation", {})
                claim = await nxt.result()
            assert claim is not None
            assert claim.message.id == message.message_id
            await claim.ack()
            await stream.aclose()
            assert await queue.status_of(message.message_id) is MessageStatus.PROCESSED


class TestClockSteps:
    async def test_a_retry_is_not_held_an_extra_hour_when_the_clock_is_set_back(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """A due time further ahead than any wait the queue sets (30 s here) can only come
        from a clock set back since: the head is due at once."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {})
            await process_one(queue, "s", fail=True)
            clock.step_wall(-HOUR)
            stream = queue.stream("s", linger=0)
            with anyio.fail_after(5):
                claim = await stream.__anext__()
            assert claim.message.attempts == 2
            await claim.ack()
            await stream.aclose()

    async def test_a_retry_within_its_wait_still_waits_after_a_small_step_back(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """Setting the clock back a little is indistinguishable from a wait: it is kept."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {})
            await process_one(queue, "s", fail=True)
            clock.step_wall(-2.0)  # the head is now due in 3 s: a wait the queue could set
            stream = queue.stream("s", linger=0)
            nxt = NextClaim(stream)
            async with anyio.create_task_group() as tg:
                tg.start_soon(nxt.run)
                await anyio.sleep(SETTLE)
                assert not nxt.done.is_set()
                clock.advance(3.0)
                claim = await nxt.result()
            assert claim is not None
            await claim.ack()
            await stream.aclose()

    async def test_a_clock_set_forward_does_not_take_back_a_running_claim(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """The watchdog measures a held claim on the monotonic clock: an hour's step of the
        wall clock leaves it alone, and its ack still lands."""
        async with await open_queue(backend, clock, lease=120.0) as queue:
            message = await queue.enqueue("s", "observation", {})
            stream = queue.stream("s", linger=0)
            claim = await stream.__anext__()
            clock.step_wall(HOUR)
            assert (await queue.maintain()).leases_reclaimed == 0
            await claim.ack()
            await stream.aclose()
            assert await queue.status_of(message.message_id) is MessageStatus.PROCESSED

    async def test_a_long_deferral_is_cut_to_max_defer(
        self, backend: Backend, clock: ManualClock
    ) -> None:
        """A deferral asks for a day; it waits max_defer (600 s by default) and no more."""
        async with await open_queue(backend, clock) as queue:
            await queue.enqueue("s", "observation", {})
            stream = queue.stream("s", linger=0)
            claim = await stream.__anext__()
            await claim.defer(DAY, "rate limited")
            await stream.aclose()
            (row,) = backend.rows()
            assert row["available_at"] - clock.now() == 600_000
