"""Several daemons (``PgQueue``s) on one schema: one consumer per session across them, work
spread, wake-up by NOTIFY, the listener's loss, heartbeat expiry and fencing."""

from __future__ import annotations

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import anyio
import pytest

from memq.exceptions import ClaimLostError
from memq.queue import ClaimState
from memq.queue.postgres import PgSettings
from tests.postgres.conftest import PgSchema

RESULTS_TABLE = "CREATE TABLE results (message_id BIGINT NOT NULL UNIQUE, body TEXT NOT NULL)"
# Heartbeats that never run during a test: the tests expire daemons themselves.
NO_BEATS = PgSettings(heartbeat_interval=600.0, listen_fallback_poll=0.5)


async def until(condition: Callable[[], bool]) -> None:
    """Wait until ``condition`` holds (under the caller's ``fail_after``)."""
    while True:
        if condition():
            return
        await anyio.sleep(0.01)


def waiting(queue: Any, session_id: str) -> Callable[[], bool]:
    """Whether the session's idle stream looked, found nothing, and waits: ``armed`` alone
    holds from just before its first look, so a row enqueued then is found by that look."""

    def check() -> bool:
        waiter = queue._wakeups._waiters.get(session_id)
        return waiter is not None and waiter.waiting

    return check


async def consume(
    queue: Any, seen: list[tuple[int, str, int]], done: anyio.Event, *, room: int = 3
) -> None:
    """A small session manager: a stream per session with a backlog this daemon may take,
    at most ``room`` at a time (so sessions spread over daemons by who has room), each
    acked message recorded as (daemon, session, i)."""
    running: set[str] = set()

    async def run(session_id: str) -> None:
        try:
            async with queue.stream(session_id, linger=0.05) as stream:
                async for claim in stream:
                    async with claim:
                        await anyio.sleep(0.001)  # some work: the other daemon gets a turn
                        seen.append((queue.daemon_id, session_id, claim.message.payload["i"]))
        finally:
            running.discard(session_id)

    async with anyio.create_task_group() as tg:
        while not done.is_set():
            for session_id in await queue.sessions_with_backlog():
                if session_id not in running and len(running) < room:
                    running.add(session_id)
                    tg.start_soon(run, session_id)
            with anyio.move_on_after(0.05):
                await done.wait()


