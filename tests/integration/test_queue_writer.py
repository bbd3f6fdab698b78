"""The group-commit writer's thread: it works through everything waiting by itself, one commit
per batch; a batch that fails fails only its own operations; a close waits for what was
queued before it; a caller cancelled before its batch is taken leaves nothing behind."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import anyio
import pytest

from memq.exceptions import DiskFullError, QueueClosedError, StorageError
from memq.queue import Enqueued, Queue, Transaction
from memq.queue._writer import EnqueueOp
from tests.conftest import FAST
from tests.helpers.rows import all_rows, table

BATCH_OF_FOUR = replace(FAST, max_batch=4)

pytestmark = pytest.mark.sqlite_only(
    "the group-commit writer's thread and its SQLite connection; PgWriter: tests/postgres"
)


async def until(check: Callable[[], bool]) -> None:
    """Yield until ``check()`` is true (5 s at most)."""
    with anyio.fail_after(5):
        while not check():  # noqa: ASYNC110 - the writer's own bookkeeping, no event to wait on
            await anyio.sleep(0.001)


class HeldWriter:
    """Keeps the writer's thread busy until ``release``: operations submitted meanwhile wait
    in its inbox, so the test decides what each batch holds."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self._entered = threading.Event()
        self._released = threading.Event()

    def _hold(self, conn: sqlite3.Connection) -> None:
        self._entered.set()
        self._released.wait(10)

    async def hold(self) -> None:
        """Run in a task: occupies the thread until ``release``."""
        await self.queue._writer_conn.run(self._hold)

    async def held(self) -> None:
        await until(self._entered.is_set)

    async def inbox_holds(self, count: int) -> None:
        await until(lambda: len(self.queue._writer._inbox) == count)

    def release(self) -> None:
        self._released.set()


class TestBatches:
    async def test_everything_queued_costs_one_wake_of_the_thread(self, db_path: Path) -> None:
        """Twelve enqueues waiting, four to a batch: three commits, and the thread is woken
        once for all of them (it takes the next batch by itself)."""
        queue = await Queue.open(db_path, BATCH_OF_FOUR)
        writer = HeldWriter(queue)
        sent: list[Enqueued] = []

        async def send(i: int) -> None:
            sent.append(await queue.enqueue("s", "observation", {"i": i}))

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            batches, trips = queue._writer.batches, queue._writer_conn.trips
            for i in range(12):
                tg.start_soon(send, i)
            await writer.inbox_holds(12)
            writer.release()
        assert queue._writer.batches - batches == 3
        assert queue._writer_conn.trips - trips == 1
        assert sorted(result.message_id for result in sent) == [
            stored["id"] for stored in all_rows(db_path)
        ]
        await queue.close()

    async def test_a_failed_batch_fails_only_its_own_messages(self, db_path: Path) -> None:
        """A batch that meets a full disk fails each of its messages with DiskFullError and
        tells the storage listener once; the batch behind it commits, nothing of the failed
        one is stored, and the writer goes on."""
        queue = await Queue.open(db_path, BATCH_OF_FOUR)
        reported: list[StorageError] = []
        queue.on_storage_error(reported.append)
        insert = queue._writer._insert

        def insert_unless_full(conn: sqlite3.Connection, ops: list[EnqueueOp]) -> None:
            if any(op.session == "full" for op in ops):
                raise sqlite3.OperationalError("database or disk is full")
            insert(conn, ops)

        queue._writer._insert = insert_unless_full  # type: ignore[method-assign]
        results: dict[str, list[Enqueued | Exception]] = {"full": [], "room": []}

        async def send(session: str, i: int) -> None:
            try:
                results[session].append(await queue.enqueue(session, "observation", {"i": i}))
            except StorageError as exc:
                results[session].append(exc)

        writer = HeldWriter(queue)
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            for queued, session in enumerate(("full", "room"), start=1):
                for i in range(4):
                    tg.start_soon(send, session, i)
                await writer.inbox_holds(4 * queued)  # a batch of each
            writer.release()
        assert [type(result) for result in results["full"]] == [DiskFullError] * 4
        assert all(isinstance(r, Enqueued) and r.created for r in results["room"])
        assert [type(error) for error in reported] == [DiskFullError]
        assert {stored["session_id"] for stored in all_rows(db_path)} == {"room"}
        queue._writer._insert = insert  # type: ignore[method-assign]
        assert (await queue.enqueue("full", "observation", {"i": 4})).created
        await queue.close()

    async def test_a_call_that_fails_fails_alone_in_its_batch(
        self, queue: Queue, db_path: Path
    ) -> None:
        """A transaction function that raises shares a batch with two enqueues: what it did
        is undone and its caller gets its error; the enqueues commit, in one commit."""

        async def fail(tx: Transaction) -> None:
            await tx.execute("CREATE TABLE scratch (x)")
            raise ValueError("the call's own failure")

        outcome: dict[str, object] = {}

        async def send(name: str) -> None:
            outcome[name] = await queue.enqueue("s", "observation", {"name": name})

        async def call() -> None:
            with pytest.raises(ValueError, match="own failure"):
                await queue.run_in_transaction(fail)
            outcome["call"] = "raised"

        writer = HeldWriter(queue)
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            batches = queue._writer.batches
            tg.start_soon(send, "first")
            await writer.inbox_holds(1)
            tg.start_soon(call)
            await writer.inbox_holds(2)
            tg.start_soon(send, "second")
            await writer.inbox_holds(3)
            writer.release()
        assert outcome["call"] == "raised"
        assert [stored["id"] for stored in all_rows(db_path)] == [
            outcome[name].message_id  # type: ignore[attr-defined]
            for name in ("first", "second")
        ]
        assert queue._writer.batches - batches == 1
        assert table(db_path, "SELECT name FROM sqlite_master WHERE name = 'scratch'") == []

    async def test_a_read_waiting_for_the_thread_goes_between_batches(self, db_path: Path) -> None:
        """The thread does not keep a read waiting behind every batch queued: it lets the
        read go after the batch in hand."""
        queue = await Queue.open(db_path, BATCH_OF_FOUR)
        order: list[str] = []
        verify = queue._writer._verify
        assert verify is not None

        def noting_commits() -> None:  # runs in the writer's thread, after each commit
            order.append("commit")
            verify()

        queue._writer._verify = noting_commits
        writer = HeldWriter(queue)
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            for i in range(8):
                tg.start_soon(queue.enqueue, "s", "observation", {"i": i})
            await writer.inbox_holds(8)
            tg.start_soon(queue._writer_conn.run, lambda conn: order.append("read"))
            await until(queue._writer_conn.others_waiting)
            writer.release()
        assert order == ["commit", "read", "commit"]
        await queue.close()


