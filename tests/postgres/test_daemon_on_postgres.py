"""``memq serve`` on PostgreSQL end to end: the real daemon, hook and CLI as subprocesses on a
fresh schema (``MEMQ_DATABASE_URL`` with the schema in its ``options``), and the hook's
fallback when the daemons' database is a server's (it spools; no SQLite file appears)."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from memq import env as memq_env
from memq.cli.status_lines import postgres_lines, status_problems
from memq.events import route_event
from memq.hooks.run import Handover, HookSettings, fall_back
from memq.hooks.spool import count_waiting
from memq.memory.feed import append_feed
from memq.queue import EpochMs
from memq.storage.postgres.statements import pg_form
from memq.storage.sqlfile import POSTGRES, load_queries
from memq.worker.status_report import shared_database
from tests.faults.kit import keep_hooks_from_spawning
from tests.helpers.daemon import Daemon
from tests.postgres.conftest import PgSchema

URL = "postgresql://memq@db.example:5432/memq"
CWD = "/work/shared-project"


def prompt(session: str, text: str, n: int = 0) -> dict[str, Any]:
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": session,
        "cwd": CWD,
        "prompt": text,
        "prompt_id": f"{session}-{n}",
    }


def tool_call(session: str, command: str) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": CWD,
        "tool_name": "Bash",
        "tool_use_id": f"{session}-{command}",
        "tool_input": {"command": command},
        "tool_response": {"stdout": "4 passed", "stderr": "", "interrupted": False},
    }


def session_start(session: str) -> dict[str, Any]:
    return {
        "hook_event_name": "SessionStart",
        "session_id": session,
        "cwd": CWD,
        "source": "startup",
    }


@pytest.fixture
def daemons(pg_schema: PgSchema, tmp_path: Path) -> Iterator[list[Daemon]]:
    """Two daemons (not started) on the test's schema, each with its own home and port."""
    made = [
        Daemon(tmp_path / f"home{n}", env={"MEMQ_DATABASE_URL": pg_schema.schema_url})
        for n in (1, 2)
    ]
    try:
        yield made
    finally:
        for daemon in made:
            daemon.kill()


