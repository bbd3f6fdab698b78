"""Waking an idle stream: no commit before it waits, the claim made with the enqueue that
wakes it, handed back when the stream leaves instead; rows from another process announced to
whoever waits for them, and the queue's own writes not."""

from __future__ import annotations

import threading
from pathlib import Path

import anyio
import pytest

from memq.exceptions import QueueClosedError
from memq.queue import Claim, MessageStatus, Queue, QueueSettings
from tests.conftest import FAST
from tests.helpers.backends import Backend
from tests.helpers.processes import run_child
from tests.helpers.rows import all_rows, row


async def idle(queue: Queue, session: str) -> None:
    """Yield until ``session``'s stream waits (it looked and found nothing)."""
    with anyio.fail_after(5):
        while not any(  # noqa: ASYNC110 - the condition is the queue's own bookkeeping
            waiter.waiting for s, waiter in queue._wakeups._waiters.items() if s == session
        ):
            await anyio.sleep(0.001)


@pytest.mark.sqlite_only(
    "the in-process handoff and the writer's thread; on PostgreSQL a first look takes the "
    "session's lease (a commit) and a NOTIFY wakes the stream, which then claims for itself"
)
class TestWaiting:
    async def test_a_stream_that_finds_nothing_waits_without_a_commit(self, queue: Queue) -> None:
        """Looking at an empty session writes nothing: no empty claim before the wait."""
        before = queue._writer.batches
        with anyio.move_on_after(0.2):
            async for _claim in queue.stream("s", linger=30):
                pytest.fail("nothing was enqueued")
        assert queue._writer.batches == before

    async def test_the_enqueue_that_wakes_a_stream_claims_for_it(
        self, queue: Queue, db_path: Path
    ) -> None:
        """One commit takes the message and claims it for the waiting stream; the stream
        yields without a write of its own."""
        got: list[Claim] = []
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for claim in queue.stream("s", linger=30):
                    got.append(claim)
                    return

            tg.start_soon(consume)
            await idle(queue, "s")
            before = queue._writer.batches
            message_id = (await queue.enqueue("s", "observation", {"i": 1})).message_id
            assert row(db_path, message_id)["status"] == MessageStatus.PROCESSING
            assert row(db_path, message_id)["attempts"] == 1
        assert queue._writer.batches - before == 1
        assert [claim.message.id for claim in got] == [message_id]
        await got[0].ack()

    async def test_a_stream_cancelled_while_its_claim_is_made_hands_it_back(
        self, queue: Queue, db_path: Path
    ) -> None:
        """A stream cancelled while the enqueue's batch claims for it waits for that batch,
        then hands the claim back: pending again, its attempt refunded."""
        committing = threading.Event()
        verify = queue._writer._verify
        assert verify is not None

        def held_verify() -> None:  # runs in the writer's thread, after the commit
            committing.wait(5)
            verify()

        queue._writer._verify = held_verify
        consumer = anyio.CancelScope()
        got: list[Claim] = []
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                with consumer:
                    async for claim in queue.stream("s", linger=30):
                        got.append(claim)

            async def produce() -> None:
                await queue.enqueue("s", "observation", {"i": 1})

            tg.start_soon(consume)
            await idle(queue, "s")
            tg.start_soon(produce)
            await anyio.sleep(0.1)  # the batch is in the writer's thread, claim made
            consumer.cancel()
            await anyio.sleep(0.1)
            committing.set()
        (message,) = all_rows(db_path)
        assert got == []
        assert (message["status"], message["attempts"]) == (MessageStatus.PENDING, 0)
        assert await queue.has_pending("s")

    async def test_closing_hands_back_a_claim_being_made_for_a_waiting_stream(
        self, db_path: Path
    ) -> None:
        """A close that meets a batch claiming for a stream waits for it and hands the
        claim back with the others: the message is pending again, its attempt refunded."""
        queue = await Queue.open(db_path, FAST)
        committing = threading.Event()
        verify = queue._writer._verify
        assert verify is not None

        def held_verify() -> None:  # runs in the writer's thread, after the commit
            committing.wait(5)
            verify()

        queue._writer._verify = held_verify
        async with anyio.create_task_group() as tg:

            async def consume() -> None:
                async for _claim in queue.stream("s", linger=30):
                    return  # unsettled: the close hands it back

            async def produce() -> None:
                await queue.enqueue("s", "observation", {"i": 1})

            tg.start_soon(consume)
            await idle(queue, "s")
            tg.start_soon(produce)
            await anyio.sleep(0.1)  # the batch is in the writer's thread, claim made
            tg.start_soon(queue.close)
            await anyio.sleep(0.1)
            committing.set()
        (message,) = all_rows(db_path)
        assert (message["status"], message["attempts"]) == (MessageStatus.PENDING, 0)


class TestForeignRows:
    @pytest.mark.sqlite_only(
        "rows written by the hook's SQLite fallback; PostgreSQL's NOTIFY: tests/postgres"
    )
    async def test_rows_from_another_process_are_announced(self, db_path: Path) -> None:
        """``wait_for_foreign_rows`` returns once another process has committed."""
        settings = QueueSettings(change_check_interval=0.05)
        async with await Queue.open(db_path, settings) as queue:
            with anyio.fail_after(15):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(queue.wait_for_foreign_rows)
                    done = await anyio.to_thread.run_sync(
                        run_child, "insert-direct", str(db_path), "s", "toolu_1"
                    )
                    assert done.returncode == 0, done.stderr

    async def test_the_queues_own_writes_are_not_announced(self, backend: Backend) -> None:
        """Enqueues, claims and acks of this queue never end the wait."""
        settings = QueueSettings(change_check_interval=0.05)
        async with await backend.open(settings) as queue:
            with anyio.move_on_after(0.5) as waited:
                async with anyio.create_task_group() as tg:
                    tg.start_soon(queue.wait_for_foreign_rows)
                    for i in range(5):
                        await queue.enqueue("s", "observation", {"i": i})
                        await anyio.sleep(0.06)
                    async for claim in queue.stream("s", linger=0):
                        await claim.ack()
                    await anyio.sleep(1)
            assert waited.cancelled_caught

    async def test_closing_ends_the_wait(self, backend: Backend) -> None:
        """A wait for foreign rows ends with ``QueueClosedError`` when the queue closes."""
        queue = await backend.open(FAST)
        with anyio.fail_after(5):
            async with anyio.create_task_group() as tg:

                async def wait() -> None:
                    with pytest.raises(QueueClosedError):
                        await queue.wait_for_foreign_rows()

                tg.start_soon(wait)
                await anyio.sleep(0.1)
                await queue.close()
