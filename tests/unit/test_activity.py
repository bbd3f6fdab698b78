"""The activity tracker's triggers, retries and idle expiry, on a recording fake writer and a
fake clock: no sleeping, no database."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from typing import Any

import anyio
import anyio.lowlevel
import pytest
from structlog.testing import capture_logs

from memq.config import SettingError, Settings
from memq.exceptions import QueueClosedError, StorageError
from memq.queue import EpochMs, Transaction
from memq.worker.activity import QUERIES, ActivityTracker
from tests.helpers.clock import FakeClock


class RecordingTx:
    def __init__(self) -> None:
        self.statements: list[tuple[str, list[Any]]] = []

    async def executemany(self, sql: str, parameters: Any) -> None:
        self.statements.append((sql, list(parameters)))

    async def execute(self, sql: str, parameters: Any) -> int:
        self.statements.append((sql, [parameters]))
        return 1


class RecordingWriter:
    """Stands in for the queue: each ``run_in_transaction`` is one transaction; the next
    ``failures`` calls raise instead."""

    def __init__(self) -> None:
        self.transactions: list[list[tuple[str, list[Any]]]] = []
        self.failures: list[Exception] = []

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[None]]) -> None:
        if self.failures:
            raise self.failures.pop(0)
        tx = RecordingTx()
        await fn(tx)  # type: ignore[arg-type]
        self.transactions.append(tx.statements)

    def rows(self, index: int = -1) -> dict[str, int]:
        (statement,) = self.transactions[index]
        return {row["session_key"]: row["last_access_at"] for row in statement[1]}


def tracker(writer: RecordingWriter, clock: FakeClock, **kw: Any) -> ActivityTracker:
    """A tracker on ``clock`` (its wall clock reads 1_000_000 ms unless the test sets it)."""
    return ActivityTracker(writer, clock=clock, **kw)


class TestTouch:
    def test_a_touch_is_remembered_in_memory_and_writes_nothing(self) -> None:
        """The hot path only updates the tracker's state."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        activity.touch("a")
        clock.advance(2)
        activity.touch("b")
        assert (activity.tracked, activity.dirty) == (2, 2)
        assert activity.last_access("a") == 1000.0
        assert activity.last_access("b") == 1002.0
        assert activity.last_access("c") is None
        assert writer.transactions == []

    def test_touch_needs_no_running_event_loop(self) -> None:
        """The HTTP intake calls it without awaiting; it must not need an async context."""
        activity = tracker(RecordingWriter(), FakeClock(), flush_every_events=1)
        activity.touch("a")
        activity.touch("a")
        assert activity.tracked == 1

    @pytest.mark.parametrize(
        "kwargs",
        [{"ttl": 0}, {"flush_interval": 0}, {"flush_every_events": 0}],
    )
    def test_nonsense_settings_are_refused(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(ValueError, match="must be"):
            ActivityTracker(RecordingWriter(), **kwargs)


class TestTriggers:
    async def test_n_touches_cost_one_transaction_with_one_statement(self) -> None:
        """The count trigger: N touches, one executemany upsert, one row per session."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock, flush_every_events=4)
        for i, session in enumerate(["a", "b", "a"]):
            clock.set_wall(5_000 + i)
            activity.touch(session)
            await activity.flush_if_due()
        assert writer.transactions == []  # 3 < 4, and no time passed
        clock.set_wall(5_010)
        activity.touch("c")
        await activity.flush_if_due()
        assert len(writer.transactions) == 1
        (statement,) = writer.transactions[0]
        assert statement[0] == QUERIES["upsert_last_access"]
        assert writer.rows() == {"a": 5_002, "b": 5_001, "c": 5_010}
        assert activity.dirty == 0

    async def test_m_seconds_after_the_first_unflushed_touch(self) -> None:
        """The time trigger counts from the first unwritten touch, not the last."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock, flush_every_events=100, flush_interval=5.0)
        activity.touch("a")
        clock.advance(3)
        activity.touch("a")
        assert await activity.flush_if_due() == pytest.approx(2.0)
        clock.advance(1.9)
        await activity.flush_if_due()
        assert writer.transactions == []
        clock.advance(0.1)
        assert await activity.flush_if_due() == math.inf
        assert len(writer.transactions) == 1

    async def test_nothing_is_written_while_nothing_was_touched(self) -> None:
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock, flush_interval=1.0)
        assert await activity.flush_if_due() == math.inf
        clock.advance(3600)
        assert await activity.flush_if_due() == math.inf
        assert await activity.flush() is True
        activity.touch("a")
        clock.advance(1)
        await activity.flush_if_due()
        clock.advance(3600)
        await activity.flush_if_due()
        await activity.flush()
        assert len(writer.transactions) == 1  # the one touch, once

    async def test_an_older_time_never_replaces_a_newer_one_in_memory(self) -> None:
        """Touches may carry times out of order; the batch keeps the newest."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        activity.touch("a", at=EpochMs(2_000))
        activity.touch("a", at=EpochMs(1_000))
        await activity.flush()
        assert writer.rows() == {"a": 2_000}

    async def test_a_hot_session_with_defaults(self) -> None:
        """10,000 events at 1,000 a second cost 40 transactions: one per 256 touches and
        the final flush, instead of 10,000."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        for _ in range(10_000):
            activity.touch("hot")
            clock.advance(0.001)
            await activity.flush_if_due()
        await activity.close()
        assert len(writer.transactions) == 10_000 // 256 + 1 == 40

    async def test_a_trickling_session_is_written_once_per_interval(self) -> None:
        """An event every second for a minute: the time trigger writes every 5 s (12
        transactions), never once per event."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        for _ in range(60):
            activity.touch("slow")
            clock.advance(1.0)
            await activity.flush_if_due()  # what the flush loop's deadline does
        assert len(writer.transactions) == 12
        assert activity.dirty == 0


class TestFailedFlush:
    @pytest.mark.parametrize("error", [StorageError("disk I/O error"), QueueClosedError()])
    async def test_entries_stay_dirty_and_are_retried_after_the_interval(
        self, error: Exception
    ) -> None:
        """A failed write is logged, loses nothing, and is not retried in a tight loop."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock, flush_every_events=2, flush_interval=5.0)
        writer.failures.append(error)
        activity.touch("a", at=EpochMs(100))
        activity.touch("b", at=EpochMs(200))
        with capture_logs() as logs:
            assert await activity.flush_if_due() == pytest.approx(5.0)
        assert [e["event"] for e in logs] == ["activity.flush_failed"]
        assert logs[0]["log_level"] == "warning"
        assert activity.dirty == 2
        await activity.flush_if_due()
        assert writer.transactions == []  # not at once: the retry waits for a trigger
        activity.touch("a", at=EpochMs(150))  # newer than the failed batch's 100
        clock.advance(5)
        await activity.flush_if_due()
        assert writer.rows() == {"a": 150, "b": 200}
        assert activity.dirty == 0

    async def test_a_newer_touch_during_a_failed_flush_wins(self) -> None:
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        activity.touch("a", at=EpochMs(100))

        async def fail_after_a_touch(fn: Callable[[Transaction], Awaitable[None]]) -> None:
            activity.touch("a", at=EpochMs(300))
            raise StorageError("database is locked")

        writer.run_in_transaction = fail_after_a_touch  # type: ignore[method-assign]
        assert await activity.flush() is False
        del writer.run_in_transaction
        await activity.flush()
        assert writer.rows() == {"a": 300}

    async def test_a_bug_is_not_swallowed_but_nothing_is_lost(self) -> None:
        """Only storage errors are expected; anything else propagates (after the batch is
        put back, so a later flush still writes it)."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        writer.failures.append(RuntimeError("bug"))
        activity.touch("a", at=EpochMs(7))
        with pytest.raises(RuntimeError):
            await activity.flush()
        await activity.flush()
        assert writer.rows() == {"a": 7}

    async def test_a_forgotten_session_is_deleted_and_not_written_again(self) -> None:
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        expired: list[str] = []
        activity.on_expire(expired.append)
        activity.touch("deleted", at=EpochMs(1))
        activity.touch("kept", at=EpochMs(2))
        await activity.forget("deleted")
        assert writer.transactions == [
            [(QUERIES["delete_last_access"], [{"session_key": "deleted"}])]
        ]
        await activity.flush()
        assert writer.rows() == {"kept": 2}
        assert activity.last_access("deleted") is None
        clock.advance(1e6)
        assert await activity.sweep() == ["kept"]
        assert expired == ["kept"]  # forgetting is not expiring

    async def test_a_flush_failing_while_forget_waits_does_not_bring_it_back(self) -> None:
        """``forget`` waits for the flush in flight; when that flush fails and puts its batch
        back, the forgotten session is not in what the next flush writes."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock)
        entered, proceed = anyio.Event(), anyio.Event()

        async def slow_failure(fn: Callable[[Transaction], Awaitable[None]]) -> None:
            entered.set()
            await proceed.wait()
            raise StorageError("disk I/O error")

        writer.run_in_transaction = slow_failure  # type: ignore[method-assign]
        activity.touch("deleted", at=EpochMs(1))
        activity.touch("kept", at=EpochMs(2))
        async with anyio.create_task_group() as tg:
            tg.start_soon(activity.flush)
            await entered.wait()
            del writer.run_in_transaction  # the delete and the next flush succeed
            tg.start_soon(activity.forget, "deleted")
            await anyio.lowlevel.checkpoint()
            proceed.set()
        await activity.flush()
        assert writer.transactions[0] == [
            (QUERIES["delete_last_access"], [{"session_key": "deleted"}])
        ]
        assert writer.rows() == {"kept": 2}


