"""The per-session generator: order, linger, wake-up, batch ends, ownership, original time."""

from __future__ import annotations

import time

import anyio
import pytest

from memq.exceptions import ClaimError, SessionBusyError
from memq.queue import ClaimState, MessageKind, Queue, QueueSettings
from tests.conftest import FAST
from tests.helpers.backends import Backend


async def drain(queue: Queue, session: str, linger: float = 0) -> list[int]:
    """Ack everything the session's stream yields; return the payloads' ``i`` in order."""
    seen = []
    async for claim in queue.stream(session, linger=linger):
        async with claim:
            seen.append(claim.message.payload["i"])
    return seen


class TestOrder:
    async def test_fifo_per_session_across_interleaved_sessions(self, backend: Backend) -> None:
        """Three sessions enqueued interleaved and drained at once each see their own order."""
        queue = backend.queue
        for i in range(30):
            await queue.enqueue(f"s{i % 3}", "observation", {"i": i})
        results: dict[str, list[int]] = {}

        async def consume(session: str) -> None:
            results[session] = await drain(queue, session)

        async with anyio.create_task_group() as tg:
            for session in ("s0", "s1", "s2"):
                tg.start_soon(consume, session)
        for k, session in enumerate(("s0", "s1", "s2")):
            assert results[session] == list(range(k, 30, 3))

    async def test_claim_carries_the_original_event_time(self, backend: Backend) -> None:
        """A message processed late still says when its event happened."""
        queue = backend.queue
        before = time.time()
        await queue.enqueue("s", "observation", {"i": 0})
        after = time.time()
        await anyio.sleep(0.3)
        claim = await queue.stream("s", linger=0).__anext__()
        created = claim.message.created_at.timestamp()
        assert before - 0.01 <= created <= after + 0.01
        assert time.time() - created >= 0.3
        await claim.ack()


class TestLinger:
    async def test_an_idle_stream_ends_after_linger(self, backend: Backend) -> None:
        """With no work the generator waits about ``linger`` seconds, then returns."""
        queue = backend.queue
        started = anyio.current_time()
        assert await drain(queue, "idle", linger=0.3) == []
        assert 0.3 <= anyio.current_time() - started < 2.0

    async def test_work_arriving_during_linger_wakes_the_stream_at_once(
        self, backend: Backend
    ) -> None:
        """An in-process enqueue wakes the idle stream without any polling: the cross-process
        check interval here is an hour, so only the wake-up can deliver the message."""
        settings = QueueSettings(change_check_interval=3600)
        async with await backend.open(settings) as queue:
            send, receive = anyio.create_memory_object_stream[float](3)

            async def consume() -> None:
                async with send:
                    async for claim in queue.stream("s", linger=30):
                        await send.send(anyio.current_time())
                        await claim.ack()

            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg, receive:
                    tg.start_soon(consume)
                    for i in range(3):
                        await anyio.sleep(0.2)  # the stream is idle, lingering
                        sent = anyio.current_time()
                        await queue.enqueue("s", "observation", {"i": i})
                        assert await receive.receive() - sent < 0.5
                    tg.cancel_scope.cancel()
            assert queue._changes.checks == 0

    async def test_linger_zero_returns_as_soon_as_the_queue_is_empty(
        self, backend: Backend
    ) -> None:
        """linger=0 drains what is there and stops."""
        queue = backend.queue
        for i in range(3):
            await queue.enqueue("s", "observation", {"i": i})
        with anyio.fail_after(2):
            assert await drain(queue, "s", linger=0) == [0, 1, 2]


