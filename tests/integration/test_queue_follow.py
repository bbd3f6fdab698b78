"""The next claim rides the ack: inside ``async with queue.stream(...)``, acking a message
claims the session's next one in the same commit; closing hands it back."""

from __future__ import annotations

from pathlib import Path

import pytest

from memq.queue import MessageKind, MessageStatus, Queue, Transaction
from tests.helpers.rows import all_rows

pytestmark = pytest.mark.sqlite_only(
    "written against SQLite's writer (its batch count, the file's rows); PgQueue's claim "
    "with the ack is tested in tests/postgres/test_pg_queue_round_trips.py"
)


async def fill(queue: Queue, count: int, kind: MessageKind = MessageKind.OBSERVATION) -> None:
    for i in range(count):
        await queue.enqueue("s", kind, {"i": i})


def statuses(db_path: Path) -> list[tuple[str, int]]:
    return [(r["status"], r["attempts"]) for r in all_rows(db_path)]


class TestFollowingClaims:
    async def test_a_drain_takes_one_commit_per_message(self, queue: Queue) -> None:
        """Each ack claims the next message; the last one looks and finds nothing."""
        await fill(queue, 10)
        before = queue._writer.batches
        async with queue.stream("s", linger=0) as stream:
            async for claim in stream:
                await claim.ack()
        assert queue._writer.batches - before == 1 + 10  # the first claim, then the acks

    async def test_the_next_message_is_claimed_with_the_ack(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Right after the ack, the next message is already processing, its attempt
        counted; the one after it still waits."""
        await fill(queue, 3)
        async with queue.stream("s", linger=0) as stream:
            claim = await anext(stream)
            await claim.ack()
            assert statuses(db_path) == [
                (MessageStatus.PROCESSED, 1),
                (MessageStatus.PROCESSING, 1),
                (MessageStatus.PENDING, 0),
            ]
            following = await anext(stream)
            assert following.message.payload == {"i": 1}
            await following.ack()

    async def test_closing_hands_back_the_message_claimed_with_the_ack(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Leaving the loop after an ack hands the next message back, attempt refunded."""
        await fill(queue, 2)
        async with queue.stream("s", linger=0) as stream:
            async for claim in stream:
                await claim.ack()
                break
        assert statuses(db_path) == [(MessageStatus.PROCESSED, 1), (MessageStatus.PENDING, 0)]

    async def test_an_ack_with_its_result_claims_the_next_too(
        self, queue: Queue, db_path: Path
    ) -> None:
        """The result, the processed mark and the next claim are one commit."""
        await fill(queue, 2)

        async def nothing(tx: Transaction) -> None:
            await tx.execute("SELECT 1")

        async with queue.stream("s", linger=0) as stream:
            claim = await anext(stream)
            before = queue._writer.batches
            await claim.ack(nothing)
            assert queue._writer.batches - before == 1
            assert statuses(db_path)[1] == (MessageStatus.PROCESSING, 1)
            await (await anext(stream)).ack()

    async def test_a_failed_attempt_claims_nothing_more(self, queue: Queue, db_path: Path) -> None:
        """Only an ack claims ahead: a failure leaves the session's head to back off."""
        await fill(queue, 2)
        async with queue.stream("s", linger=0) as stream:
            claim = await anext(stream)
            await claim.fail("no")
        assert statuses(db_path) == [(MessageStatus.PENDING, 1), (MessageStatus.PENDING, 0)]

    async def test_a_summarize_ends_the_stream_without_claiming_ahead(
        self, queue: Queue, db_path: Path
    ) -> None:
        """The stream ends after a summarize: its ack claims nothing."""
        await fill(queue, 1, MessageKind.SUMMARIZE)
        await fill(queue, 1)
        async with queue.stream("s", linger=0) as stream:
            async for claim in stream:
                await claim.ack()
        assert statuses(db_path) == [(MessageStatus.PROCESSED, 1), (MessageStatus.PENDING, 0)]

    async def test_a_stream_not_sure_to_be_closed_claims_only_when_asked(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Outside ``async with``, nobody may close the stream: acks claim nothing ahead."""
        await fill(queue, 2)
        stream = queue.stream("s", linger=0)
        claim = await anext(stream)
        await claim.ack()
        assert statuses(db_path) == [(MessageStatus.PROCESSED, 1), (MessageStatus.PENDING, 0)]
        await stream.aclose()
