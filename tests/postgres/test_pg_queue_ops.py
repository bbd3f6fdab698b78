"""``PgQueue`` in operation: heartbeat timings from the settings, a lease whose drop failed,
and a session moved while one of its claims waits to be handed back."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
import structlog

from memq import env as memq_env
from memq.config import Settings, settings_report
from memq.exceptions import SessionBusyError, SettingError, StorageError
from memq.queue import ClaimState
from memq.queue.postgres import PgSettings
from tests.postgres.conftest import PgSchema
from tests.postgres.test_pg_queue_fixes import FAULT

# Heartbeats that never run during a test: the tests beat and sweep themselves.
NO_BEATS = PgSettings(heartbeat_interval=600.0, listen_fallback_poll=0.5)
# A lease of a session named in ``lease_fault`` cannot be deleted: a drop that fails.
LEASE_FAULT = """
CREATE TABLE lease_fault (session_id TEXT PRIMARY KEY);
CREATE FUNCTION refuse_drop() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF EXISTS (SELECT 1 FROM lease_fault WHERE lease_fault.session_id = OLD.session_id) THEN
    RAISE EXCEPTION 'injected: the connection went away';
  END IF;
  RETURN OLD;
END $$;
CREATE TRIGGER refuse_drop BEFORE DELETE ON session_leases
FOR EACH ROW EXECUTE FUNCTION refuse_drop();
"""


async def until(condition: Callable[[], Any]) -> None:
    """Wait until ``condition`` holds (under the caller's ``fail_after``)."""
    while True:
        if condition():
            return
        await anyio.sleep(0.02)


def leases(pg_schema: PgSchema) -> list[tuple[Any, ...]]:
    return pg_schema.query("SELECT session_id, daemon_id, token FROM session_leases ORDER BY 1")


def set_beat_back(pg_schema: PgSchema, daemon: int, seconds: float) -> None:
    """The daemon's last beat ``seconds`` ago by the server's clock."""
    pg_schema.query(
        "UPDATE daemons SET heartbeat_at ="
        " (extract(epoch FROM clock_timestamp()) * 1000)::bigint - %s WHERE id = %s",
        (round(seconds * 1000), daemon),
    )


async def run_one(queue: Any, session_id: str) -> list[Any]:
    """A stream of the session that acks what it finds (linger 0); the payloads."""
    got = []
    async with queue.stream(session_id, linger=0.0) as stream:
        async for claim in stream:
            async with claim:
                got.append(claim.message.payload)
    return got


class TestHeartbeatSettings:
    """No server needed: MEMQ_HEARTBEAT_INTERVAL / _EXPIRY in seconds, checked."""

    def test_seconds_from_the_environment_and_the_settings_file(self, tmp_path: Path) -> None:
        settings = Settings.from_env({"MEMQ_HEARTBEAT_EXPIRY": "30"})
        assert (settings.heartbeat_interval, settings.heartbeat_expiry) == (2.0, 30.0)
        (tmp_path / "settings.toml").write_text("heartbeat_interval = 6\nheartbeat_expiry = 30\n")
        env = memq_env.environment({"MEMQ_HOME": str(tmp_path)})
        settings = Settings.from_env(env)
        assert (settings.heartbeat_interval, settings.heartbeat_expiry) == (6.0, 30.0)
        report = settings_report(env)
        assert report["heartbeat_expiry"]["value"] == 30.0
        assert report["heartbeat_expiry"]["variable"] == "MEMQ_HEARTBEAT_EXPIRY"

    def test_expiry_defaults_to_five_intervals(self) -> None:
        assert Settings.from_env({}).heartbeat_expiry == 10.0
        assert Settings.from_env({"MEMQ_HEARTBEAT_INTERVAL": "6"}).heartbeat_expiry == 30.0

    @pytest.mark.parametrize(
        ("env", "message"),
        [
            (
                {"MEMQ_HEARTBEAT_INTERVAL": "0"},
                "MEMQ_HEARTBEAT_INTERVAL=0 must be a finite",
            ),
            ({"MEMQ_HEARTBEAT_EXPIRY": "2"}, "MEMQ_HEARTBEAT_EXPIRY=2 must be longer than"),
            (
                {"MEMQ_HEARTBEAT_INTERVAL": "10", "MEMQ_HEARTBEAT_EXPIRY": "5"},
                r"MEMQ_HEARTBEAT_EXPIRY=5 must be longer than heartbeat_interval \(10 s\)",
            ),
            ({"MEMQ_HEARTBEAT_EXPIRY": "soon"}, "MEMQ_HEARTBEAT_EXPIRY='soon' is not a number"),
        ],
    )
    def test_bad_values_are_refused_naming_the_variable(
        self, env: dict[str, str], message: str
    ) -> None:
        with pytest.raises(SettingError, match=message):
            Settings.from_env(env)
        variable = next(iter(env.keys() - {"MEMQ_HEARTBEAT_INTERVAL"}), "MEMQ_HEARTBEAT_INTERVAL")
        key = variable.removeprefix("MEMQ_").lower()
        assert "error" in settings_report(env)[key]

    def test_a_bad_expiry_in_the_file_names_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text("heartbeat_interval = 6\nheartbeat_expiry = 6\n")
        env = memq_env.environment({"MEMQ_HOME": str(tmp_path)})
        with pytest.raises(SettingError, match=r"heartbeat_expiry = 6 must be longer .*settings"):
            Settings.from_env(env)


async def test_the_daemons_expiry_setting_is_seconds_on_the_servers_clock(
    open_pg_queue: Any, pg_schema: PgSchema
) -> None:
    """MEMQ_HEARTBEAT_EXPIRY=30 through the daemon's composition: a daemon whose last beat
    is 29 s old is alive, 31 s old is dead and its claim goes back to pending."""
    from memq.worker.composition import open_pg_queue as compose  # noqa: PLC0415

    env = {
        "MEMQ_DATABASE_URL": pg_schema.schema_url,
        # No beat or sweep of its own during the test; 5 x 5 s would be 25 s.
        "MEMQ_HEARTBEAT_INTERVAL": "5",
        "MEMQ_HEARTBEAT_EXPIRY": "30",
    }
    a = await open_pg_queue(pg=NO_BEATS)
    sweeper: Any = await compose(Settings.from_env(env), port=0)
    try:
        assert (sweeper.pg_settings.heartbeat_interval, sweeper.pg_settings.expiry) == (5.0, 30.0)
        message_id = (await a.enqueue("s", "observation", {})).message_id
        claim = await a.stream("s", linger=0).__anext__()
        set_beat_back(pg_schema, a.daemon_id, 29)
        assert (await sweeper.sweep()).daemons == ()
        assert pg_schema.query("SELECT status FROM pending_messages") == [("processing",)]
        set_beat_back(pg_schema, a.daemon_id, 31)
        report = await sweeper.sweep()
        assert report.daemons == (a.daemon_id,)
        assert [row["id"] for row in report.claims] == [message_id]
        assert pg_schema.query("SELECT status FROM pending_messages") == [("pending",)]
        assert leases(pg_schema) == []
        assert not await a.beat()  # a learns it was declared dead
        assert claim.state is ClaimState.LOST
    finally:
        await sweeper.close()


class TestFailedLeaseDrop:
    async def test_the_next_beat_drops_a_lease_whose_drop_failed(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """The stream's drop fails: the idle lease would keep the session from every other
        daemon for as long as this one beats. Its next beat that can write drops it."""
        a = await open_pg_queue(
            pg=PgSettings(heartbeat_interval=0.05, heartbeat_expiry=600.0, listen_fallback_poll=5)
        )
        b = await open_pg_queue(pg=NO_BEATS)
        pg_schema.query(LEASE_FAULT)
        pg_schema.query("INSERT INTO lease_fault VALUES ('s')")
        await a.enqueue("s", "observation", {"i": 0})
        with structlog.testing.capture_logs() as logs, anyio.fail_after(5):
            assert await run_one(a, "s") == [{"i": 0}]
            assert [e["session_id"] for e in logs if e["event"] == "lease.drop_failed"] == ["s"]
            # Beats come and go; while the drop still fails, the lease stays a's.
            await until(lambda: sum(e["event"] == "lease.drop_failed" for e in logs) >= 3)
            assert [row[:2] for row in leases(pg_schema)] == [("s", a.daemon_id)]
            await b.enqueue("s", "observation", {"i": 1})
            assert await b.sessions_with_backlog() == []
            pg_schema.query("DELETE FROM lease_fault")
            await until(lambda: not leases(pg_schema))
        assert await b.sessions_with_backlog() == ["s"]
        assert await run_one(b, "s") == [{"i": 1}]

    async def test_a_lease_taken_again_since_is_not_dropped(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        a = await open_pg_queue(pg=NO_BEATS)
        pg_schema.query(LEASE_FAULT)
        pg_schema.query("INSERT INTO lease_fault VALUES ('s')")
        await a.enqueue("s", "observation", {"i": 0})
        assert await run_one(a, "s") == [{"i": 0}]
        [(_, _, stale)] = leases(pg_schema)
        pg_schema.query("DELETE FROM lease_fault")
        await a.enqueue("s", "observation", {"i": 1})
        async with a.stream("s", linger=0.0) as stream:
            claim = await stream.__anext__()
            [(_, daemon, token)] = leases(pg_schema)
            assert (daemon, token != stale) == (a.daemon_id, True)
            assert await a.beat()
            assert leases(pg_schema) == [("s", a.daemon_id, token)]  # the stream's, kept
            await claim.ack()
        assert leases(pg_schema) == []
        assert a._stale_leases == {}


class TestMoveSession:
    async def test_an_unsettled_claim_is_handed_back_with_the_move(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        """Its hand-back is written in the move's transaction: the target's head is that
        message again, for whichever daemon takes the target next."""
        a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
        first = (await a.enqueue("s", "observation", {"i": 0})).message_id
        await a.enqueue("s", "observation", {"i": 1})
        pg_schema.query(FAULT)
        pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
        with pytest.raises(StorageError):
            await run_one(a, "s")  # the ack fails, then the fail: the claim is unsettled
        pg_schema.query("DELETE FROM fault")
        assert await a.move_session("s", "t") == (2, 0)
        rows = pg_schema.query("SELECT id, session_id, status FROM pending_messages ORDER BY id")
        assert rows == [(first, "t", "pending"), (first + 1, "t", "pending")]
        assert a._handbacks == {}
        assert leases(pg_schema) == []
        assert await run_one(b, "t") == [{"i": 0}, {"i": 1}]

    async def test_nothing_moves_while_the_hand_back_cannot_be_written(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        a = await open_pg_queue(pg=NO_BEATS)
        first = (await a.enqueue("s", "observation", {"i": 0})).message_id
        pg_schema.query(FAULT)
        pg_schema.query("INSERT INTO fault VALUES (%s)", (first,))
        with pytest.raises(StorageError):
            await run_one(a, "s")
        with pytest.raises(StorageError, match="injected"):
            await a.move_session("s", "t")
        assert pg_schema.query("SELECT session_id, status FROM pending_messages") == [
            ("s", "processing")
        ]
        assert list(a._handbacks) == [first]
        pg_schema.query("DELETE FROM fault")
        assert await a.move_session("s", "t") == (1, 0)
        assert await run_one(a, "t") == [{"i": 0}]

    async def test_a_claim_in_hand_in_another_daemon_refuses_the_move(
        self, open_pg_queue: Any, pg_schema: PgSchema
    ) -> None:
        a, b = await open_pg_queue(pg=NO_BEATS), await open_pg_queue(pg=NO_BEATS)
        await a.enqueue("s", "observation", {"i": 0})
        async with b.stream("s", linger=0.0) as stream:
            claim = await stream.__anext__()
            with pytest.raises(SessionBusyError, match=f"daemon {b.daemon_id}"):
                await a.move_session("s", "t")
            assert pg_schema.query("SELECT session_id FROM pending_messages") == [("s",)]
            await claim.ack()
        assert await a.move_session("s", "t") == (1, 0)
