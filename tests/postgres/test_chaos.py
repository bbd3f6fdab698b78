"""Chaos on PostgreSQL: three real ``memq serve`` daemons on one schema take a stream of
events over many sessions while one is SIGKILLed, another stopped (SIGTERM) and the database
restarted; at the end nothing is lost, duplicated or stuck, and each session kept its order.

The database restart needs a private cluster (``tests.helpers.pg_cluster``); without one the
test runs on the shared server's fresh schema and leaves the restart out, saying so. The
daemons beat every second and are declared dead after 4 s (``MEMQ_HEARTBEAT_INTERVAL``,
``MEMQ_HEARTBEAT_EXPIRY``; the defaults are 2 s and 10 s): the killed daemon's claims and
leases must be swept by expiry plus two beats, with a few seconds' slack for a loaded machine.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.helpers.daemon import Daemon
from tests.helpers.pg_cluster import PgCluster
from tests.postgres.conftest import PgSchema

pytestmark = pytest.mark.slow

SESSIONS = 30
EVENTS = 20  # per session: a prompt every PROMPT_EVERY events, observations between
PROMPT_EVERY = 5
PACE = 0.01  # seconds between posts (each post takes some 30-50 ms itself)
KILL_AT, TERM_AT, RESTART_AT = 3.0, 5.0, 7.5  # seconds into the stream
CWD = "/work/chaos-project"
SCHEMA = "memq_chaos"
BEAT, EXPIRY = 1.0, 4.0  # seconds: the daemons' heartbeat settings
SWEPT_WITHIN = EXPIRY + 2 * BEAT + 5.0  # seconds after the kill


def event(s: int, n: int) -> dict[str, Any]:
    """Session ``s``'s event ``n``: a prompt or a Bash observation, ``n`` in its text."""
    session = f"chaos{s}"
    if n % PROMPT_EVERY == 0:
        return {
            "hook_event_name": "UserPromptSubmit",
            "session_id": session,
            "cwd": CWD,
            "prompt": f"session {s} seq {n}: keep the retry budget",
            "prompt_id": f"{session}-{n}",
        }
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": CWD,
        "tool_name": "Bash",
        "tool_use_id": f"{session}-{n}",
        "tool_input": {"command": f"pytest tests/test_seq_{n}.py"},
        "tool_response": {"stdout": f"seq {n} passed", "stderr": "", "interrupted": False},
    }


def seq_of(dedupe_key: str) -> int:
    """The sequence number in a row's dedupe key ("prompt:chaos3-5", "tool:chaos3-6"): the
    payload itself is cleared once processed."""
    return int(dedupe_key.rsplit("-", 1)[1])


@dataclass
class Database:
    schema: PgSchema
    cluster: PgCluster | None  # None: the shared server, never restarted
    why_not_restarted: str = ""


@pytest.fixture
def database(request: pytest.FixtureRequest) -> Iterator[Database]:
    """A private cluster with a fresh schema when one can run here; else the shared
    server's fresh schema (no restart)."""
    problem = PgCluster.problem()
    cluster = None
    if problem is None:
        cluster = PgCluster()
        try:
            cluster.start()
        except (RuntimeError, OSError) as exc:
            problem = f"the private cluster did not start: {exc}"
            cluster.stop()
            cluster = None
    if cluster is None:
        yield Database(request.getfixturevalue("pg_schema"), None, str(problem))
        return
    try:
        schema = PgSchema(cluster.url, SCHEMA)
        schema.query(f'CREATE SCHEMA "{SCHEMA}"')
        yield Database(schema, cluster)
    finally:
        cluster.stop()


@dataclass
class Producer:
    """Posts every session's events in order over the live daemons; a refusal or a failed
    connection moves on to the next daemon, as a hook's resend would (the dedupe key makes
    a resend of an event that did land a duplicate)."""

    live: list[Daemon]
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[tuple[int, int], int] = field(default_factory=dict)
    resends: int = 0
    error: BaseException | None = None
    started: float = 0.0

    def run(self) -> None:
        try:
            self.started = time.monotonic()
            for n in range(EVENTS):
                for s in range(SESSIONS):
                    self.statuses[(s, n)] = self._post(s, n)
                    time.sleep(PACE)
        except BaseException as exc:  # reported by the test thread
            self.error = exc

    def _post(self, s: int, n: int) -> int:
        deadline = time.monotonic() + 40
        turn = s + n
        while True:
            with self.lock:
                daemons = list(self.live)
            daemon = daemons[turn % len(daemons)] if daemons else None
            turn += 1
            if daemon is not None:
                try:
                    response = httpx.post(
                        f"{daemon.url}/api/events",
                        json=event(s, n),
                        headers={"Authorization": f"Bearer {daemon.token}"},
                        timeout=5,
                    )
                    if response.status_code in (200, 202):
                        return response.status_code
                except (httpx.HTTPError, OSError):
                    pass
            self.resends += 1
            if time.monotonic() > deadline:
                raise TimeoutError(f"event {s}/{n} was refused for 40 s")
            time.sleep(0.05)


