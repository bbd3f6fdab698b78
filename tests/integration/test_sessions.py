"""The session manager and the claim handler on a real queue, on each backend."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from structlog.testing import capture_logs

from memq.exceptions import ProcessorAuthError, TransientProcessorError
from memq.memory.records import ProcessResult, SessionContext
from memq.memory.store import MemoryStore
from memq.processors.base import Processor
from memq.queue import Claim, Message, MessageStatus, QueueSettings
from memq.queue.testing import ManualClock
from memq.worker.processing import ClaimHandler
from memq.worker.sessions import SessionManager
from tests.helpers.backends import Backend

FAST = QueueSettings(retry_delay=0.01, retry_delay_max=0.02, change_check_interval=0.05)


async def run_until(manager: SessionManager, done: Callable[[], bool]) -> None:
    """Run the manager until ``done()`` holds (10 s at most), then stop it."""
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            await tg.start(manager.run)
            while not done():  # noqa: ASYNC110 - the condition is the test's own bookkeeping
                await anyio.sleep(0.01)
            await manager.stop(grace=1)


def acking(log: list[tuple[str, int]], delay: float = 0) -> Callable[[Claim], Awaitable[None]]:
    """A handler that records (session, payload i) and acks."""

    async def handle(claim: Claim) -> None:
        async with claim:
            if delay:
                await anyio.sleep(delay)
            log.append((claim.message.session_id, claim.message.payload["i"]))

    return handle


class TestScheduling:
    async def test_sessions_with_a_backlog_are_scheduled_at_start(self, backend: Backend) -> None:
        """Work left from before the start is picked up without any new event."""
        async with await backend.open(FAST) as queue:
            for i in range(6):
                await queue.enqueue(f"s{i % 3}", "observation", {"i": i})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), capacity=2, linger=0.05)
            await run_until(manager, lambda: len(seen) == 6)
        for session in ("s0", "s1", "s2"):
            assert [i for s, i in seen if s == session] == sorted(
                i for s, i in seen if s == session
            )

    async def test_no_more_sessions_than_the_capacity_run_at_once(self, backend: Backend) -> None:
        """The limiter bounds concurrent processing."""
        async with await backend.open(FAST) as queue:
            busy, peak, seen = 0, 0, []

            async def handle(claim: Claim) -> None:
                nonlocal busy, peak
                async with claim:
                    busy += 1
                    peak = max(peak, busy)
                    await anyio.sleep(0.02)
                    busy -= 1
                    seen.append(claim.message.id)

            for i in range(20):
                await queue.enqueue(f"s{i % 5}", "observation", {"i": i})
            manager = SessionManager(queue, handle, capacity=2, linger=0.05)
            await run_until(manager, lambda: len(seen) == 20)
        assert peak == 2

    async def test_a_lingering_session_gives_its_slot_to_a_waiting_one(
        self, backend: Backend
    ) -> None:
        """With one slot, a session idling in its 30 s linger does not hold up another."""
        async with await backend.open(FAST) as queue:
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), capacity=1, linger=30)
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                await queue.enqueue("a", "observation", {"i": 0})
                manager.notify("a")
                with anyio.fail_after(5):
                    while len(seen) < 1:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    # "a" now lingers in the only slot.
                    await queue.enqueue("b", "observation", {"i": 1})
                    manager.notify("b")
                    started = anyio.current_time()
                    while len(seen) < 2:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                assert anyio.current_time() - started < 2
                await manager.stop(grace=1)
        assert seen == [("a", 0), ("b", 1)]

    async def test_a_busy_session_yields_its_slot_after_its_quantum(self, backend: Backend) -> None:
        """A session with a long backlog does not starve one that arrives later."""
        async with await backend.open(FAST) as queue:
            for i in range(100):
                await queue.enqueue("long", "observation", {"i": i})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), capacity=1, linger=0.05, quantum=10)
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                with anyio.fail_after(10):
                    while len(seen) < 3:  # noqa: ASYNC110
                        await anyio.sleep(0.001)
                    await queue.enqueue("short", "observation", {"i": -1})
                    manager.notify("short")
                    while len(seen) < 101:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                await manager.stop(grace=1)
        position = seen.index(("short", -1))
        assert position <= 3 + 10 + 1

    async def test_work_after_a_summarize_is_picked_up(self, backend: Backend) -> None:
        """The stream ends after a summarize; the manager starts another for what follows."""
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            await queue.enqueue("s", "summarize", {"i": 1})
            await queue.enqueue("s", "observation", {"i": 2})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), capacity=1, linger=0.05)
            await run_until(manager, lambda: len(seen) == 3)
        assert [i for _, i in seen] == [0, 1, 2]


def hanging(started: anyio.Event) -> Callable[[Claim], Awaitable[None]]:
    """A handler that signals ``started`` and then never finishes on its own."""

    async def handle(claim: Claim) -> None:
        async with claim:
            started.set()
            await anyio.sleep(60)

    return handle


class TestStopping:
    async def test_forget_cancels_the_session_and_hands_its_claim_back(
        self, backend: Backend
    ) -> None:
        """Deleting a session mid-message cancels its task; the message is pending again."""
        async with await backend.open(FAST) as queue:
            message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
            started = anyio.Event()
            manager = SessionManager(queue, hanging(started), capacity=1, linger=0.05)
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    await started.wait()
                    await manager.forget("s")
                    assert manager.active_sessions == []
                    await manager.stop(grace=1)
            assert await queue.status_of(message_id) is MessageStatus.PENDING
        assert backend.rows()[0]["attempts"] == 0

    async def test_stop_lets_a_message_finish_within_the_grace(self, backend: Backend) -> None:
        """In-flight work that finishes within the grace period is kept."""
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            seen: list[tuple[str, int]] = []
            started = anyio.Event()

            async def slow(claim: Claim) -> None:
                async with claim:
                    started.set()
                    await anyio.sleep(0.3)
                    seen.append((claim.message.session_id, 0))

            manager = SessionManager(queue, slow, capacity=1, linger=30)
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    await started.wait()
                    await manager.stop(grace=5)
        assert seen == [("s", 0)]
        assert backend.rows()[0]["status"] == "processed"

    async def test_stop_cancels_what_outlasts_the_grace(self, backend: Backend) -> None:
        """A message still running after the grace goes back to pending, uncounted."""
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            started = anyio.Event()
            manager = SessionManager(queue, hanging(started), capacity=1, linger=30)
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    await started.wait()
                    await manager.stop(grace=0.2)
        row = backend.rows()[0]
        assert (row["status"], row["attempts"]) == ("pending", 0)


def every_session(processor: Processor) -> Callable[[str], Processor]:
    """The handler's processor lookup when every session gets ``processor``."""
    return lambda _session: processor


