"""Every search on a laptop merges the team's hits (issue 17), whoever answers it: the MCP
``search`` tool and ``memq search``, through laptop B's daemon and with it stopped (the
database read directly). End to end: a real ``memq serve --team`` on PostgreSQL and laptops
A (alice) and B (bob), real ``memq serve`` daemons on SQLite, in one git repository; the
MCP server is ``memq mcp`` spoken to by the SDK's own stdio client.

A's record reaches B as ``team#N [alice]`` (the server's id never passes for a local one);
B's own record shows once (the server leaves out B's machine); ``author`` keeps one
person's records; with the server down or silent, local hits answer with a note saying the
team was not searched."""

from __future__ import annotations

import json
import re
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import Daemon
from tests.helpers.mcp import call, mcp_client
from tests.helpers.processes import run_module
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_forwarding_end_to_end import (
    PROJECT,
    git_repository,
    laptop,
    prompt,
    wait_for,
)
from tests.postgres.test_team_reads import WORD, a_tool_call
from tests.postgres.test_team_server import TeamServer

# WORD is in A's tool call and in B's own: what B searches for.
ALICE_TITLE = f"Ran `pytest tests/test_{WORD}.py`"
BOB_FILE = f"test_{WORD}_bob.py"
TEAM_LINE = re.compile(r"^team#\d+ \[alice\]  .*" + re.escape(ALICE_TITLE), re.MULTILINE)
NOT_SEARCHED = "team memory not searched"


def tool_call(session: str, repo: Path, test_file: str) -> dict[str, Any]:
    """test_team_reads's tool call, running ``test_file``."""
    return a_tool_call(session, repo) | {"tool_input": {"command": f"pytest tests/{test_file}"}}


def mcp_env(daemon: Daemon, **changed: str) -> dict[str, str]:
    """What ``memq mcp`` on ``daemon``'s laptop is started with: its MEMQ_* settings."""
    return {k: v for k, v in daemon.env.items() if k.startswith("MEMQ_")} | changed


def remember(daemon: Daemon, session: str, repo: Path, test_file: str) -> None:
    with daemon.client() as client:
        for body in (prompt(session, 0, repo), tool_call(session, repo, test_file)):
            assert client.post("/api/events", json=body).status_code in (200, 202)


def authored(pg_schema: PgSchema, author: str) -> int:
    """How many observations of ``author`` the server holds."""
    rows = pg_schema.query("SELECT count(*) FROM observations WHERE author = %s", (author,))
    return int(rows[0][0])


@pytest.fixture
def laptops(team: TeamServer, pg_schema: PgSchema, tmp_path: Path) -> Iterator[Any]:
    """The repository and laptops A and B, each with a session that ran a test named
    WORD, forwarded to and processed on the server, and processed locally."""
    repo = git_repository(tmp_path / "repo")
    alice = laptop(tmp_path / "alice", team.key("alice", PROJECT), team.team_url)
    bob = laptop(tmp_path / "bob", team.key("bob", PROJECT), team.team_url)
    try:
        alice.start()
        bob.start()
        remember(alice, "a1", repo, f"test_{WORD}.py")
        remember(bob, "b1", repo, BOB_FILE)
        assert wait_for(lambda: authored(pg_schema, "alice")), "A's record never arrived"
        assert wait_for(lambda: authored(pg_schema, "bob")), "B's record never arrived"
        alice.wait_idle()
        bob.wait_idle()
        yield repo, alice, bob
    finally:
        alice.kill()
        bob.kill()


async def mcp_search(env: dict[str, str], repo: Path, **arguments: Any) -> str:
    async with mcp_client(env, cwd=repo) as client:
        return await call(client, "search", **arguments)


def assert_merged(text: str) -> None:
    """A's record as the team's, labelled; B's own once, local and unlabelled."""
    assert TEAM_LINE.search(text), text
    own = [line for line in text.splitlines() if BOB_FILE in line]
    assert len(own) == 1, text  # the server left out B's machine's records
    assert re.match(r"#\d+  ", own[0]), own[0]
    assert "[bob]" not in text


