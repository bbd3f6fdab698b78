"""Claims and acks that a full disk cannot take: the session is given back at once.

Two kinds of real "disk full": SQLite's own size limit (``PRAGMA max_page_count``: a write
that needs a new page fails with SQLITE_FULL, "database or disk is full"), which any user can
set; and a real tmpfs filled to its last block (root only; skipped otherwise), where every
write fails, the settlements included.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import anyio
import pytest
from structlog.testing import capture_logs

from memq.exceptions import DiskFullError, SessionBusyError, StorageError
from memq.queue import Claim, ClaimState, Effect, MessageStatus, Queue, QueueSettings, Transaction
from memq.worker.sessions import SessionManager
from tests.conftest import FAST
from tests.helpers.rows import row
from tests.helpers.tmpfs import MIB, TmpfsUnavailable, fill_disk, mounted_tmpfs

RESULTS_TABLE = "CREATE TABLE IF NOT EXISTS results (message_id INTEGER UNIQUE, body BLOB)"
BIG = 256 * 1024  # a result that needs new pages


async def set_page_limit(queue: Queue, pages: int | None) -> None:
    """Let the writer's connections grow the file to ``pages`` pages (None: no limit)."""
    limit = 4294967294 if pages is None else pages
    for conn in queue._connections[:2]:  # the durable and the fast writer
        await conn.execute(f"PRAGMA max_page_count = {limit}")


async def page_count(queue: Queue) -> int:
    rows = list(await queue._reader.execute_fetchall("PRAGMA page_count"))
    return int(rows[0][0])


def big_result(message_id: int) -> Effect:
    async def write(tx: Transaction) -> None:
        await tx.execute("INSERT INTO results VALUES (?, zeroblob(?))", (message_id, BIG))

    return write


async def no_room(queue: Queue) -> None:
    """From now on, any write that needs a new page fails for want of space."""
    await set_page_limit(queue, await page_count(queue))