class ScriptedProcessor:
    """A processor whose behaviour the test chooses per payload."""

    name = "scripted"

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        action = message.payload.get("do")
        if action == "raise":
            raise ValueError("cannot make sense of this payload")
        if action == "hang":
            await anyio.sleep(3600)
        return ProcessResult()


class TestClaimHandler:
    async def test_a_raising_processor_fails_attempts_and_logs_them(self, backend: Backend) -> None:
        """The processor's error is the attempt's error; after max_attempts it is failed,
        and the session's next message is still processed."""
        settings = QueueSettings(max_attempts=2, retry_delay=0.01)
        async with await backend.open(settings) as queue:
            store = await backend.reader(MemoryStore)
            bad = (await queue.enqueue("s", "observation", {"do": "raise"})).message_id
            good = (await queue.enqueue("s", "observation", {"do": "ok"})).message_id
            manager = SessionManager(
                queue,
                ClaimHandler(every_session(ScriptedProcessor()), store),
                capacity=1,
                linger=0.05,
            )
            with capture_logs() as logs:
                await run_until(
                    manager,
                    lambda: (
                        len(backend.rows()) == 2
                        and all(r["status"] in ("processed", "failed") for r in backend.rows())
                    ),
                )
            await store.close()
            (failed,) = await queue.failed()
        assert failed.id == bad
        assert failed.last_error == "ValueError: cannot make sense of this payload"
        processed = [e for e in logs if e["event"] == "message.processed"]
        assert [(e["session_id"], e["message_id"]) for e in processed] == [("s", good)]
        assert [e["event"] for e in logs if e.get("message_id") == bad] == [
            "message.claimed",
            "message.retry_scheduled",
            "message.claimed",
            "message.failed",
        ]

    async def test_a_hanging_processor_is_cut_off_by_the_lease(self, backend: Backend) -> None:
        """A processor that never returns loses its attempt when the lease runs out."""
        settings = QueueSettings(lease=0.2, max_attempts=1)
        async with await backend.open(settings) as queue:
            store = await backend.reader(MemoryStore)
            await queue.enqueue("s", "observation", {"do": "hang"})
            manager = SessionManager(
                queue,
                ClaimHandler(every_session(ScriptedProcessor()), store),
                capacity=1,
                linger=0.05,
            )
            await run_until(manager, lambda: backend.rows()[0]["status"] == "failed")
            await store.close()
        assert "LeaseExpiredError" in backend.rows()[0]["last_error"]