async def test_two_daemons_process_every_message_once_in_order_and_share_the_work(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a, b = await open_pg_queue(), await open_pg_queue()
    sessions, per_session = [f"s{n}" for n in range(12)], 15
    for i in range(per_session):
        for n, session_id in enumerate(sessions):
            await (a if (i + n) % 2 else b).enqueue(session_id, "observation", {"i": i})
    total = len(sessions) * per_session
    seen: list[tuple[int, str, int]] = []
    done = anyio.Event()
    with anyio.fail_after(60):
        async with anyio.create_task_group() as tg:
            tg.start_soon(consume, a, seen, done)
            tg.start_soon(consume, b, seen, done)
            await until(lambda: len(seen) >= total)
            done.set()
    assert len(seen) == total
    assert sorted((s, i) for _, s, i in seen) == sorted(
        (s, i) for s in sessions for i in range(per_session)
    )
    by_session: dict[str, list[int]] = defaultdict(list)
    for _, session_id, i in seen:
        by_session[session_id].append(i)
    assert all(order == list(range(per_session)) for order in by_session.values())
    by_daemon = {daemon for daemon, _, _ in seen}
    assert by_daemon == {a.daemon_id, b.daemon_id}
    assert pg_schema.query("SELECT status, count(*) FROM pending_messages GROUP BY 1") == [
        ("processed", total)
    ]


async def test_a_session_leased_by_one_daemon_yields_nothing_to_another(
    open_pg_queue: Any,
) -> None:
    a, b = await open_pg_queue(), await open_pg_queue()
    await a.enqueue("s", "observation", {"i": 0})
    await a.enqueue("s", "observation", {"i": 1})
    async with a.stream("s", linger=0) as held:
        claim = await held.__anext__()
        assert await b.sessions_with_backlog() == []
        assert not await b.has_pending("s")
        assert await b._claim("s") == (None, None)  # the lease is a's: b claims nothing
        await claim.ack()
    # The stream ended and let go of the session: b may take it now.
    assert await b.sessions_with_backlog() == ["s"]
    claim, _ = await b._claim("s")
    assert claim.message.payload == {"i": 1}
    await claim.ack()


async def test_an_expired_daemon_is_fenced_and_its_ack_stores_nothing(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    """Expire a's heartbeat while it holds a claim; b's sweep hands the message back and b
    claims it again; a's ack then fails (its token is not the row's), its effect not
    stored, and b's ack goes through."""
    a = await open_pg_queue(pg=NO_BEATS)
    b = await open_pg_queue(pg=NO_BEATS)
    await a.run_in_transaction(lambda tx: tx.execute(RESULTS_TABLE))
    message_id = (await a.enqueue("s", "observation", {"i": 0})).message_id
    stale = await a.stream("s", linger=0).__anext__()
    dead = a.daemon_id
    pg_schema.query(
        "UPDATE daemons SET heartbeat_at = heartbeat_at - 3600000 WHERE id = %s", (dead,)
    )
    report = await b.sweep()
    assert report.daemons == (dead,)
    assert [row["id"] for row in report.claims] == [message_id]
    assert pg_schema.query("SELECT status, attempts FROM pending_messages") == [("pending", 1)]
    assert pg_schema.query("SELECT count(*) FROM session_leases") == [(0,)]

    # b claims the message again (attempt 2): a's stale claim names an older token.
    claim, _ = await b._claim("s")
    assert (claim.message.id, claim.message.attempts) == (message_id, 2)

    async def store(tx: Any) -> None:
        await tx.execute("INSERT INTO results VALUES (%s, 'stale')", (message_id,))

    with pytest.raises(ClaimLostError):
        await stale.ack(store)
    assert pg_schema.query("SELECT count(*) FROM results") == [(0,)]
    assert pg_schema.query("SELECT status, claimed_by FROM pending_messages") == [
        ("processing", b.daemon_id)
    ]
    # Not aware yet that it was declared dead, a claims nothing (its lease is gone)...
    assert await a._claim("s") == (None, None)
    # ...and its next beat tells it: it registers again, under a new id.
    assert not await a.beat()
    assert a.daemon_id != dead

    async def fresh(tx: Any) -> None:
        await tx.execute("INSERT INTO results VALUES (%s, 'fresh')", (message_id,))

    await claim.ack(fresh)
    assert pg_schema.query("SELECT body FROM results") == [("fresh",)]


async def test_a_fenced_daemon_loses_its_claims_at_its_next_beat(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    a = await open_pg_queue(pg=NO_BEATS)
    b = await open_pg_queue(pg=NO_BEATS)
    await a.enqueue("s", "observation", {})
    claim = await a.stream("s", linger=0).__anext__()
    pg_schema.query("UPDATE daemons SET heartbeat_at = 0 WHERE id = %s", (a.daemon_id,))
    await b.sweep()
    assert not await a.beat()
    assert claim.state is ClaimState.LOST
    with pytest.raises(ClaimLostError):
        await claim.ack()


async def test_a_claim_out_of_attempts_fails_when_its_daemon_expires(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    """A message that kills daemons is a poison message: the attempt is not refunded."""
    from memq.queue import QueueSettings  # noqa: PLC0415

    a = await open_pg_queue(QueueSettings(max_attempts=1), pg=NO_BEATS)
    b = await open_pg_queue(QueueSettings(max_attempts=1), pg=NO_BEATS)
    await a.enqueue("s", "observation", {})
    await a.stream("s", linger=0).__anext__()
    pg_schema.query("UPDATE daemons SET heartbeat_at = 0 WHERE id = %s", (a.daemon_id,))
    await b.sweep()
    [failed] = await b.failed()
    assert failed.last_error == (
        "interrupted: its daemon died (heartbeat expired) while this message was processing"
    )


async def test_a_waiting_stream_is_woken_by_another_daemons_enqueue(
    open_pg_queue: Any,
) -> None:
    """No poll can wake it (one a minute, linger 30 s): only the notification does."""
    a = await open_pg_queue(pg=PgSettings(heartbeat_interval=600.0, listen_fallback_poll=60.0))
    b = await open_pg_queue()
    got: list[Any] = []
    armed = anyio.Event()

    async def wait_on_a() -> None:
        async with a.stream("s", linger=30.0) as stream:
            armed.set()
            async for claim in stream:
                async with claim:
                    got.append((claim.message.payload, time.monotonic()))
                break

    with anyio.fail_after(10):  # far below the 30 s linger and the 60 s poll
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_on_a)
            await armed.wait()
            await until(waiting(a, "s"))
            await b.enqueue("s", "observation", {"from": "b"})
            enqueued_at = time.monotonic()
    assert [payload for payload, _ in got] == [{"from": "b"}]
    assert got[0][1] - enqueued_at < 10
    assert a._changes.checks == 0  # no fallback poll ran


async def test_wait_for_foreign_rows_returns_on_another_daemons_enqueue(
    open_pg_queue: Any,
) -> None:
    a = await open_pg_queue(pg=PgSettings(heartbeat_interval=600.0, listen_fallback_poll=60.0))
    b = await open_pg_queue()
    await a.enqueue("mine", "observation", {})  # its own: no wake-up of the manager
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(b.enqueue, "s", "observation", {})
            await a.wait_for_foreign_rows()
    # Notifications arrive in commit order: a's own would have come first.
    assert list(a._changes.heard) == [["s"]]
    assert await a.sessions_with_backlog() == ["mine", "s"]


async def test_a_lost_listener_falls_back_to_polling_then_reconnects(
    open_pg_queue: Any, pg_schema: PgSchema, monkeypatch: pytest.MonkeyPatch
) -> None:
    """While its listening connection is down, a daemon's idle stream finds another daemon's
    enqueue by the fallback poll. The reconnect waits for the test (a gate on the listener's
    connect), so however slow the machine, neither a notification nor the wake-up at the
    reconnect can deliver the message instead."""
    a = await open_pg_queue(
        pg=PgSettings(
            heartbeat_interval=600.0,
            listen_fallback_poll=0.3,
            reconnect_min=0.05,
            reconnect_max=0.05,
        )
    )
    b = await open_pg_queue()
    may_reconnect = anyio.Event()
    connect = a.listener._connect

    async def gated_connect() -> Any:
        await may_reconnect.wait()
        return await connect()

    monkeypatch.setattr(a.listener, "_connect", gated_connect)
    assert a.listener.listening
    pg_schema.query("SELECT pg_terminate_backend(%s)", (a.listener.backend_pid,))
    with anyio.fail_after(10):
        await until(lambda: not a.listener.listening)
    got: list[Any] = []

    async def wait_on_a() -> None:
        async with a.stream("s", linger=30.0) as stream:
            async for claim in stream:
                async with claim:
                    got.append((claim.message.payload, a.listener.listening))
                break

    # Its linger is 30 s and nothing can notify it: only a poll (every 0.3 s) hands it the
    # message, well within this bound even on a loaded machine.
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(wait_on_a)
            await until(waiting(a, "s"))
            await b.enqueue("s", "observation", {"i": 1})
    assert got == [({"i": 1}, False)]
    assert a._changes.checks > 0
    may_reconnect.set()
    with anyio.fail_after(10):
        await until(lambda: a.listener.listening)
    assert a.listener.reconnects == 1


async def test_a_crashed_daemons_claim_is_recovered_within_expiry_and_a_sweep(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    """A daemon dies holding a claim (no release, no goodbye); the other's own heartbeat
    loop sweeps it once its last beat is older than the expiry, and processes the message.

    Timed as the sweep decides, on the server's clock from the dead daemon's heartbeat_at,
    so the time this machine takes between that beat and the crash does not count. An
    observer reads the server's clock in the statement that sees the claim recovered: the
    recovery committed before that moment."""
    import psycopg  # noqa: PLC0415

    interval, expiry, slack = 0.2, 1.0, 0.8
    a = await open_pg_queue(pg=NO_BEATS)
    b = await open_pg_queue(
        pg=PgSettings(heartbeat_interval=interval, heartbeat_expiry=expiry, listen_fallback_poll=5)
    )
    message_id = (await a.enqueue("s", "observation", {"i": 0})).message_id
    await a.stream("s", linger=0).__anext__()
    dead = a.daemon_id
    assert await a.beat()  # its last
    await a._shut_down(hand_back=False)  # as a killed process: nothing settled or removed
    [(last_beat,)] = pg_schema.query("SELECT heartbeat_at FROM daemons WHERE id = %s", (dead,))
    expires_at = last_beat + round(expiry * 1000)
    # (server ms, whether the dead daemon and so its claim are still there)
    seen: list[tuple[int, bool]] = []
    got = anyio.Event()

    async def observe(conn: Any) -> None:
        query = (
            "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint,"
            " EXISTS (SELECT 1 FROM daemons WHERE id = %s)"
        )
        while not seen or seen[-1][1]:
            cursor = await conn.execute(query, (dead,))
            now, held = await cursor.fetchone()
            seen.append((now, held))
            await anyio.sleep(0.01)

    async def take() -> None:
        async with b.stream("s", linger=30.0) as stream:
            async for claim in stream:
                async with claim:
                    assert (claim.message.id, claim.message.attempts) == (message_id, 2)
                got.set()
                break

    async with await psycopg.AsyncConnection.connect(pg_schema.url, autocommit=True) as conn:
        await conn.execute(f'SET search_path TO "{pg_schema.name}"'.encode())
        with anyio.fail_after(expiry + 10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(observe, conn)
                tg.start_soon(take)
                await got.wait()
    recovered_by = next(now for now, held in seen if not held)
    assert recovered_by > expires_at  # not before the heartbeat expired
    # ...and by the first sweep after it (one interval), give or take this machine's delays.
    assert recovered_by - expires_at <= (interval + slack) * 1000
    assert pg_schema.query("SELECT status FROM pending_messages") == [("processed",)]
    assert [d["id"] for d in await b.daemons()] == [b.daemon_id]


async def test_a_daemon_learns_it_was_fenced_from_its_own_heartbeat(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    """Declared dead by another's sweep, a daemon's heartbeat loop finds its row gone: its
    claim is lost at once (not at its ack), and it registers again."""
    a = await open_pg_queue(pg=PgSettings(heartbeat_interval=0.1, listen_fallback_poll=5))
    b = await open_pg_queue(pg=NO_BEATS)
    await a.enqueue("s", "observation", {})
    claim = await a.stream("s", linger=0).__anext__()
    first = a.daemon_id
    with anyio.fail_after(10):
        while True:  # a beats every 0.1 s: expire and sweep it between two beats
            pg_schema.query("UPDATE daemons SET heartbeat_at = 0 WHERE id = %s", (first,))
            if (await b.sweep()).daemons == (first,):
                break
        await until(lambda: a.daemon_id != first)
    assert claim.state is ClaimState.LOST
    assert {d["id"] for d in await b.daemons()} == {a.daemon_id, b.daemon_id}


async def test_enqueues_of_one_session_commit_in_id_order_across_daemons(
    pg_queue: Any, pg_schema: PgSchema
) -> None:
    """Another daemon's enqueue to the session, mid-transaction with its id drawn, holds the
    session's lock: this daemon's enqueue waits for its commit, so no consumer can see the
    later id while the earlier one is still to come."""
    import psycopg  # noqa: PLC0415

    def writer_waits_for_a_lock() -> bool:
        pid = pg_queue._writer.backend_pid
        query = "SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted"
        return pid is not None and pg_schema.query(query, (pid,)) == [(1,)]

    async with await psycopg.AsyncConnection.connect(pg_schema.url) as other:
        await other.execute(f'SET search_path TO "{pg_schema.name}"'.encode())
        await other.execute("SELECT pg_advisory_xact_lock(hashtext('memq enqueue'), hashtext('s'))")
        cursor = await other.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, available_at, created_at)"
            " VALUES ('s', 'observation', '{\"from\": \"other\"}', 0, 0) RETURNING id"
        )
        (earlier,) = await cursor.fetchone() or (0,)
        later: list[int] = []

        async def enqueue() -> None:
            later.append((await pg_queue.enqueue("s", "observation", {"from": "here"}))[0])

        async with anyio.create_task_group() as tg:
            tg.start_soon(enqueue)
            with anyio.fail_after(10):
                await until(writer_waits_for_a_lock)
            assert later == []  # still waiting for the other's commit
            await other.commit()
    assert later[0] > earlier
    claims = []
    async with pg_queue.stream("s", linger=0) as stream:
        async for claim in stream:
            async with claim:
                claims.append(claim.message.payload["from"])
    assert claims == ["other", "here"]


async def test_a_daemon_whose_beats_go_unanswered_stops_claiming(
    open_pg_queue: Any,
) -> None:
    """Two beats in a row without an answer: the others may declare it dead any moment,
    so it claims nothing more (its acks would be fenced anyway)."""
    from memq.exceptions import StorageError  # noqa: PLC0415

    a = await open_pg_queue(pg=NO_BEATS)
    await a.enqueue("s", "observation", {})
    await a._pool.close()  # the heartbeat's connections: gone, as in a network partition
    for _ in range(2):
        with pytest.raises(StorageError):
            await a.beat()
    with pytest.raises(StorageError, match="heartbeats"):
        await a._claim("s")