class TestCancelAndClose:
    async def test_a_producer_cancelled_before_its_batch_is_taken_stores_nothing(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Its message leaves the inbox with it; the writer is idle afterwards."""
        writer = HeldWriter(queue)
        scope = anyio.CancelScope()

        async def send() -> None:
            with scope:
                await queue.enqueue("s", "observation", {"i": 0})

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            tg.start_soon(send)
            await writer.inbox_holds(1)
            scope.cancel()
            await writer.inbox_holds(0)
            writer.release()
        kept = await queue.enqueue("s", "observation", {"i": 1})
        assert [stored["id"] for stored in all_rows(db_path)] == [kept.message_id]
        with anyio.fail_after(5):
            await queue._writer.close()

    async def test_close_waits_for_the_batches_queued_before_it(self, db_path: Path) -> None:
        """Ten enqueues wait for the thread when the queue is closed: each returns, durable,
        before the close does; an enqueue after the close began is refused."""
        queue = await Queue.open(db_path, BATCH_OF_FOUR)
        writer = HeldWriter(queue)
        returned: list[Enqueued] = []
        closed = anyio.Event()

        async def send(i: int) -> None:
            returned.append(await queue.enqueue("s", "observation", {"i": i}))
            assert not closed.is_set()

        async def close() -> None:
            await queue.close()
            closed.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.hold)
            await writer.held()
            for i in range(10):
                tg.start_soon(send, i)
            await writer.inbox_holds(10)
            tg.start_soon(close)
            await until(lambda: queue.closed)
            with pytest.raises(QueueClosedError):
                await queue.enqueue("s", "observation", {"i": 10})
            await anyio.sleep(0.05)
            assert not closed.is_set()
            assert returned == []
            writer.release()
        assert len(returned) == 10
        assert sorted(r.message_id for r in returned) == [r["id"] for r in all_rows(db_path)]