class TestSqliteSizeLimit:
    """SQLITE_FULL from a write that needs room, while small updates still fit."""

    async def test_an_ack_without_room_defers_the_message_without_counting_it(
        self, queue: Queue, db_path: Path
    ) -> None:
        """The ack's result cannot be stored: the message is pending again after a short
        delay, its attempt refunded (a full disk is not the message's fault), the error
        reaches the consumer (so it backs off) and the storage listener."""
        errors: list[StorageError] = []
        queue.on_storage_error(errors.append)
        await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
        first = (await queue.enqueue("s", "observation", {"i": 0})).message_id
        await queue.enqueue("s", "observation", {"i": 1})
        await no_room(queue)
        claims: list[Claim] = []

        async def process_head() -> None:
            async for claim in queue.stream("s", linger=0):
                claims.append(claim)
                async with claim:
                    await claim.ack(big_result(claim.message.id))

        with capture_logs() as logs, pytest.raises(DiskFullError):
            await process_head()
        (claim,) = claims
        assert claim.state is ClaimState.DEFERRED
        stored = row(db_path, first)
        assert (stored["status"], stored["attempts"]) == ("pending", 0)
        (deferred,) = [e for e in logs if e["event"] == "message.deferred"]
        assert "database or disk is full" in deferred["reason"]
        assert errors
        assert all(isinstance(error, DiskFullError) for error in errors)
        # Room again: the same message comes first, on its first counted attempt.
        await set_page_limit(queue, None)
        await anyio.sleep(FAST.retry_delay)
        async for claim in queue.stream("s", linger=0):
            assert (claim.message.id, claim.message.attempts) == (first, 1)
            await claim.ack(big_result(claim.message.id))
            break
        assert row(db_path, first)["status"] == "processed"

    async def test_the_storage_listener_outlives_a_reopen(self, db_path: Path) -> None:
        """The daemon reopens its queue when its files are replaced: the disk monitor must
        still hear of a full disk afterwards."""
        errors: list[StorageError] = []
        first = await Queue.open(db_path, FAST)
        first.on_storage_error(errors.append)
        queue = await first.reopen()
        try:
            await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
            await no_room(queue)
            with pytest.raises(DiskFullError):
                await queue.run_in_transaction(big_result(1))
        finally:
            await queue.close()
        assert [type(error) for error in errors] == [DiskFullError]

    async def test_other_storage_errors_still_count_as_attempts(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Only a full disk is spared: a write that breaks a constraint is the message's
        own problem, counted and swallowed as before, so it cannot loop forever."""
        await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
        message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id

        async def clash(tx: Transaction) -> None:
            await tx.execute("INSERT INTO results VALUES (1, 'a')")
            await tx.execute("INSERT INTO results VALUES (1, 'b')")

        async for claim in queue.stream("s", linger=0):
            async with claim:
                await claim.ack(clash)
            break
        stored = row(db_path, message_id)
        assert (stored["status"], stored["attempts"]) == ("pending", 1)

    async def test_a_session_resumes_within_moments_of_room_returning(self, db_path: Path) -> None:
        """The session manager backs off (not a hot loop) while acks fail, and processes the
        message, never failed, as soon as there is room."""
        settings = QueueSettings(retry_delay=0.05, change_check_interval=0.05)
        async with await Queue.open(db_path, settings) as queue:
            await queue.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
            message_id = (await queue.enqueue("s", "observation", {"i": 0})).message_id
            await no_room(queue)
            done = anyio.Event()

            async def handle(claim: Claim) -> None:
                async with claim:
                    await claim.ack(big_result(claim.message.id))
                done.set()

            manager = SessionManager(queue, handle, linger=0.05, storage_retry_delay=0.2)
            with capture_logs() as logs:
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    await anyio.sleep(1.0)
                    tries = [e for e in logs if e["event"] == "session.storage_failed"]
                    stored = row(db_path, message_id)
                    await set_page_limit(queue, None)
                    room_at = anyio.current_time()
                    with anyio.fail_after(5):
                        await done.wait()
                    resumed_after = anyio.current_time() - room_at
                    await manager.stop(grace=1)
        assert 2 <= len(tries) <= 7, "one try per storage_retry_delay, not a hot loop"
        assert stored["status"] == "pending"
        assert stored["attempts"] == 0, "waiting for room costs the message no attempt"
        assert resumed_after < 1.0
        assert row(db_path, message_id)["status"] == "processed"
        assert not [e for e in logs if e["event"] == "session.crashed"]


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (root only)."""
    try:
        with mounted_tmpfs(tmp_path / "disk", 4 * MIB) as disk:
            yield disk
    except TmpfsUnavailable as why:
        pytest.skip(str(why))


@pytest.fixture
async def full_disk_queue(small_disk: Path) -> AsyncIterator[tuple[Queue, Path]]:
    """A queue on the small disk holding three messages of session "s", the first claimed
    and the WAL emptied: fill the disk (``fill``) and not one more write fits."""
    settings = QueueSettings(retry_delay=0.01, change_check_interval=0.05, wal_checkpoint_bytes=0)
    queue = await Queue.open(small_disk / "memq.db", settings)
    try:
        for i in range(3):
            await queue.enqueue("s", "observation", {"i": i})
        yield queue, small_disk
    finally:
        (small_disk / "filler").unlink(missing_ok=True)
        await queue.close()


async def claim_then_fill(queue: Queue, disk: Path) -> Claim:
    stream = queue.stream("s", linger=0)
    claim = await stream.__anext__()
    await queue.maintain()  # checkpoints and truncates the WAL: the next write must grow it
    fill_disk(disk / "filler")
    return claim


class TestEveryWriteFails:
    """A real filesystem with no block left: the ack fails, and so does its deferral."""

    async def test_the_session_is_given_back_at_once(
        self, full_disk_queue: tuple[Queue, Path]
    ) -> None:
        """The claim is UNSETTLED and its session free: a new stream does not meet
        ``SessionBusyError`` (which lasted until the lease ran out, minutes), only the full
        disk; with room again it gets the same head, its attempt refunded."""
        queue, disk = full_disk_queue
        claim = await claim_then_fill(queue, disk)
        head = claim.message.id
        with capture_logs() as logs, pytest.raises(DiskFullError):
            async with claim:
                pass  # the ack at the end cannot be written
        assert claim.state is ClaimState.UNSETTLED
        assert [e["message_id"] for e in logs if e["event"] == "claim.unsettled"] == [head]
        assert await queue.has_pending("s")
        assert await queue.sessions_with_backlog() == ["s"]
        with pytest.raises(StorageError) as raised:
            async for _ in queue.stream("s", linger=0):
                pass
        assert not isinstance(raised.value, SessionBusyError)
        (disk / "filler").unlink()
        async for again in queue.stream("s", linger=0):
            assert (again.message.id, again.message.attempts) == (head, 1)
            await again.ack()
            break
        assert await queue.status_of(head) is MessageStatus.PROCESSED
        order = []
        async for later in queue.stream("s", linger=0):
            order.append(later.message.id)
            await later.ack()
        assert order == [head + 1, head + 2]

    async def test_a_session_whose_claim_fails_is_tried_again_without_new_events(
        self, full_disk_queue: tuple[Queue, Path]
    ) -> None:
        """Not even the claim can be written: the session backs off and tries again by
        itself (before, its task ended and nothing scheduled it until another event came)."""
        queue, disk = full_disk_queue
        await queue.maintain()
        fill_disk(disk / "filler")
        seen: list[int] = []

        async def handle(claim: Claim) -> None:
            async with claim:
                seen.append(claim.message.id)

        manager = SessionManager(queue, handle, linger=0.05, storage_retry_delay=0.2)
        with capture_logs() as logs:
            async with anyio.create_task_group() as tg:
                await tg.start(manager.run)
                await anyio.sleep(0.7)
                assert seen == []
                (disk / "filler").unlink()
                with anyio.fail_after(3):
                    while len(seen) < 3:  # noqa: ASYNC110 - the handler's own bookkeeping
                        await anyio.sleep(0.02)
                await manager.stop(grace=1)
        assert seen == sorted(seen)
        assert [e for e in logs if e["event"] == "session.storage_failed"]
        assert not [e for e in logs if e["event"] == "session.crashed"]

    async def test_maintenance_hands_it_back_once_there_is_room(
        self, full_disk_queue: tuple[Queue, Path]
    ) -> None:
        """No new claim of the session needed: the next maintenance pass writes the release."""
        queue, disk = full_disk_queue
        claim = await claim_then_fill(queue, disk)
        with pytest.raises(DiskFullError):
            await claim.fail("processing failed")  # cannot be written either
        assert claim.state is ClaimState.UNSETTLED
        with pytest.raises(StorageError):
            await queue.maintain()
        (disk / "filler").unlink()
        await queue.maintain()
        rows = await queue.stats()
        assert rows.counts.processing == 0
        assert rows.counts.pending == 3
        async for again in queue.stream("s", linger=0):
            assert (again.message.id, again.message.attempts) == (claim.message.id, 1)
            await again.ack()
            break

    async def test_closing_on_a_full_disk_still_closes(
        self, full_disk_queue: tuple[Queue, Path]
    ) -> None:
        """The hand-back at close cannot be written: the queue closes anyway (lock released)
        and the next open returns the message to pending."""
        queue, disk = full_disk_queue
        claim = await claim_then_fill(queue, disk)
        await claim.release()  # cannot be written: UNSETTLED, nothing raised
        assert claim.state is ClaimState.UNSETTLED
        await queue.close()
        assert queue.closed
        (disk / "filler").unlink()
        async with await Queue.open(disk / "memq.db") as reopened:
            assert await reopened.status_of(claim.message.id) is MessageStatus.PENDING
