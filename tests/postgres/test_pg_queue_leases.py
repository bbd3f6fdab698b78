"""A session whose claim could not be settled is not stranded: once its hand-back is written
and no stream here holds it, this daemon lets go of its lease and tells every daemon (its
own session manager too), so that the session goes on, in order, here or elsewhere."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from anyio.abc import TaskGroup

from memq.exceptions import StorageError
from memq.queue import Claim, ClaimState
from memq.worker.sessions import SessionManager
from tests.postgres.conftest import PgSchema
from tests.postgres.test_pg_queue_fixes import FAULT, NO_BEATS
from tests.postgres.test_pg_queue_ops import leases, until

# The first ``n`` updates of a 'processing' row fail, whatever they are (a sequence: its
# numbers are not rolled back with the failing transaction).
FIRST_SETTLES_FAIL = """
CREATE SEQUENCE settle_faults;
CREATE FUNCTION refuse_first_settles() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'processing' AND nextval('settle_faults') <= %s THEN
    RAISE EXCEPTION 'injected: the disk went away';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_first_settles BEFORE UPDATE ON pending_messages
FOR EACH ROW EXECUTE FUNCTION refuse_first_settles();
"""


async def enqueue_two(queue: Any) -> int:
    first = (await queue.enqueue("s", "observation", {"i": 0})).message_id
    await queue.enqueue("s", "observation", {"i": 1})
    return int(first)


async def leave_unsettled(queue: Any) -> list[Claim]:
    """One stream of ``s`` whose claim's ack and release fail: the claim is unsettled."""
    claims: list[Claim] = []
    try:
        async with queue.stream("s", linger=0.0) as stream:
            async for claim in stream:
                claims.append(claim)
                async with claim:
                    pass
    except StorageError:
        pass
    assert [c.state for c in claims] == [ClaimState.UNSETTLED]
    return claims


def recording(seen: list[int]) -> Callable[[Claim], Awaitable[None]]:
    async def handle(claim: Claim) -> None:
        async with claim:
            seen.append(claim.message.payload["i"])

    return handle


async def start(tg: TaskGroup, queue: Any, handler: Callable[[Claim], Awaitable[None]]) -> Any:
    manager = SessionManager(queue, handler, linger=0.0, storage_retry_delay=0.05)
    await tg.start(manager.run)
    return manager


async def test_a_paused_daemon_lets_another_take_the_session_once_its_hand_back_is_written(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    first = await enqueue_two(a)
    pg_schema.query(FAULT)
    pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
    seen_a: list[int] = []
    seen_b: list[int] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            manager_a = await start(tg, a, recording(seen_a))
            # a's session fails to settle and backs off; a then pauses (say, its API key
            # was refused): its session task ends, the claim's hand-back still unwritten.
            await until(lambda: a._handbacks and not manager_a.processing)
            manager_a.pause("credentials refused")
            await until(lambda: not manager_a.active_sessions)
            assert leases(pg_schema) == [("s", a.daemon_id, 1)]
            manager_b = await start(tg, b, recording(seen_b))
            assert manager_b.active_sessions == []  # a holds the session
            pg_schema.query("DELETE FROM fault")
            await a.maintain()  # writes the hand-back: no stream here holds the session
            with anyio.move_on_after(5):
                await until(lambda: seen_b == [0, 1])
            assert seen_b == [0, 1]
            assert seen_a == [0]  # its ack was refused: it was not processed there
            await manager_a.stop(0)
            await manager_b.stop(0)
    assert leases(pg_schema) == []


async def test_the_daemon_that_handed_back_looks_at_the_session_again(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    # A daemon alone, its manager with no task for the session (it ended: a crash, a
    # pause): its own notifications do not reach it, yet it must hear of the hand-back.
    a = await open_pg_queue(pg=NO_BEATS)
    seen: list[int] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            manager = await start(tg, a, recording(seen))
            first = await enqueue_two(a)  # the manager is not told of these
            pg_schema.query(FAULT)
            pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
            await leave_unsettled(a)
            assert leases(pg_schema) == [("s", a.daemon_id, 1)]  # kept: not handed back
            pg_schema.query("DELETE FROM fault")
            await a.maintain()
            with anyio.move_on_after(5):
                await until(lambda: seen == [0, 1])
            assert seen == [0, 1]
            await manager.stop(0)
    assert leases(pg_schema) == []


async def test_a_hand_back_written_at_a_streams_end_is_announced(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    await enqueue_two(a)
    pg_schema.query(FIRST_SETTLES_FAIL % 2)  # the ack and the release; not the hand-back
    seen: list[int] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            manager_b = await start(tg, b, recording(seen))
            await leave_unsettled(a)  # the stream's end wrote the hand-back, dropped the lease
            with anyio.move_on_after(5):
                await until(lambda: seen == [0, 1])
            assert seen == [0, 1]
            await manager_b.stop(0)
    assert a._handbacks == {}


async def test_the_lease_stays_while_a_stream_here_holds_the_session(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    first = await enqueue_two(a)
    pg_schema.query(FAULT)
    pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
    taken: list[int] = []
    with anyio.fail_after(20):
        await leave_unsettled(a)
        pg_schema.query("DELETE FROM fault")
        async with a.stream("s", linger=0.0) as stream:
            # A stream that owns the session (as while it looks for a claim): a hand-back
            # written meanwhile keeps the lease for it.
            a._session_owners["s"] = stream
            assert await a.hand_back_unsettled() == 1
            assert leases(pg_schema) == [("s", a.daemon_id, 1)]
            assert not await b.has_pending("s")
            async for claim in stream:
                async with claim:
                    taken.append(claim.message.payload["i"])
        assert taken == [0, 1]
    assert leases(pg_schema) == []


async def test_a_daemon_that_closes_hands_its_sessions_to_the_others(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    await enqueue_two(a)
    seen: list[int] = []
    with anyio.fail_after(20):
        stream = a.stream("s", linger=0.0)
        claim = await stream.__anext__()  # a holds the session, its head processing
        async with anyio.create_task_group() as tg:
            manager_b = await start(tg, b, recording(seen))
            assert manager_b.active_sessions == []  # a holds the session
            await a.close()  # hands the claim back and drops the lease: b must hear of it
            with anyio.move_on_after(5):
                await until(lambda: seen == [0, 1])
            assert seen == [0, 1]
            assert claim.state is ClaimState.RELEASED
            await manager_b.stop(0)