async def test_mcp_search_through_the_daemon_names_team_records(laptops: Any) -> None:
    repo, _, bob = laptops
    env = mcp_env(bob)
    assert_merged(await mcp_search(env, repo, query=WORD))
    everywhere = await mcp_search(env, repo, query=WORD, project="*")
    assert TEAM_LINE.search(everywhere), everywhere  # the model's repository's, still

    # author: the team's hits of that person; B's own records name nobody.
    alices = await mcp_search(env, repo, query=WORD, author="alice")
    assert TEAM_LINE.search(alices), alices
    assert BOB_FILE not in alices
    assert "alice's records" in alices
    nobody = await mcp_search(env, repo, query=WORD, author="carol")
    assert nobody.startswith("No records match"), nobody

    # The CLI through the daemon honours --author with the team's hits too.
    found = run_module("memq", "search", WORD, "--author", "alice", "--json", env=bob.env, cwd=repo)
    assert found.returncode == 0, found.stderr
    items = json.loads(found.stdout)["items"]
    assert [(i["author"], i["team"], i["ref"][:5]) for i in items] == [("alice", True, "team#")]


async def test_searches_without_the_daemon_merge_the_team_and_survive_its_loss(
    team: TeamServer, laptops: Any
) -> None:
    repo, _, bob = laptops
    assert bob.stop() == 0

    # memq search reads the file and asks the team itself.
    found = run_module("memq", "search", WORD, env=bob.env, cwd=repo)
    assert found.returncode == 0, found.stderr
    assert f"[alice] {ALICE_TITLE}" in found.stdout, found.stdout
    assert found.stdout.count(BOB_FILE) == 1, found.stdout
    assert NOT_SEARCHED not in found.stderr
    as_json = run_module("memq", "search", WORD, "--json", env=bob.env, cwd=repo)
    items = json.loads(as_json.stdout)["items"]
    team_items = [i for i in items if i.get("team")]
    assert [(i["author"], i["ref"][:5]) for i in team_items] == [("alice", "team#")]
    alices = run_module("memq", "search", WORD, "--author", "alice", env=bob.env, cwd=repo)
    assert f"[alice] {ALICE_TITLE}" in alices.stdout, alices.stdout
    assert BOB_FILE not in alices.stdout
    # A filter the team's hits cannot honour leaves the team out.
    typed = run_module("memq", "search", WORD, "--type", "observation", env=bob.env, cwd=repo)
    assert typed.returncode == 0, typed.stderr
    assert "[alice]" not in typed.stdout
    assert BOB_FILE in typed.stdout

    # The MCP server reads the file and asks the team itself.
    env = mcp_env(bob)
    assert_merged(await mcp_search(env, repo, query=WORD))
    alices_mcp = await mcp_search(env, repo, query=WORD, author="alice")
    assert TEAM_LINE.search(alices_mcp), alices_mcp
    assert BOB_FILE not in alices_mcp

    # A server that accepts and never answers: local hits after the search's timeout.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        waited = run_module("memq", "search", WORD, env=bob.env | {"MEMQ_UPSTREAM": url}, cwd=repo)
        seconds = time.monotonic() - started
    assert waited.returncode == 0, waited.stderr
    assert NOT_SEARCHED in waited.stderr
    assert BOB_FILE in waited.stdout
    assert 1.5 <= seconds < 15, seconds  # a 2 s timeout, not 2 ms, and not forever

    # The server down: local hits, and the note.
    team.daemon.kill()
    alone = run_module("memq", "search", WORD, env=bob.env, cwd=repo)
    assert alone.returncode == 0, alone.stderr
    assert NOT_SEARCHED in alone.stderr
    assert BOB_FILE in alone.stdout
    assert "[alice]" not in alone.stdout
    local = await mcp_search(env, repo, query=WORD)
    assert NOT_SEARCHED in local, local
    assert BOB_FILE in local
    assert "team#" not in local