class TestBatches:
    async def test_summarize_ends_the_batch(self, backend: Backend) -> None:
        """The stream returns right after yielding a summarize request; the rest waits for
        the next stream."""
        queue = backend.queue
        await queue.enqueue("s", "observation", {"i": 1})
        await queue.enqueue("s", "summarize", {"i": 2})
        await queue.enqueue("s", "observation", {"i": 3})
        kinds = []
        async for claim in queue.stream("s", linger=30):
            kinds.append(claim.message.kind)
            await claim.ack()
        assert kinds == [MessageKind.OBSERVATION, MessageKind.SUMMARIZE]
        assert await drain(queue, "s") == [3]

    async def test_a_failed_summarize_also_ends_the_batch(self, backend: Backend) -> None:
        """Whatever its outcome, the summarize message closes the stream."""
        queue = backend.queue
        await queue.enqueue("s", "summarize", {"i": 1})
        count = 0
        async for claim in queue.stream("s", linger=30):
            count += 1
            await claim.fail("model unavailable")
        assert count == 1


class TestOwnership:
    async def test_a_second_stream_on_a_busy_session_is_refused(self, backend: Backend) -> None:
        """Two consumers of one session would break its order."""
        queue = backend.queue
        await queue.enqueue("s", "observation", {"i": 0})
        await queue.enqueue("s", "observation", {"i": 1})
        first = queue.stream("s", linger=0)
        claim = await first.__anext__()
        with pytest.raises(SessionBusyError):
            await queue.stream("s", linger=0).__anext__()
        await claim.ack()
        await first.aclose()
        assert await drain(queue, "s") == [1]

    async def test_asking_for_the_next_claim_without_settling_is_an_error(
        self, backend: Backend
    ) -> None:
        """An unsettled claim is handed back, attempt refunded, and the mistake is named."""
        queue = backend.queue
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        stream = queue.stream("s", linger=0)
        await stream.__anext__()
        with pytest.raises(ClaimError, match="not settled"):
            await stream.__anext__()
        assert backend.row(message_id)["status"] == "pending"
        assert backend.row(message_id)["attempts"] == 0

    async def test_closing_a_stream_hands_back_its_claim(self, backend: Backend) -> None:
        """Leaving ``async with stream`` early returns the unsettled message to pending."""
        queue = backend.queue
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        async with queue.stream("s", linger=0) as stream:
            claim = await stream.__anext__()
            assert claim.state is ClaimState.ACTIVE
        assert backend.row(message_id)["status"] == "pending"
        assert await drain(queue, "s") == [0]

    async def test_cancelling_a_consumer_mid_claim_releases_it(self, backend: Backend) -> None:
        """Cancellation inside ``async with claim`` hands the message back, uncounted."""
        queue = backend.queue
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        claimed = []
        with anyio.move_on_after(0.2):
            async for claim in queue.stream("s", linger=0):
                async with claim:
                    claimed.append(claim.message.id)
                    await anyio.sleep(10)
        assert claimed == [message_id]
        assert backend.row(message_id)["status"] == "pending"
        assert backend.row(message_id)["attempts"] == 0

    async def test_cancelling_an_idle_stream_leaves_nothing_claimed(self, backend: Backend) -> None:
        """A stream cancelled while waiting holds nothing; the next one gets every message."""
        queue = backend.queue
        with anyio.move_on_after(0.1):
            await drain(queue, "s", linger=30)
        await queue.enqueue("s", "observation", {"i": 0})
        assert await drain(queue, "s") == [0]

    async def test_close_wakes_lingering_streams_and_releases_claims(
        self, backend: Backend
    ) -> None:
        """Closing the queue ends idle streams and returns unsettled claims to pending."""
        queue = await backend.open(FAST)
        held_id = (await queue.enqueue("held", "observation", {"i": 0})).message_id
        held = await queue.stream("held", linger=0).__anext__()
        ended = anyio.Event()

        async def linger() -> None:
            await drain(queue, "idle", linger=60)
            ended.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:
                tg.start_soon(linger)
                await anyio.sleep(0.1)
                await queue.close()
                await ended.wait()
        assert held.state is ClaimState.RELEASED
        assert backend.row(held_id)["status"] == "pending"