class TestExpiry:
    async def test_the_default_ttl_is_half_an_hour_of_seconds(self) -> None:
        """At the daemon's default (1800 s) a session idle 29 min 59 s stays, 30 min 1 s goes."""
        clock = FakeClock()
        activity = ActivityTracker(RecordingWriter(), clock=clock)
        assert activity.ttl == Settings().session_ttl == 1800.0
        activity.touch("a")
        clock.advance(1799)
        assert await activity.sweep() == []
        clock.advance(2)
        assert await activity.sweep() == ["a"]

    async def test_the_default_flush_interval_is_five_seconds(self) -> None:
        """A lone touch is written 5 s after it (the daemon's default), not before."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = ActivityTracker(writer, clock=clock)
        activity.touch("a")
        clock.advance(4.9)
        await activity.flush_if_due()
        assert writer.transactions == []
        clock.advance(0.1)
        await activity.flush_if_due()
        assert len(writer.transactions) == 1

    async def test_each_idle_session_is_expired_once(self) -> None:
        """Sync and async callbacks both run, once per session idle past the TTL."""
        clock = FakeClock()
        activity = tracker(RecordingWriter(), clock, ttl=60)
        seen: list[tuple[str, str]] = []

        async def async_callback(key: str) -> None:
            seen.append(("async", key))

        activity.on_expire(lambda key: seen.append(("sync", key)))
        activity.on_expire(async_callback)
        activity.touch("old")
        clock.advance(30)
        activity.touch("young")
        clock.advance(30)
        assert await activity.sweep() == []  # exactly the TTL is not past it
        clock.advance(0.5)
        with capture_logs() as logs:
            assert await activity.sweep() == ["old"]
        assert seen == [("sync", "old"), ("async", "old")]
        assert logs == [
            {
                "event": "session.expired",
                "log_level": "info",
                "session_id": "old",
                "idle_seconds": 60.5,
            }
        ]
        assert await activity.sweep() == []  # not twice
        assert (activity.tracked, activity.last_access("old")) == (1, None)
        clock.advance(30)
        assert await activity.sweep() == ["young"]
        assert seen[2:] == [("sync", "young"), ("async", "young")]

    async def test_a_raising_callback_does_not_stop_the_others(self) -> None:
        clock = FakeClock()
        activity = tracker(RecordingWriter(), clock, ttl=10)
        seen: list[str] = []

        def broken(key: str) -> None:
            raise RuntimeError(f"cannot drop {key}")

        async def broken_async(key: str) -> None:
            raise RuntimeError("async too")

        activity.on_expire(broken)
        activity.on_expire(broken_async)
        activity.on_expire(seen.append)
        activity.touch("a")
        activity.touch("b")
        clock.advance(11)
        with capture_logs() as logs:
            assert sorted(await activity.sweep()) == ["a", "b"]
        assert sorted(seen) == ["a", "b"]
        failed = [e for e in logs if e["event"] == "session.expire_failed"]
        assert len(failed) == 4
        assert {e["session_id"] for e in failed} == {"a", "b"}
        assert all(e["log_level"] == "error" for e in failed)

    async def test_a_session_touched_again_is_not_expired(self) -> None:
        clock = FakeClock()
        activity = tracker(RecordingWriter(), clock, ttl=10)
        seen: list[str] = []
        activity.on_expire(seen.append)
        activity.touch("a")
        clock.advance(9)
        activity.touch("a")
        clock.advance(9)
        assert await activity.sweep() == []
        assert seen == []

    async def test_a_session_touched_while_another_expires_is_kept(self) -> None:
        """Callbacks await; a session used meanwhile is no longer idle."""
        clock = FakeClock()
        activity = tracker(RecordingWriter(), clock, ttl=10)
        activity.touch("first")
        activity.touch("second")
        clock.advance(11)
        seen: list[str] = []

        async def callback(key: str) -> None:
            seen.append(key)
            activity.touch("second")

        activity.on_expire(callback)
        assert await activity.sweep() == ["first"]
        assert seen == ["first"]
        assert activity.last_access("second") == clock.monotonic()

    async def test_an_expired_session_touched_again_starts_fresh(self) -> None:
        clock = FakeClock()
        activity = tracker(RecordingWriter(), clock, ttl=10)
        seen: list[str] = []
        activity.on_expire(seen.append)
        activity.touch("a")
        clock.advance(11)
        await activity.sweep()
        activity.touch("a")
        clock.advance(5)
        assert await activity.sweep() == []
        clock.advance(6)
        assert await activity.sweep() == ["a"]
        assert seen == ["a", "a"]

    async def test_an_expired_sessions_last_access_is_still_written(self) -> None:
        """Expiry drops in-memory state only; an unwritten time (storage was failing) is
        still written by the next flush."""
        writer, clock = RecordingWriter(), FakeClock()
        activity = tracker(writer, clock, ttl=10)
        activity.touch("a", at=EpochMs(42))
        clock.advance(11)
        await activity.sweep()
        await activity.flush()
        assert writer.rows() == {"a": 42}


class TestSettings:
    def test_defaults(self) -> None:
        settings = Settings.from_env({})
        assert settings.session_ttl == 1800.0
        assert settings.activity_flush_events == 256
        assert settings.activity_flush_interval == 5.0

    def test_read_from_the_environment(self) -> None:
        settings = Settings.from_env(
            {
                "MEMQ_SESSION_TTL": "90",
                "MEMQ_ACTIVITY_FLUSH_EVENTS": "1",
                "MEMQ_ACTIVITY_FLUSH_INTERVAL": "0.25",
            }
        )
        assert (
            settings.session_ttl,
            settings.activity_flush_events,
            settings.activity_flush_interval,
        ) == (90.0, 1, 0.25)

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("MEMQ_SESSION_TTL", "0"),
            ("MEMQ_SESSION_TTL", "-5"),
            ("MEMQ_SESSION_TTL", "inf"),
            ("MEMQ_ACTIVITY_FLUSH_EVENTS", "0"),
            ("MEMQ_ACTIVITY_FLUSH_EVENTS", "1000001"),
            ("MEMQ_ACTIVITY_FLUSH_EVENTS", "many"),
            ("MEMQ_ACTIVITY_FLUSH_INTERVAL", "0"),
            ("MEMQ_ACTIVITY_FLUSH_INTERVAL", "nan"),
        ],
    )
    def test_a_bad_value_names_its_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingError, match=name):
            Settings.from_env({name: value})
