"""The queue's contract on PostgreSQL (``PgQueue``), one daemon: durable enqueue and dedupe,
per-session FIFO, attempts, backoff, failure, and acks whose effects share their commit."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from memq.exceptions import QueueClosedError
from memq.queue import ClaimState, MessageStatus, QueueSettings
from memq.queue.testing import ManualClock
from tests.postgres.conftest import PgSchema

RESULTS_TABLE = "CREATE TABLE results (message_id BIGINT NOT NULL UNIQUE, body TEXT NOT NULL)"


async def drain(queue: Any, session_id: str) -> list[Any]:
    """Every payload the session yields, acked, in order."""
    seen = []
    async with queue.stream(session_id, linger=0) as stream:
        async for claim in stream:
            async with claim:
                seen.append(claim.message.payload)
    return seen


class TestEnqueue:
    async def test_an_enqueue_is_committed_when_it_returns(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """Another connection sees the row as soon as enqueue returned: it was committed."""
        message_id, created = await pg_queue.enqueue("s", "observation", {"a": 1}, "k")
        assert created
        rows = pg_schema.query("SELECT id, status, payload FROM pending_messages")
        assert rows == [(message_id, "pending", '{"a":1}')]

    async def test_a_repeated_dedupe_key_is_stored_once(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        first = await pg_queue.enqueue("s", "observation", {"a": 1}, "k")
        again = await pg_queue.enqueue("s", "observation", {"a": 2}, "k")
        other_session = await pg_queue.enqueue("t", "observation", {"a": 3}, "k")
        assert again == (first.message_id, False)
        assert other_session.created
        assert pg_schema.query("SELECT count(*) FROM pending_messages WHERE session_id = 's'") == [
            (1,)
        ]

    async def test_concurrent_enqueues_share_commits_and_keep_their_order(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """Enqueues waiting together go in one transaction, duplicates in it included, and
        ids ascend in the order they were made."""
        results: list[Any] = [None] * 60

        async def put(i: int) -> None:
            results[i] = await pg_queue.enqueue("s", "observation", {"i": i}, f"k{i % 40}")

        before = pg_queue._writer.batches
        async with anyio.create_task_group() as tg:
            for i in range(60):
                tg.start_soon(put, i)
        assert pg_queue._writer.batches - before < 60
        created = [r for r in results if r is not None and r.created]
        assert len(created) == 40
        ids = [r.message_id for r in created]
        assert ids == sorted(ids)
        for i in range(40, 60):
            assert results[i] == (results[i - 40].message_id, False)
        assert pg_schema.query("SELECT count(*) FROM pending_messages") == [(40,)]


class TestConsuming:
    async def test_each_session_yields_its_messages_in_order(self, pg_queue: Any) -> None:
        for i in range(10):
            await pg_queue.enqueue("a", "observation", {"i": i})
            await pg_queue.enqueue("b", "observation", {"i": -i})
        assert await drain(pg_queue, "a") == [{"i": i} for i in range(10)]
        assert await drain(pg_queue, "b") == [{"i": -i} for i in range(10)]
        stats = await pg_queue.stats()
        assert stats.counts.processed == 20
        assert stats.database_bytes > 0

    async def test_attempts_are_counted_at_claim_and_fenced_by_a_token(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        message_id = (await pg_queue.enqueue("s", "observation", {})).message_id
        claim = await pg_queue.stream("s", linger=0).__anext__()
        assert claim.message.attempts == 1
        [(status, attempts, token, by)] = pg_schema.query(
            "SELECT status, attempts, claim_token, claimed_by FROM pending_messages"
        )
        assert (status, attempts, by) == ("processing", 1, pg_queue.daemon_id)
        assert token is not None
        await claim.release()
        assert pg_schema.query("SELECT status, attempts FROM pending_messages") == [("pending", 0)]
        assert await pg_queue.status_of(message_id) is MessageStatus.PENDING

    async def test_a_backoff_of_30_seconds_is_30_seconds(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """At realistic settings: read as milliseconds, the message would be due at once."""
        clock = ManualClock()
        settings = QueueSettings(retry_delay=30.0, retry_delay_max=30.0, max_attempts=3)
        queue = await open_pg_queue(settings, clock=clock)
        await queue.enqueue("s", "observation", {})
        claim, _ = await queue._claim("s")
        assert await claim.fail("boom") is MessageStatus.PENDING
        [(available_at, error)] = pg_schema.query(
            "SELECT available_at, last_error FROM pending_messages"
        )
        assert available_at == clock.now() + 30_000
        assert error == "boom"
        again, due_at = await queue._claim("s")
        assert again is None
        assert due_at == pytest.approx(clock.monotonic() + 30.0)
        clock.advance(29.9)
        assert (await queue._claim("s"))[0] is None
        clock.advance(0.1)
        claim, _ = await queue._claim("s")
        assert claim.message.attempts == 2
        await claim.ack()

    async def test_a_message_fails_after_max_attempts(self, open_pg_queue: Any) -> None:
        clock = ManualClock()
        queue = await open_pg_queue(QueueSettings(max_attempts=2), clock=clock)
        message_id = (await queue.enqueue("s", "observation", {"x": 1})).message_id
        claim, _ = await queue._claim("s")
        assert await claim.fail("first") is MessageStatus.PENDING
        clock.advance(60)
        claim, _ = await queue._claim("s")
        assert await claim.fail(RuntimeError("second")) is MessageStatus.FAILED
        [failed] = await queue.failed()
        assert (failed.id, failed.attempts, failed.last_error) == (
            message_id,
            2,
            "RuntimeError: second",
        )
        assert await queue._claim("s") == (None, None)
        assert await queue.retry([message_id]) == [message_id]
        assert await drain(queue, "s") == [{"x": 1}]

    async def test_a_deferral_refunds_the_attempt(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        clock = ManualClock()
        queue = await open_pg_queue(clock=clock)
        await queue.enqueue("s", "observation", {})
        claim, _ = await queue._claim("s")
        await claim.defer(5.0, "rate limited")
        assert claim.state is ClaimState.DEFERRED
        assert pg_schema.query("SELECT attempts, available_at FROM pending_messages") == [
            (0, clock.now() + 5000)
        ]


class TestAckWithEffect:
    async def test_the_effect_and_the_processed_mark_commit_together(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        await pg_queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
        message_id = (await pg_queue.enqueue("s", "observation", {})).message_id
        claim = await pg_queue.stream("s", linger=0).__anext__()

        async def store(tx: Any) -> None:
            await tx.execute("INSERT INTO results VALUES (%s, 'done')", (claim.message.id,))

        await claim.ack(store)
        assert pg_schema.query("SELECT message_id, body FROM results") == [(message_id, "done")]
        assert pg_schema.query("SELECT status, payload FROM pending_messages") == [
            ("processed", None)
        ]

    async def test_an_effect_that_raises_leaves_nothing(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        await pg_queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
        message_id = (await pg_queue.enqueue("s", "observation", {})).message_id
        claim = await pg_queue.stream("s", linger=0).__anext__()

        async def half_then_boom(tx: Any) -> None:
            await tx.execute("INSERT INTO results VALUES (%s, 'partial')", (message_id,))
            raise RuntimeError("processor bug")

        with pytest.raises(RuntimeError, match="processor bug"):
            await claim.ack(half_then_boom)
        assert claim.state is ClaimState.ACTIVE
        assert pg_schema.query("SELECT count(*) FROM results") == [(0,)]
        assert pg_schema.query("SELECT status FROM pending_messages") == [("processing",)]
        assert await claim.fail("processor bug") is MessageStatus.PENDING
        assert pg_schema.query("SELECT count(*) FROM results") == [(0,)]

    async def test_a_writer_connection_cut_while_idle_is_replaced(
        self, pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """The server ended the writer's idle connection (a restart, a proxy's timeout): the
        next batch finds it broken before it began, reconnects, and goes through."""
        await pg_queue.enqueue("s", "observation", {"i": 0})
        pid = pg_queue._writer._conn.info.backend_pid
        pg_schema.query("SELECT pg_terminate_backend(%s)", (pid,))
        assert (await pg_queue.enqueue("s", "observation", {"i": 1})).created
        assert pg_queue._writer._conn.info.backend_pid != pid
        assert await drain(pg_queue, "s") == [{"i": 0}, {"i": 1}]

    async def test_a_closed_queue_refuses_work(self, open_pg_queue: Any) -> None:
        queue = await open_pg_queue()
        await queue.close()
        with pytest.raises(QueueClosedError):
            await queue.enqueue("s", "observation", {})


class TestUpkeep:
    async def test_maintain_takes_back_a_claim_held_past_its_lease_and_prunes(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        clock = ManualClock()
        settings = QueueSettings(lease=60.0, processed_retention=3600.0)
        queue = await open_pg_queue(settings, clock=clock)
        await queue.enqueue("done", "observation", {})
        assert await drain(queue, "done") == [{}]
        await queue.enqueue("s", "observation", {})
        claim, _ = await queue._claim("s")
        clock.advance(settings.stored_lease - 1)
        assert (await queue.maintain()).leases_reclaimed == 0
        clock.advance(2)
        report = await queue.maintain()
        assert report.reclaimed_ids == (claim.message.id,)
        assert claim.state is ClaimState.LOST
        assert await queue.status_of(claim.message.id) is MessageStatus.PENDING
        clock.advance(3600)
        assert (await queue.maintain()).processed_pruned == 1
        assert pg_schema.query("SELECT session_id FROM pending_messages") == [("s",)]

    async def test_forget_and_move_sessions(self, pg_queue: Any, pg_schema: PgSchema) -> None:
        await pg_queue.enqueue("a", "observation", {"i": 0}, "k0")
        await pg_queue.enqueue("a", "observation", {"i": 1}, "k1")
        await pg_queue.enqueue("b", "observation", {"i": 9}, "k1")
        assert await pg_queue.move_session("a", "b") == (1, 1)  # k1: b has it already
        assert await drain(pg_queue, "b") == [{"i": 0}, {"i": 9}]  # by id, as on SQLite
        await pg_queue.enqueue("c", "observation", {})
        async with pg_queue.stream("c", linger=0) as stream:
            claim = await stream.__anext__()
            await claim.release()
            assert pg_schema.query("SELECT session_id FROM session_leases") == [("c",)]
        await pg_queue.enqueue("c", "observation", {"more": True})
        assert await pg_queue.forget_session("c") == 2
        assert pg_schema.query("SELECT count(*) FROM session_leases") == [(0,)]
        assert await pg_queue.sessions_with_backlog() == []