class FlakyProcessor:
    """Fails the way a model API does, as many times as the test says."""

    name = "flaky"

    def __init__(self, error: Exception, times: int) -> None:
        self.error = error
        self.times = times
        self.calls = 0

    async def process(self, message: Message, context: SessionContext) -> ProcessResult:
        self.calls += 1
        if self.calls <= self.times:
            raise self.error
        return ProcessResult()


class TestModelApiFailures:
    async def test_a_rate_limit_is_waited_out_without_spending_attempts(
        self, backend: Backend
    ) -> None:
        """429-style failures defer the message by Retry-After; it then succeeds on its
        first counted attempt."""
        async with await backend.open(FAST) as queue:
            store = await backend.reader(MemoryStore)
            processor = FlakyProcessor(TransientProcessorError("429", retry_after=0.05), 3)
            manager = SessionManager(
                queue, ClaimHandler(every_session(processor), store), capacity=1, linger=0.05
            )
            await queue.enqueue("s", "observation", {"i": 0})
            with capture_logs() as logs:
                await run_until(manager, lambda: backend.rows()[0]["status"] == "processed")
            await store.close()
        assert processor.calls == 4
        assert backend.rows()[0]["attempts"] == 1
        assert [e["event"] for e in logs].count("message.deferred") == 3

    async def test_an_endpoint_that_never_recovers_still_ends_failed(
        self, backend: Backend
    ) -> None:
        """Every few transient failures count one attempt, so the message cannot loop."""
        settings = QueueSettings(max_attempts=2, retry_delay=0.01)
        async with await backend.open(settings) as queue:
            store = await backend.reader(MemoryStore)
            processor = FlakyProcessor(TransientProcessorError("503", retry_after=0.01), 10**6)
            manager = SessionManager(
                queue, ClaimHandler(every_session(processor), store), capacity=1, linger=0.05
            )
            await queue.enqueue("s", "observation", {"i": 0})
            await run_until(manager, lambda: backend.rows()[0]["status"] == "failed")
            await store.close()
        assert processor.calls == 2 * 5
        assert "TransientProcessorError: 503" in backend.rows()[0]["last_error"]

    async def test_an_auth_error_pauses_everything_until_resumed(self, backend: Backend) -> None:
        """Refused credentials: processing pauses, nothing is failed or counted; after
        resume every session's messages are processed."""
        async with await backend.open(FAST) as queue:
            store = await backend.reader(MemoryStore)
            processor = FlakyProcessor(ProcessorAuthError("key refused"), 10**6)

            def pause(reason: str) -> None:
                manager.pause(reason)

            handler = ClaimHandler(every_session(processor), store, pause=pause)
            manager = SessionManager(queue, handler, capacity=2, linger=0.05)
            for session in ("a", "b", "c"):
                await queue.enqueue(session, "observation", {"i": 0})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    while not manager.paused:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    await anyio.sleep(0.3)
                    assert manager.pause_reason == "key refused"
                    rows = backend.rows()
                    assert {r["status"] for r in rows} == {"pending"}
                    assert {r["attempts"] for r in rows} == {0}
                    manager.notify("a")  # new events queue but do not run while paused
                    assert manager.active_sessions == []
                    processor.times = 0  # the user fixed the key
                    assert await manager.resume()
                    while {r["status"] for r in backend.rows()} != {"processed"}:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    await manager.stop(grace=1)
            await store.close()