def hook(daemon: Daemon, payload: dict[str, Any]) -> str:
    """The real ``memq hook`` with the daemon's home, port and database; what it printed."""
    keep_hooks_from_spawning(daemon.home)  # the test starts its daemons itself
    done = subprocess.run(
        [sys.executable, "-m", "memq", "hook"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=60,
        check=False,
        env=daemon.env,
    )
    assert done.returncode == 0, done.stderr.decode()
    return done.stdout.decode()


def queue_rows(pg_schema: PgSchema) -> list[tuple[Any, ...]]:
    return pg_schema.query(
        "SELECT id, session_id, status, attempts FROM pending_messages ORDER BY id"
    )


def wait_processed(pg_schema: PgSchema, count: int, timeout: float = 30) -> list[tuple[Any, ...]]:
    """Wait until ``count`` rows are processed and none is pending or processing."""
    deadline = time.monotonic() + timeout
    while True:
        rows = queue_rows(pg_schema)
        if len(rows) == count and all(row[2] == "processed" for row in rows):
            return rows
        if time.monotonic() > deadline:
            raise TimeoutError(f"not processed: {[row for row in rows if row[2] != 'processed']}")
        time.sleep(0.05)


class TestOneDaemon:
    def test_hook_events_are_processed_once_searchable_and_told_at_session_start(
        self, daemons: list[Daemon], pg_schema: PgSchema
    ) -> None:
        daemon = daemons[0]
        daemon.start()
        hook(daemon, prompt("alpha", "make the retry backoff exponential"))
        hook(daemon, tool_call("alpha", "pytest tests/test_backoff.py"))
        rows = wait_processed(pg_schema, 2)
        assert [row[3] for row in rows] == [1, 1]  # each claimed once
        with daemon.client() as client:
            hits = client.get("/api/search", params={"q": "retry backoff"}).json()
        assert [hit["title"] for hit in hits["items"]][:1] == ["make the retry backoff exponential"]
        context = hook(daemon, session_start("beta"))
        assert "pytest tests/test_backoff.py" in context
        # Nothing of SQLite's in the home: the daemon's database is the server's.
        assert not list(daemon.home.glob("memq.db*"))

    def test_status_names_the_database_and_this_daemon_without_file_paths(
        self, daemons: list[Daemon], pg_schema: PgSchema
    ) -> None:
        daemon = daemons[0]
        daemon.start()
        with daemon.client() as client:
            status = client.get("/api/status").json()
        (entry,) = status["postgres"]["daemons"]
        assert (entry["host"], entry["pid"], entry["port"]) == (
            socket.gethostname(),
            daemon.process.pid if daemon.process else None,
            daemon.port,
        )
        assert 0 <= entry["heartbeat_age_seconds"] < 10
        assert pg_schema.name in status["postgres"]["database"]
        shown = daemon.memq("status")
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert f"daemon    {entry['host']} pid {entry['pid']} port {daemon.port}: " in shown.stdout
        assert f"database  {status['postgres']['database']} (" in shown.stdout
        assert "memq.db" not in shown.stdout
        assert "WAL" not in shown.stdout

    def test_events_a_hook_spooled_while_no_daemon_ran_are_taken_in_at_the_start(
        self, daemons: list[Daemon], pg_schema: PgSchema
    ) -> None:
        daemon = daemons[0]
        hook(daemon, prompt("gamma", "written while the daemon was away"))
        assert count_waiting(str(daemon.home)) == 1
        assert not list(daemon.home.glob("memq.db*"))  # the spool, never a local file
        log = [
            json.loads(line)
            for line in (daemon.home / "logs" / "hook.log").read_text().splitlines()
        ]
        assert [line["event"] for line in log] == ["hook.spooled"]
        daemon.start()
        (row,) = wait_processed(pg_schema, 1)
        assert row[1] == "claude-code:gamma"
        assert count_waiting(str(daemon.home)) == 0


class TestTwoDaemons:
    def test_events_posted_to_both_are_processed_once_each_in_session_order(
        self, daemons: list[Daemon], pg_schema: PgSchema
    ) -> None:
        for daemon in daemons:
            daemon.start()
        sessions, steps = 8, 6
        clients = [daemon.client() for daemon in daemons]
        try:
            for step in range(steps):
                for s in range(sessions):
                    # A session's events alternate between the daemons.
                    client = clients[(s + step) % 2]
                    body = prompt(f"s{s}", f"session {s} step {step}", step)
                    response = client.post("/api/events", json=body)
                    assert response.status_code == 202, response.text
            rows = wait_processed(pg_schema, sessions * steps)
            assert {row[3] for row in rows} == {1}
            status = clients[0].get("/api/status").json()
        finally:
            for client in clients:
                client.close()
        stored = pg_schema.query(
            "SELECT session_key, number, text, message_id FROM prompts ORDER BY session_key, number"
        )
        assert len(stored) == sessions * steps
        assert len({row[3] for row in stored}) == sessions * steps  # one record per message
        for s in range(sessions):
            texts = [row[2] for row in stored if row[0] == f"claude-code:s{s}"]
            assert texts == [f"session {s} step {step}" for step in range(steps)]
        # The feed's seqs follow the commits: per session, in the order the prompts were stored.
        feed = pg_schema.query(
            "SELECT f.session_key, p.number FROM feed AS f"
            " JOIN prompts AS p ON p.id = f.record_id ORDER BY f.seq"
        )
        for s in range(sessions):
            numbers = [row[1] for row in feed if row[0] == f"claude-code:s{s}"]
            assert numbers == sorted(numbers)
            assert len(numbers) == steps
        pids = {entry["pid"] for entry in status["postgres"]["daemons"]}
        assert pids == {daemon.process.pid for daemon in daemons if daemon.process}
        # The work spread: a processed row keeps the daemon whose claim was acked (the
        # claim token fences out any other), and both daemons processed sessions.
        ids = {entry["id"] for entry in status["postgres"]["daemons"]}
        processed_by = pg_schema.query(
            "SELECT DISTINCT claimed_by FROM pending_messages WHERE status = 'processed'"
        )
        assert {daemon for (daemon,) in processed_by} == ids
        shown = daemons[1].memq("status").stdout
        assert shown.count("daemon    ") == 2
        # This home's daemon stopped: its status is read from the server, the other's there.
        assert daemons[0].stop() == 0
        alone = daemons[0].memq("status")
        assert alone.returncode == 0, alone.stdout + alone.stderr
        assert alone.stdout.startswith("memq stopped")
        assert f"processed {sessions * steps}" in alone.stdout
        (line,) = [line for line in alone.stdout.splitlines() if line.startswith("daemon ")]
        assert f" port {daemons[1].port}: " in line


DAEMON: dict[str, Any] = {
    "host": "h1",
    "pid": 7,
    "port": 38000,
    "sessions": 2,
    "heartbeat_age_seconds": 0.5,
}


class TestHookFallbackWithAServer:
    """No server needed: the hook never writes a SQLite file when the home names one."""

    def test_the_setting_is_read_from_the_environment_and_the_settings_file(
        self, tmp_path: Path
    ) -> None:
        assert HookSettings({"MEMQ_DATABASE_URL": URL}).shared_database
        assert not HookSettings({}).shared_database
        assert not HookSettings({"MEMQ_DATABASE_URL": "  "}).shared_database
        (tmp_path / "settings.toml").write_text(f'database_url = "{URL}"\n')
        assert HookSettings(memq_env.environment({"MEMQ_HOME": str(tmp_path)})).shared_database
        (tmp_path / "settings.toml").write_text("database_url = { host = 'x' }\n")
        env = memq_env.environment({"MEMQ_HOME": str(tmp_path)})
        assert HookSettings(env).shared_database  # unreadable: spooling is safe either way

    def test_the_fallback_spools_and_writes_no_database_file(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        settings = HookSettings({"MEMQ_HOME": str(home), "MEMQ_DATABASE_URL": URL})
        (home).mkdir(mode=0o700)
        (home / "spawn.stamp").touch()  # keeps the hook from starting a daemon
        payload = {**prompt("delta", "kept for the daemon"), "memq_event_id": "e1"}
        body = json.dumps(payload, separators=(",", ":")).encode()
        result = fall_back(settings, route_event(payload), body, "daemon down", cwd=CWD)
        assert result.handover == Handover.SPOOL
        assert result.database_error is None  # nothing was tried: nothing failed
        (line,) = (home / "logs" / "hook.log").read_text().splitlines()
        assert json.loads(line)["shared_database"] is True
        assert count_waiting(str(home)) == 1
        assert not list(home.glob("memq.db*"))

    def test_without_a_server_the_fallback_still_writes_the_home_database(
        self, tmp_path: Path
    ) -> None:
        home = tmp_path / "home"
        settings = HookSettings({"MEMQ_HOME": str(home)})
        home.mkdir(mode=0o700)
        (home / "spawn.stamp").touch()
        payload = {**prompt("delta", "stored directly"), "memq_event_id": "e2"}
        body = json.dumps(payload, separators=(",", ":")).encode()
        result = fall_back(settings, route_event(payload), body, "daemon down", cwd=CWD)
        assert result.handover == Handover.DATABASE
        assert (home / "memq.db").exists()
        assert count_waiting(str(home)) == 0


class TestFeedOrder:
    async def test_an_append_waits_for_the_earlier_one_to_commit(self, pg_schema: PgSchema) -> None:
        """A seq is drawn at insert: without the feed lock, a reader resuming after the
        second append's seq could miss the first one's, committed later."""
        from memq.queue.postgres import PgTransaction  # noqa: PLC0415 - needs the driver
        from memq.storage.postgres import connection, schema  # noqa: PLC0415

        first = await connection.connect(pg_schema.url, pg_schema.options())
        second = await connection.connect(pg_schema.url, pg_schema.options())
        try:
            await schema.migrate(first, url=pg_schema.url)
            pg_schema.query(
                "INSERT INTO sessions (key, assistant, external_id, started_at, updated_at,"
                " created_at) VALUES ('claude-code:f', 'claude-code', 'f', 0, 0, 0)"
            )
            pg_schema.query(
                "INSERT INTO prompts (message_id, session_key, number, text, created_at)"
                " VALUES (1, 'claude-code:f', 1, 'one', 0), (2, 'claude-code:f', 2, 'two', 0)"
            )

            async def append(conn: Any, message_id: int) -> None:
                # The memory code's Transaction is SQLite's type; PgTransaction has its API.
                tx: Any = PgTransaction(conn, EpochMs(message_id))
                await append_feed(tx, message_id=message_id, session_key="claude-code:f")

            async def in_transaction(conn: Any, message_id: int) -> None:
                async with conn.transaction():
                    await append(conn, message_id)

            async with first.transaction():
                await append(first, 1)
                later = asyncio.create_task(in_transaction(second, 2))
                await asyncio.sleep(0.3)
                assert not later.done()  # no seq drawn while the first is uncommitted
            await asyncio.wait_for(later, 5)
        finally:
            await first.close()
            await second.close()
        assert pg_schema.query("SELECT at FROM feed ORDER BY seq") == [(1,), (2,)]


class TestWriterDurability:
    async def test_the_writer_commits_synchronously_whatever_the_connection_default(
        self, pg_schema: PgSchema
    ) -> None:
        from memq.queue import Transaction  # noqa: PLC0415
        from memq.queue.postgres import PgQueue  # noqa: PLC0415 - the driver

        options = f"-csynchronous_commit=off -csearch_path={pg_schema.name}"
        url = f"{pg_schema.url}?options={quote(options, safe='')}"
        queue = await PgQueue.open(url, options=pg_schema.options())
        try:
            readers = await queue.read("SHOW synchronous_commit")

            async def show(tx: Transaction) -> list[Any]:
                return await tx.fetchall("SHOW synchronous_commit")

            writers = await queue.run_in_transaction(show)
        finally:
            await queue.close()
        assert readers == [{"synchronous_commit": "off"}]  # the URL's, on the pool
        assert writers == [{"synchronous_commit": "on"}]


class TestStatementForms:
    """No server needed: the SQLite statements the memory code hands a PostgreSQL
    transaction or connection run in their PostgreSQL form."""

    def test_a_sqlite_statement_becomes_its_postgres_form(self) -> None:
        base, converted = load_queries("memory"), load_queries("memory", POSTGRES)
        for name in ("upsert_session", "insert_prompt", "count_sessions"):
            assert pg_form(base[name]) == converted[name]
        assert ":key" in base["upsert_session"]
        assert "%(key)s" in converted["upsert_session"]

    def test_other_text_runs_as_it_is(self) -> None:
        already = load_queries("feed", POSTGRES)["append_feed"]
        assert pg_form(already) == already
        assert pg_form("SHOW synchronous_commit") == "SHOW synchronous_commit"


class TestStatusLines:
    """No server needed: how ``memq status`` shows a PostgreSQL database."""

    def test_the_database_and_each_daemon_in_place_of_the_file_and_its_wal(self) -> None:
        postgres = shared_database(
            "postgresql://memq:***@db/memq",
            [{"id": 1, **DAEMON, "heartbeat_age_ms": 500}],
        )
        assert postgres["daemons"] == [{"id": 1, **DAEMON}]
        assert postgres_lines(postgres, 2048) == [
            "database  postgresql://memq:***@db/memq (2.0 KB)",
            "daemon    h1 pid 7 port 38000: 2 sessions in hand, heartbeat 0.5 s ago",
        ]

    def test_a_server_that_does_not_answer_is_a_problem(self) -> None:
        postgres = {"database": "postgresql://db/memq", "daemons": [], "problem": "refused"}
        assert postgres_lines(postgres, 0)[1] == "DATABASE  refused"
        assert status_problems({"state": "stopped", "postgres": postgres}) == ["refused"]