def daemon_id(schema: PgSchema, daemon: Daemon) -> int:
    assert daemon.process is not None
    (row,) = schema.query("SELECT id FROM daemons WHERE pid = %s", (daemon.process.pid,))
    return int(row[0])


def held_by(schema: PgSchema, dead: int) -> tuple[int, int, int]:
    """What the dead daemon still holds: its row, its claims, its session leases."""
    ((rows, claims, leases),) = schema.query(
        "SELECT (SELECT count(*) FROM daemons WHERE id = %(d)s),"
        " (SELECT count(*) FROM pending_messages WHERE status = 'processing'"
        "  AND claimed_by = %(d)s),"
        " (SELECT count(*) FROM session_leases WHERE daemon_id = %(d)s)",
        {"d": dead},
    )
    return int(rows), int(claims), int(leases)


def wait_drained(schema: PgSchema, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        ((total, open_rows),) = schema.query(
            "SELECT count(*), count(*) FILTER (WHERE status IN ('pending', 'processing'))"
            " FROM pending_messages"
        )
        if total == count and open_rows == 0:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{open_rows} of {total} rows still open")
        time.sleep(0.1)


def test_three_daemons_killed_stopped_and_a_restarted_server_lose_and_repeat_nothing(
    database: Database, tmp_path: Path
) -> None:
    schema = database.schema
    env = {
        "MEMQ_DATABASE_URL": schema.schema_url,
        "MEMQ_HEARTBEAT_INTERVAL": str(BEAT),
        "MEMQ_HEARTBEAT_EXPIRY": str(EXPIRY),
    }
    daemons = [Daemon(tmp_path / f"home{n}", env=env) for n in range(3)]
    figures: dict[str, Any] = {}
    try:
        for daemon in daemons:
            daemon.start(timeout=40)
        killed, stopped, survivor = daemons
        producer = Producer(live=list(daemons))
        thread = threading.Thread(target=producer.run, daemon=True)
        thread.start()

        def at(offset: float) -> None:
            time.sleep(max(0.0, producer.started + offset - time.monotonic()))

        # SIGKILL: no goodbye; its claims and session leases wait for the sweep.
        at(KILL_AT)
        dead = daemon_id(schema, killed)
        with producer.lock:
            producer.live.remove(killed)
        killed_at, kill_ms = time.monotonic(), _epoch_ms()
        killed.kill()
        figures["held at kill (row, claims, leases)"] = held_by(schema, dead)
        dead_sessions = {
            row[0]
            for row in schema.query(
                "SELECT session_id FROM session_leases WHERE daemon_id = %s"
                " UNION SELECT session_id FROM pending_messages"
                " WHERE status = 'processing' AND claimed_by = %s",
                (dead, dead),
            )
        }

        # SIGTERM: a graceful stop settles or hands back what it holds.
        at(TERM_AT)
        with producer.lock:
            producer.live.remove(stopped)
        term_started = time.monotonic()
        assert stopped.stop(timeout=30) == 0, stopped.stderr()[-2000:]
        figures["graceful stop (s)"] = round(time.monotonic() - term_started, 2)

        if database.cluster is not None:
            at(RESTART_AT)
            restart_started = time.monotonic()
            database.cluster.restart()
            figures["database restart (s)"] = round(time.monotonic() - restart_started, 2)
        else:
            figures["database restart"] = f"left out: {database.why_not_restarted}"

        # Recovery: the sweep hands the dead daemon's claims and sessions back.
        deadline = killed_at + 40
        while held_by(schema, dead) != (0, 0, 0):
            assert time.monotonic() < deadline, f"still held: {held_by(schema, dead)}"
            time.sleep(0.05)
        swept_after = time.monotonic() - killed_at
        figures["sweep after SIGKILL (s)"] = round(swept_after, 2)
        assert swept_after <= SWEPT_WITHIN, figures
        # ... and someone takes those sessions up again (a row of theirs finished later).
        if dead_sessions:
            while not _resumed(schema, dead_sessions, kill_ms):
                assert time.monotonic() < deadline, "the dead daemon's sessions never resumed"
                time.sleep(0.05)
            figures["SIGKILL to its sessions processing again (s)"] = round(
                time.monotonic() - killed_at, 2
            )

        thread.join(timeout=180)  # a liveness bound: the stream takes ~50 s when unloaded
        assert not thread.is_alive(), "the producer never finished"
        assert producer.error is None, repr(producer.error)
        stream_ended = time.monotonic()
        figures["stream (s)"] = round(stream_ended - producer.started, 2)
        figures["resends"] = producer.resends
        figures["answered duplicate (200)"] = sum(s == 200 for s in producer.statuses.values())

        # The killed daemon comes back in its home, and drains with the survivor.
        killed.start(timeout=40)
        wait_drained(schema, SESSIONS * EVENTS, timeout=45)
        figures["drain after the stream (s)"] = round(time.monotonic() - stream_ended, 2)
        figures["total (s)"] = round(time.monotonic() - producer.started, 2)
        assert survivor.process is not None
        assert survivor.process.poll() is None
        ((handed_back,),) = schema.query("SELECT count(*) FROM pending_messages WHERE attempts > 1")
        figures["rows claimed more than once"] = handed_back
        figures["session leases left after the drain"] = schema.query(
            "SELECT count(*) FROM session_leases"
        )[0][0]
    finally:
        for daemon in daemons:
            daemon.kill()
        print("\nchaos figures:", *(f"  {k}: {v}" for k, v in figures.items()), sep="\n")

    _assert_exactly_once_in_order(schema)


def _epoch_ms() -> int:
    return round(time.time() * 1000)


def _resumed(schema: PgSchema, sessions: set[str], since_ms: int) -> bool:
    ((done,),) = schema.query(
        "SELECT count(DISTINCT session_id) FROM pending_messages"
        " WHERE session_id = ANY(%s) AND status = 'processed' AND finished_at > %s",
        (sorted(sessions), since_ms),
    )
    return int(done) == len(sessions)


def _assert_exactly_once_in_order(schema: PgSchema) -> None:
    rows = schema.query(
        "SELECT id, session_id, kind, dedupe_key, status, attempts, started_at, finished_at"
        " FROM pending_messages ORDER BY id"
    )
    # Zero lost, zero duplicated in the queue: one row per event, all processed.
    assert len(rows) == SESSIONS * EVENTS
    assert len({(row[1], row[3]) for row in rows}) == len(rows)
    assert {row[4] for row in rows} == {"processed"}, [r[:6] for r in rows if r[4] != "processed"]
    expected = {(f"claude-code:chaos{s}", n) for s in range(SESSIONS) for n in range(EVENTS)}
    assert {(row[1], seq_of(row[3])) for row in rows} == expected

    # One memory record per message: a prompt row per prompt, an observation per tool call.
    prompts = schema.query("SELECT message_id, session_key, number FROM prompts")
    observations = schema.query("SELECT message_id, session_key FROM observations")
    by_kind: dict[str, set[int]] = {}
    for row in rows:
        by_kind.setdefault(row[2], set()).add(row[0])
    assert sorted(row[0] for row in prompts) == sorted(by_kind["prompt"])
    assert sorted(row[0] for row in observations) == sorted(by_kind["observation"])

    # Per session: claimed and finished in sequence order, one consumer at a time.
    for s in range(SESSIONS):
        own = [row for row in rows if row[1] == f"claude-code:chaos{s}"]
        assert [seq_of(row[3]) for row in own] == list(range(EVENTS))
        for before, after in itertools.pairwise(own):
            assert after[6] >= before[7], f"chaos{s}: {after[0]} started before {before[0]} ended"
        numbers = sorted((row[0], row[2]) for row in prompts if row[1] == f"claude-code:chaos{s}")
        assert [number for _, number in numbers] == list(range(1, EVENTS // PROMPT_EVERY + 1))
    # The feed follows the commits: per session, records in message order.
    feed = schema.query(
        "SELECT f.session_key, coalesce(p.message_id, o.message_id) FROM feed AS f"
        " LEFT JOIN prompts AS p ON f.record_type = 'prompt' AND p.id = f.record_id"
        " LEFT JOIN observations AS o ON f.record_type = 'observation' AND o.id = f.record_id"
        " ORDER BY f.seq"
    )
    assert len(feed) == len(rows)
    for s in range(SESSIONS):
        ids = [row[1] for row in feed if row[0] == f"claude-code:chaos{s}"]
        assert ids == sorted(ids)
