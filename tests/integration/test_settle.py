"""Settling claims: acks that carry results, failures with backoff, leases, retry, forget."""

from __future__ import annotations

import itertools

import anyio
import pytest
from structlog.testing import capture_logs

from memq.exceptions import ClaimLostError, ClaimSettledError
from memq.queue import ClaimState, MessageStatus, Queue, QueueSettings, Transaction
from tests.conftest import FAST
from tests.helpers.backends import Backend

RESULTS_TABLE = """
CREATE TABLE IF NOT EXISTS results (
    message_id INTEGER NOT NULL UNIQUE,
    body       TEXT    NOT NULL
)
"""


async def make_results_table(queue: Queue) -> None:
    """A stand-in for the worker's memory tables, created through the writer."""
    await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))


def results(backend: Backend) -> list[tuple[int, str]]:
    rows = backend.table("SELECT message_id, body FROM results ORDER BY message_id")
    return [(r["message_id"], r["body"]) for r in rows]


class TestAckWithResult:
    async def test_result_and_processed_mark_commit_together(self, backend: Backend) -> None:
        """The consumer's rows are written in the ack's transaction; the payload is dropped."""
        queue = backend.queue
        await make_results_table(queue)
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        async for claim in queue.stream("s", linger=0):

            async def store(tx: Transaction, claim_id: int = claim.message.id) -> None:
                await tx.execute(backend.sql("INSERT INTO results VALUES (?, 'done')"), (claim_id,))

            await claim.ack(store)
        assert results(backend) == [(message_id, "done")]
        stored = backend.row(message_id)
        assert stored["status"] == "processed"
        assert stored["payload"] is None
        assert stored["finished_at"] is not None

    async def test_a_failing_write_keeps_nothing_and_leaves_the_claim_open(
        self, backend: Backend
    ) -> None:
        """If storing the result fails, neither the result nor the ack is kept."""
        queue = backend.queue
        await make_results_table(queue)
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id

        async def half_then_boom(tx: Transaction) -> None:
            await tx.execute(
                backend.sql("INSERT INTO results VALUES (?, 'partial')"), (message_id,)
            )
            raise RuntimeError("processor bug")

        claim = await queue.stream("s", linger=0).__anext__()
        with pytest.raises(RuntimeError, match="processor bug"):
            await claim.ack(half_then_boom)
        assert claim.state is ClaimState.ACTIVE
        assert await claim.fail(RuntimeError("processor bug")) is MessageStatus.PENDING
        assert results(backend) == []
        assert backend.row(message_id)["status"] == "pending"

    async def test_a_claim_settles_only_once(self, backend: Backend) -> None:
        """A second ack, or a fail after an ack, is refused."""
        queue = backend.queue
        await queue.enqueue("s", "observation", {})
        claim = await queue.stream("s", linger=0).__anext__()
        await claim.ack()
        with pytest.raises(ClaimSettledError):
            await claim.ack()
        with pytest.raises(ClaimSettledError):
            await claim.fail("late")


class TestFailure:
    async def test_attempts_back_off_then_end_failed_with_the_last_error(
        self, backend: Backend
    ) -> None:
        """Each failure waits longer; after max_attempts the message is failed, error kept."""
        settings = QueueSettings(max_attempts=3, retry_delay=0.1, retry_backoff=2)
        async with await backend.open(settings) as queue:
            message_id = (await queue.enqueue("s", "observation", {})).message_id
            claimed_at: list[float] = []
            with capture_logs() as logs:
                async for claim in queue.stream("s", linger=0):
                    claimed_at.append(anyio.current_time())
                    status = await claim.fail(ValueError(f"attempt {claim.message.attempts}"))
                    assert claim.message.attempts == len(claimed_at)
            assert status is MessageStatus.FAILED
            gaps = [b - a for a, b in itertools.pairwise(claimed_at)]
            assert len(claimed_at) == 3
            assert gaps[0] >= 0.1
            assert gaps[1] >= 0.2
            stored = backend.row(message_id)
            assert stored["status"] == "failed"
            assert stored["attempts"] == 3
            assert stored["last_error"] == "ValueError: attempt 3"
            assert [e["event"] for e in logs].count("message.retry_scheduled") == 2
            failed_log = next(e for e in logs if e["event"] == "message.failed")
            assert failed_log["message_id"] == message_id
            assert failed_log["session_id"] == "s"

    async def test_backoff_holds_only_its_own_session(self, backend: Backend) -> None:
        """While one session's head waits to retry, other sessions keep flowing."""
        settings = QueueSettings(retry_delay=1.0)
        async with await backend.open(settings) as queue:
            await queue.enqueue("slow", "observation", {})
            fast_id = (await queue.enqueue("fast", "observation", {})).message_id
            slow = await queue.stream("slow", linger=0).__anext__()
            assert await slow.fail("try again later") is MessageStatus.PENDING
            acked = []
            with anyio.fail_after(0.5):
                async for claim in queue.stream("fast", linger=0):
                    await claim.ack()
                    acked.append(claim.message.id)
            assert acked == [fast_id]

    async def test_a_failed_message_does_not_block_the_session(self, backend: Backend) -> None:
        """After the head ends failed, the session's later messages are processed."""
        queue = backend.queue
        poison = (await queue.enqueue("s", "observation", {"poison": True})).message_id
        for i in range(3):
            await queue.enqueue("s", "observation", {"i": i})
        processed = []
        async for claim in queue.stream("s", linger=0):
            if claim.message.payload.get("poison"):
                await claim.fail("always fails")
            else:
                processed.append(claim.message.payload["i"])
                await claim.ack()
        assert processed == [0, 1, 2]
        assert await queue.status_of(poison) is MessageStatus.FAILED

    async def test_async_with_claim_records_an_exception_as_a_failed_attempt(
        self, backend: Backend
    ) -> None:
        """An exception inside ``async with claim`` fails the attempt and the stream goes on."""
        queue = backend.queue
        first = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        await queue.enqueue("s", "observation", {"i": 1})
        seen = []
        async for claim in queue.stream("s", linger=0):
            async with claim:
                seen.append(claim.message.payload["i"])
                if claim.message.payload["i"] == 0 and claim.message.attempts == 1:
                    raise KeyError("missing field")
        assert seen == [0, 0, 1]
        assert backend.row(first)["attempts"] == 2
        assert backend.row(first)["status"] == "processed"


