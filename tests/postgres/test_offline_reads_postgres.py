"""The commands that read memory with no daemon answering, on PostgreSQL: with
``MEMQ_DATABASE_URL`` set they read the server's database (read-only), never the home's SQLite
file, and answer as the daemon did. A real daemon fills a fresh schema and is stopped; the real
CLI and ``memq mcp`` run as subprocesses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.mcp import call, mcp_client
from tests.postgres.conftest import PgSchema

SESSION = "0b7c2d1e-3f4a-4b5c-8d6e-7f8091a2b3c4"
# What each command prints is compared, daemon up and down; stats last while it is up, so
# that the reads before it (which the daemon counts, a direct read does not) are in both.
READS: list[tuple[str, ...]] = [
    ("search", "retry"),
    ("search", "--json", "pytest", "retry"),
    ("sessions",),
    ("show", "#1"),
    ("context", "--json"),
    ("context",),
    ("stats",),
    ("stats", "--json"),
]


def events(project: Path) -> list[dict[str, Any]]:
    where = {"session_id": SESSION, "cwd": str(project)}
    return [
        sample("SessionStart") | where,
        sample("UserPromptSubmit") | where | {"prompt": "make the retry logic back off"},
        sample("PostToolUse.Bash")
        | where
        | {
            "tool_use_id": "toolu_pytest_retry",
            "tool_input": {"command": "pytest tests/test_retry.py", "description": "run"},
        },
        sample("Stop") | where | {"last_assistant_message": "Retries back off now."},
    ]


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "retry-service"
    (root / ".git").mkdir(parents=True)
    return root


@pytest.fixture
def daemon(pg_schema: PgSchema, tmp_path: Path, project: Path) -> Iterator[Daemon]:
    """A daemon on the test's schema with the project's session in memory, running."""
    running = Daemon(tmp_path / "home", env={"MEMQ_DATABASE_URL": pg_schema.schema_url})
    running.start()
    try:
        with running.client() as client:
            for payload in events(project):
                assert client.post("/api/events", json=payload).status_code in (200, 202)
        running.wait_idle()
        yield running
    finally:
        running.kill()


def read(daemon: Daemon, project: Path, args: tuple[str, ...]) -> tuple[int, str, str]:
    done = daemon.memq(*args, *(["--cwd", str(project)] if args[0] == "context" else []))
    return done.returncode, done.stdout, done.stderr


def test_the_cli_reads_the_server_as_the_daemon_answers(
    daemon: Daemon, project: Path, pg_schema: PgSchema
) -> None:
    up = {args: read(daemon, project, args) for args in READS}
    for args, (code, stdout, stderr) in up.items():
        assert code == 0, (args, stdout, stderr)
        assert "directly" not in stderr
    assert "pytest tests/test_retry.py" in up[("search", "--json", "pytest", "retry")][1]
    assert "(0 results)" not in up[("search", "retry")][1]
    assert "searches" in up[("stats", "--json")][1]
    assert daemon.stop() == 0
    for args in reversed(READS):  # stats first: nothing read directly is counted
        code, stdout, stderr = read(daemon, project, args)
        assert (code, stdout) == up[args][:2], (args, stderr)
        assert f"daemon not running; reading {pg_schema.schema_url} directly" in stderr
    assert not list(daemon.home.glob("memq.db*"))  # the server's memory, never a local file


def test_a_server_that_does_not_answer_is_an_error_naming_it(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    url = f"postgresql://memq:s3cret@127.0.0.1:{port}/memq"
    stopped = Daemon(tmp_path / "home", env={"MEMQ_DATABASE_URL": url})
    for args in (("search", "retry"), ("sessions",), ("show", "#1"), ("stats",)):
        done = stopped.memq(*args)
        assert done.returncode != 0, args
        assert f"PostgreSQL at postgresql://memq:***@127.0.0.1:{port}/memq" in done.stderr
        assert "Connection refused" in done.stderr  # the reason, told at once
        assert "s3cret" not in done.stderr + done.stdout
    assert not list(stopped.home.glob("memq.db*"))


async def test_the_mcp_server_searches_the_server_with_the_daemon_down(
    daemon: Daemon, project: Path, pg_schema: PgSchema
) -> None:
    assert daemon.stop() == 0
    env = {
        "MEMQ_HOME": str(daemon.home),
        "MEMQ_PORT": str(daemon.port),
        "MEMQ_DATABASE_URL": pg_schema.schema_url,
    }
    async with mcp_client(env, cwd=project) as client:
        index = await call(client, "search", query="pytest retry")
        assert "pytest tests/test_retry.py" in index
        ref = re.findall(r"#[SP]?\d+", index)[0]
        assert "Command: pytest tests/test_retry.py" in await call(
            client, "get_observations", ids=[ref]
        )
    assert not list(daemon.home.glob("memq.db*"))


def test_a_schema_no_daemon_ever_made_is_memory_that_holds_nothing_yet(
    pg_schema: PgSchema, tmp_path: Path
) -> None:
    stopped = Daemon(tmp_path / "home", env={"MEMQ_DATABASE_URL": pg_schema.schema_url})
    done = stopped.memq("search", "retry")
    assert (done.returncode, done.stdout.splitlines()[-1]) == (0, "(0 results)"), done.stderr
    assert pg_schema.query(
        "SELECT count(*) FROM pg_tables WHERE schemaname = current_schema()"
    ) == [(0,)]  # nothing made, not even schema_version


async def test_the_direct_reads_connections_refuse_writes(pg_schema: PgSchema) -> None:
    from memq.exceptions import StorageError  # noqa: PLC0415
    from memq.memory.pg_search import PgMemoryReader  # noqa: PLC0415 - needs the driver

    reader = await PgMemoryReader.open(pg_schema.url, pg_schema.options(read_only=True))
    try:
        with pytest.raises(StorageError, match="read-only transaction"):
            async with reader.reading() as conn:
                await conn.execute_fetchall("CREATE TABLE written (n INTEGER)")
    finally:
        await reader.close()
