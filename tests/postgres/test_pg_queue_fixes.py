"""Problems the PostgreSQL benchmark found: lock order across daemons, a close racing the
heartbeat's sweep, the lease outliving a failed hand-back, and the backlog query's scan."""

from __future__ import annotations

from typing import Any

import anyio
import structlog

from memq.queue.postgres import PgSettings
from tests.postgres.conftest import PgSchema

NO_BEATS = PgSettings(heartbeat_interval=600.0, listen_fallback_poll=0.5)


async def take_one_each(queue: Any, sessions: list[str], seen: list[tuple[str, int]]) -> None:
    """A stream per session, started in ``sessions``' order (so their first claims reach the
    writer, and one batch, in that order); each acks at most one message."""

    async def one(session_id: str) -> None:
        async with queue.stream(session_id, linger=0.0) as stream:
            async for claim in stream:
                async with claim:
                    seen.append((session_id, claim.message.payload["i"]))
                return

    async with anyio.create_task_group() as tg:
        for session_id in sessions:
            tg.start_soon(one, session_id)


async def test_daemons_taking_sessions_in_opposite_orders_never_deadlock(
    open_pg_queue: Any,
) -> None:
    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    sessions = [f"s{n:03d}" for n in range(40)]
    rounds = 15
    seen: list[tuple[str, int]] = []
    with structlog.testing.capture_logs() as logs, anyio.fail_after(120):
        for i in range(rounds):
            for session_id in sessions:
                await a.enqueue(session_id, "observation", {"i": i})
            async with anyio.create_task_group() as tg:
                tg.start_soon(take_one_each, a, sessions, seen)
                tg.start_soon(take_one_each, b, sessions[::-1], seen)
    assert not [e for e in logs if "deadlock" in str(e).lower()]
    assert sorted(seen) == sorted((s, i) for s in sessions for i in range(rounds))


async def test_close_racing_the_heartbeat_sweep_never_raises(
    pg_schema: PgSchema,
) -> None:
    from memq.queue.postgres import PgQueue  # noqa: PLC0415
    from tests.conftest import FAST  # noqa: PLC0415

    tiny = PgSettings(heartbeat_interval=0.001, heartbeat_expiry=0.002, listen_fallback_poll=0.5)
    with anyio.fail_after(120):
        for n in range(40):
            queue = await PgQueue.open(pg_schema.url, FAST, pg=tiny, options=pg_schema.options())
            await anyio.sleep(0.002 * (n % 7))
            await queue.close()
    # Every close unregistered its daemon for good (a beat after the close's unregister
    # must not register it again).
    assert pg_schema.query("SELECT count(*) FROM daemons") == [(0,)]


# A real failure on the server: an update of a 'processing' row named in ``fault`` raises,
# so that claim's ack, fail and hand-back all fail while every other write goes through.
FAULT = """
CREATE TABLE fault (id BIGINT PRIMARY KEY);
CREATE FUNCTION refuse_settle() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF OLD.status = 'processing' AND EXISTS (SELECT 1 FROM fault WHERE fault.id = OLD.id) THEN
    RAISE EXCEPTION 'injected: the disk went away';
  END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_settle BEFORE UPDATE ON pending_messages
FOR EACH ROW EXECUTE FUNCTION refuse_settle();
"""


async def test_lease_is_kept_until_an_unsettled_claim_is_handed_back(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    from memq.exceptions import StorageError  # noqa: PLC0415
    from memq.queue import ClaimState  # noqa: PLC0415

    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    first = (await a.enqueue("s", "observation", {"i": 0})).message_id
    await a.enqueue("s", "observation", {"i": 1})
    pg_schema.query(FAULT)
    pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
    claims: list[Any] = []
    with anyio.fail_after(30):
        try:
            async with a.stream("s", linger=0.0) as stream:
                async for claim in stream:
                    claims.append(claim)
                    async with claim:
                        pass  # the ack fails, then the fail: the claim is unsettled
        except StorageError:
            pass
        assert [c.state for c in claims] == [ClaimState.UNSETTLED]
        # Message 0 is still 'processing': no daemon may claim message 1 in its session.
        taken: list[int] = []
        async with b.stream("s", linger=0.0) as stream:
            async for claim in stream:
                taken.append(claim.message.payload["i"])
                await claim.release()
                break
        assert taken == []
        # Once the hand-back is written, the session goes on in order.
        pg_schema.query("DELETE FROM fault")
        assert await a.hand_back_unsettled() == 1
        async with a.stream("s", linger=0.0) as stream:
            async for claim in stream:
                async with claim:
                    taken.append(claim.message.payload["i"])
        assert taken == [0, 1]


async def test_free_backlog_skips_from_session_to_session_on_the_index(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    from memq.queue.postgres.queue import PG_QUERIES  # noqa: PLC0415

    a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
    pg_schema.query(
        "INSERT INTO pending_messages (session_id, kind, payload, available_at, created_at)"
        " SELECT 's' || lpad((g % 200)::text, 3, '0'), 'observation', '{}', 0, 0"
        " FROM generate_series(1, 20000) AS g"
    )
    pg_schema.query("UPDATE pending_messages SET status = 'processed' WHERE session_id = 's007'")
    pg_schema.query("ANALYZE pending_messages")
    # b holds s003's lease: a does not see it; b does.
    async with b.stream("s003", linger=0.0) as stream:
        async for claim in stream:
            await claim.release()
            break
        everyone = {f"s{n:03d}" for n in range(200)} - {"s007"}
        assert await a.sessions_with_backlog() == sorted(everyone - {"s003"})
        assert await b.sessions_with_backlog() == sorted(everyone)
    explain = "EXPLAIN " + PG_QUERIES["free_backlog"].replace("%(daemon)s", "1")
    plan = "\n".join(row[0] for row in pg_schema.query(explain))
    assert "pending_messages_next" in plan
    assert "Seq Scan on pending_messages" not in plan