class TestRetryAndForget:
    async def test_failed_messages_are_listed_and_retried_with_fresh_attempts(
        self, backend: Backend
    ) -> None:
        """A person can see a failed message with its error and send it through again."""
        async with await backend.open(FAST, max_attempts=1) as queue:
            message_id = (await queue.enqueue("s", "observation", {"x": 1})).message_id
            async for claim in queue.stream("s", linger=0):
                await claim.fail("bad luck")
            (failed,) = await queue.failed()
            assert (failed.id, failed.last_error, failed.payload) == (
                message_id,
                "bad luck",
                {"x": 1},
            )
            assert await queue.failed(session_id="other") == []
            assert await queue.retry([message_id, 999]) == [message_id]
            assert backend.row(message_id)["attempts"] == 0
            async for claim in queue.stream("s", linger=0):
                await claim.ack()
            assert await queue.status_of(message_id) is MessageStatus.PROCESSED
            assert await queue.retry() == []

    async def test_forget_session_deletes_its_rows_only(self, backend: Backend) -> None:
        """Deleting a session removes its queue rows and leaves others alone."""
        queue = backend.queue
        for session in ("gone", "gone", "kept"):
            await queue.enqueue(session, "observation", {})
        assert await queue.forget_session("gone") == 2
        assert [r["session_id"] for r in backend.rows()] == ["kept"]


class TestLeases:
    async def test_a_hung_consumer_is_cut_off_by_the_lease(self, backend: Backend) -> None:
        """Inside ``async with claim`` work that runs past the lease is cancelled and counted
        as a failed attempt."""
        settings = QueueSettings(lease=0.2, retry_delay=0)
        async with await backend.open(settings) as queue:
            message_id = (await queue.enqueue("s", "observation", {})).message_id
            with anyio.fail_after(5):
                async for claim in queue.stream("s", linger=0):
                    async with claim:
                        await anyio.sleep(30)
                    break
            stored = backend.row(message_id)
            assert stored["status"] == "pending"
            assert stored["attempts"] == 1
            assert "LeaseExpiredError" in stored["last_error"]

    async def test_the_watchdog_takes_back_an_abandoned_claim(self, backend: Backend) -> None:
        """A claim nobody settles is reclaimed by maintenance; a late ack then writes nothing."""
        settings = QueueSettings(lease=0.05, retry_delay=0)
        async with await backend.open(settings) as queue:
            await make_results_table(queue)
            message_id = (await queue.enqueue("s", "observation", {})).message_id
            claim = await queue.stream("s", linger=0).__anext__()
            await anyio.sleep(settings.stored_lease + 0.05)
            with capture_logs() as logs:
                report = await queue.maintain()
            assert report.reclaimed_ids == (message_id,)
            assert logs[0]["event"] == "lease.expired"
            assert backend.row(message_id)["status"] == "pending"

            async def store(tx: Transaction) -> None:
                await tx.execute(
                    backend.sql("INSERT INTO results VALUES (?, 'late')"), (message_id,)
                )

            with pytest.raises(ClaimLostError):
                await claim.ack(store)
            assert results(backend) == []
            # The next attempt goes through normally.
            async for retry in queue.stream("s", linger=0):
                assert retry.message.attempts == 2
                await retry.ack(store)
            assert results(backend) == [(message_id, "late")]

    async def test_run_maintenance_reclaims_without_being_asked(self, backend: Backend) -> None:
        """The maintenance loop, run in the owner's task group, acts as the watchdog."""
        settings = QueueSettings(lease=0.05, maintenance_interval=0.05, retry_delay=0)
        async with await backend.open(settings) as queue:
            message_id = (await queue.enqueue("s", "observation", {})).message_id
            await queue.stream("s", linger=0).__anext__()
            with anyio.fail_after(5):
                async with anyio.create_task_group() as tg:
                    await tg.start(queue.run_maintenance)
                    # Polls the database file, which no in-process event can signal.
                    while backend.row(message_id)["status"] != "pending":  # noqa: ASYNC110
                        await anyio.sleep(0.02)
                    tg.cancel_scope.cancel()


class TestDefer:
    async def test_a_deferred_claim_waits_and_keeps_its_attempts(self, backend: Backend) -> None:
        """defer hands the message back uncounted; the session waits for it, in order."""
        queue = backend.queue
        first = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        await queue.enqueue("s", "observation", {"i": 1})
        claim = await queue.stream("s", linger=0).__anext__()
        await claim.defer(0.3, "rate limited")
        assert claim.state is ClaimState.DEFERRED
        assert backend.row(first)["attempts"] == 0
        started = anyio.current_time()
        seen = []
        async for next_claim in queue.stream("s", linger=0):
            seen.append((next_claim.message.payload["i"], next_claim.message.attempts))
            await next_claim.ack()
        assert seen == [(0, 1), (1, 1)]
        assert anyio.current_time() - started >= 0.25
