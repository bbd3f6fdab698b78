"""Fewer round trips per drained message on PostgreSQL: the writer's batch runs in pipeline
mode (each call still in a savepoint of its own), and inside ``async with queue.stream``
an ack claims the session's next message in its commit, as on SQLite."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from memq.exceptions import StorageError
from memq.queue.postgres import PgQueue
from tests.postgres.conftest import PgSchema

RESULTS = "CREATE TABLE results (message_id BIGINT PRIMARY KEY, i INTEGER NOT NULL)"
INSERT = "INSERT INTO results (message_id, i) VALUES (%s, %s)"


def statuses(pg_schema: PgSchema) -> list[tuple[Any, ...]]:
    return pg_schema.query("SELECT id, status, attempts FROM pending_messages ORDER BY id")


async def fill(queue: PgQueue, count: int, session_id: str = "s") -> list[int]:
    return [
        (await queue.enqueue(session_id, "observation", {"i": i})).message_id for i in range(count)
    ]


class TestClaimAhead:
    async def test_the_ack_claims_the_next_message_in_its_commit(
        self, pg_queue: PgQueue, pg_schema: PgSchema
    ) -> None:
        first, second, third = await fill(pg_queue, 3)
        async with pg_queue.stream("s", linger=0) as stream:
            claim = await stream.__anext__()
            assert claim.message.id == first
            batches = pg_queue._writer.batches
            await claim.ack()
            # One commit acked the first and claimed the second, before it was asked for.
            assert pg_queue._writer.batches == batches + 1
            assert statuses(pg_schema) == [
                (first, "processed", 1),
                (second, "processing", 1),
                (third, "pending", 0),
            ]
            following = await stream.__anext__()
            assert following.message.id == second
            assert pg_queue._writer.batches == batches + 1  # nothing more to write for it
        # Closing handed the unsettled second back, its attempt refunded.
        assert statuses(pg_schema) == [
            (first, "processed", 1),
            (second, "pending", 0),
            (third, "pending", 0),
        ]

    async def test_an_ack_whose_effect_fails_claims_nothing_more(
        self, pg_queue: PgQueue, pg_schema: PgSchema
    ) -> None:
        first, second = await fill(pg_queue, 2)

        async def broken(tx: Any) -> None:
            await tx.execute("INSERT INTO no_such_table VALUES (1)")

        async with pg_queue.stream("s", linger=0) as stream:
            claim = await stream.__anext__()
            with pytest.raises(StorageError, match="no_such_table"):
                await claim.ack(broken)
            assert statuses(pg_schema) == [(first, "processing", 1), (second, "pending", 0)]
            await claim.fail("its effect failed")
        assert [row[1] for row in statuses(pg_schema)] == ["pending", "pending"]

    async def test_a_drain_with_effects_is_exactly_once_and_in_order(
        self, pg_queue: PgQueue, pg_schema: PgSchema
    ) -> None:
        await pg_queue.run_in_transaction(lambda tx: tx.execute(RESULTS))
        sessions = [f"s{n}" for n in range(5)]
        for session_id in sessions:
            await fill(pg_queue, 20, session_id)

        async def drain(session_id: str) -> None:
            async with pg_queue.stream(session_id, linger=0) as stream:
                async for claim in stream:
                    row = (claim.message.id, claim.message.payload["i"])

                    async def effect(tx: Any, row: tuple[int, int] = row) -> None:
                        await tx.execute(INSERT, row)

                    await claim.ack(effect)

        batches = pg_queue._writer.batches
        with anyio.fail_after(60):
            for session_id in sessions:  # one at a time: no stream shares another's commits
                await drain(session_id)
        # Each ack carried the next claim: one commit per message, plus each stream's first
        # claim, its last look (nothing left) and its lease's drop; not two per message.
        assert pg_queue._writer.batches - batches <= len(sessions) * (20 + 3)
        rows = pg_schema.query(
            "SELECT m.session_id, r.i FROM results AS r JOIN pending_messages AS m "
            "ON m.id = r.message_id ORDER BY r.message_id"
        )
        for session_id in sessions:
            assert [i for s, i in rows if s == session_id] == list(range(20))
        assert {row[1] for row in statuses(pg_schema)} == {"processed"}


class TestCallsInOneBatch:
    async def test_a_failing_call_undoes_only_itself(
        self, pg_queue: PgQueue, pg_schema: PgSchema
    ) -> None:
        await pg_queue.run_in_transaction(lambda tx: tx.execute(RESULTS))
        outcomes: dict[int, Any] = {}

        async def write(n: int) -> None:
            async def fn(tx: Any) -> int:
                await tx.execute(INSERT, (n, n))
                if n == 2:
                    await tx.execute(INSERT, (n, n))  # a duplicate key: a server error
                if n == 4:
                    raise ValueError("the caller's own error")
                rows = await tx.fetchall("SELECT count(*) AS n FROM results")
                return int(rows[0]["n"])

            try:
                outcomes[n] = await pg_queue.run_in_transaction(fn)
            except Exception as exc:  # the test reads which
                outcomes[n] = type(exc).__name__

        batches = pg_queue._writer.batches
        async with anyio.create_task_group() as tg:
            for n in range(6):
                tg.start_soon(write, n)
        assert pg_queue._writer.batches == batches + 1  # all six in one transaction
        assert outcomes[2] == "StorageError"  # the server's error, as memq raises it
        assert outcomes[4] == "ValueError"
        # Each call that went through saw the rows of those before it, not the undone ones.
        assert [outcomes[n] for n in (0, 1, 3, 5)] == [1, 2, 3, 4]
        assert pg_schema.query("SELECT message_id FROM results ORDER BY 1") == [
            (0,),
            (1,),
            (3,),
            (5,),
        ]