# -- intake before processing (SessionManager.intake) -----------------------------------


async def wait_for(condition: Callable[[], bool]) -> None:
    """Yield until ``condition()`` holds; a hang fails after 10 s."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the condition is the test's bookkeeping
            await anyio.sleep(0.005)


def statuses(backend: Backend) -> list[tuple[str, int]]:
    return [(r["status"], r["attempts"]) for r in backend.rows()]


def claimed(backend: Backend, count: int = 1) -> Callable[[], bool]:
    """Whether ``count`` messages are claimed (held, waiting their turn or handled)."""
    return lambda: [s for s, _ in statuses(backend)].count(MessageStatus.PROCESSING) == count


class TestIntakeFirst:
    """While events are being taken in, the generators wait their turn at the intake gate."""

    async def test_a_message_waits_while_an_event_is_taken_in(self, backend: Backend) -> None:
        """Claimed, it is held while an event is in flight; once that is queued, it is
        handled at once."""
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), linger=0.05, intake_wait=60)
            manager.intake.arrived()
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                await wait_for(lambda: claimed(backend)() and manager.intake.waiting == 1)
                await anyio.sleep(0.1)
                assert seen == []
                manager.intake.departed()
                await wait_for(lambda: seen == [("s", 0)])
                await manager.stop(grace=1)
        assert statuses(backend) == [(MessageStatus.PROCESSED, 1)]

    async def test_events_that_never_pause_let_one_message_through_per_wait(
        self, backend: Backend
    ) -> None:
        """Processing keeps a bounded share under a burst: one message every
        ``intake_wait`` seconds (on the queue's clock), in order."""
        clock = ManualClock()
        async with await backend.open(FAST, clock=clock) as queue:
            for i in range(2):
                await queue.enqueue("s", "observation", {"i": i})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), linger=0.05, intake_wait=10)
            gate = manager.intake
            gate.arrived()  # an event in flight from here to the end

            def another_event() -> None:
                gate.arrived()
                gate.departed()

            def handled(count: int) -> Callable[[], bool]:
                return lambda: len(seen) == count

            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                for i in range(2):
                    # Claimed (the second with the first's ack), and held.
                    await wait_for(lambda: claimed(backend)() and gate.waiting == 1)
                    another_event()
                    await anyio.sleep(0.05)
                    assert len(seen) == i
                    clock.advance(10)
                    another_event()
                    await wait_for(handled(i + 1))
                assert seen == [("s", 0), ("s", 1)]
                gate.departed()
                await manager.stop(grace=1)
        assert gate.given_in_bursts == 2

    async def test_a_message_held_for_its_turn_goes_back_untried(self, backend: Backend) -> None:
        """A message claimed and waiting its turn was not begun: pausing its session hands
        it back (pending, its attempt refunded), and it stays unprocessed."""
        paused: set[str] = set()
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(
                queue, acking(seen), linger=0.05, intake_wait=60, is_paused=paused.__contains__
            )
            manager.intake.arrived()
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                await wait_for(lambda: claimed(backend)() and manager.intake.waiting == 1)
                paused.add("s")
                await manager.setting_changed("s")
                await wait_for(lambda: statuses(backend) == [(MessageStatus.PENDING, 0)])
                manager.intake.departed()
                await anyio.sleep(0.1)
                assert seen == []
                await manager.stop(grace=1)
        assert statuses(backend) == [(MessageStatus.PENDING, 0)]

    async def test_stop_does_not_wait_for_the_intake(self, backend: Backend) -> None:
        """A stop ends a generator waiting its turn at once; its claimed message goes back."""
        async with await backend.open(FAST) as queue:
            await queue.enqueue("s", "observation", {"i": 0})
            seen: list[tuple[str, int]] = []
            manager = SessionManager(queue, acking(seen), linger=0.05, intake_wait=60)
            manager.intake.arrived()
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                await wait_for(lambda: claimed(backend)() and manager.intake.waiting == 1)
                with anyio.fail_after(5):
                    await manager.stop(grace=30)
        assert seen == []
        assert statuses(backend) == [(MessageStatus.PENDING, 0)]
