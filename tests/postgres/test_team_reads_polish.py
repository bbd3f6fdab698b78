"""A laptop's reads of the team's memory, end to end (issue 17): a real ``memq serve --team``
on PostgreSQL, laptops A (alice) and B (bob) as real ``memq serve`` daemons on SQLite in one
git repository, ``memq`` commands and ``memq mcp`` (the SDK's stdio client).

- B renamed (MEMQ_MACHINE_NAME): its records sent under the old name still show once, in
  local memory only; the server's context and search leave out every name B went by.
- ``author``: the server's search answers those people's hits only.
- ``memq search``'s table names a team hit ``team#N``, never a bare server id.
- The MCP ``timeline(query=...)`` anchors on the best local hit, never on a team record.
- ``memq show #N team#M`` (and ``get_observations``) with the server down: B's own record,
  and a note that the team's was not read; the team's record alone is a clear error."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memq.client.record_text import record_ref
from memq.memory.fence import FENCE_OPEN
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
from tests.postgres.test_team_reads import hook, session_start, team_context_read
from tests.postgres.test_team_server import TeamServer

WORD = "renamedlaptop"  # in A's and B's tool calls: what B searches for
ALICE_ONLY = "alicesfinding"  # in A's tool call only
BOB_OLD = f"test_{WORD}_before.py"  # B's record made under its old name
BOB_NEW = f"test_{WORD}_after.py"  # B's record made under its new name
ALICE_FILE = f"test_{WORD}_{ALICE_ONLY}.py"


def tool_call(session: str, n: int, repo: Path, test_file: str) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": str(repo),
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{session}_{n:03d}",
        "tool_input": {"command": f"pytest tests/{test_file}"},
        "tool_response": {"stdout": "3 passed", "stderr": "", "interrupted": False},
    }


def remember(daemon: Daemon, session: str, repo: Path, test_file: str) -> None:
    with daemon.client() as client:
        for body in (prompt(session, 0, repo), tool_call(session, 1, repo, test_file)):
            assert client.post("/api/events", json=body).status_code in (200, 202)


def on_server(pg_schema: PgSchema, author: str, machine: str | None = None) -> int:
    """How many observations of ``author`` (from ``machine``) the server holds."""
    query = "SELECT count(*) FROM observations WHERE author = %s"
    params: tuple[str, ...] = (author,)
    if machine is not None:
        query += " AND machine = %s"
        params += (machine,)
    return int(pg_schema.query(query, params)[0][0])


def upstream(daemon: Daemon) -> dict[str, Any]:
    """The upstream part of ``daemon``'s status."""
    with daemon.client() as client:
        found: dict[str, Any] = client.get("/api/status").json()["upstream"]
    return found


def forwarded(daemon: Daemon) -> bool:
    """Whether ``daemon``'s outbox is empty (every event acknowledged by the server)."""
    return int(upstream(daemon)["waiting"]) == 0


def memq(daemon: Daemon, repo: Path, *args: str) -> Any:
    return run_module("memq", *args, env=daemon.env, cwd=repo)


@pytest.fixture
def laptops(team: TeamServer, pg_schema: PgSchema, tmp_path: Path) -> Iterator[Any]:
    """A's record, and B's made under the name bob-old, then B renamed bob-new with a
    record made since: all forwarded to and processed on the server, and locally."""
    repo = git_repository(tmp_path / "repo")
    bob_key = team.key("bob", PROJECT)
    alice = laptop(tmp_path / "alice", team.key("alice", PROJECT), team.team_url)
    bob = laptop(tmp_path / "bob", bob_key, team.team_url)
    bob.env["MEMQ_MACHINE_NAME"] = "bob-old"
    try:
        alice.start()
        bob.start()
        remember(alice, "a1", repo, ALICE_FILE)
        remember(bob, "b1", repo, BOB_OLD)
        assert wait_for(lambda: on_server(pg_schema, "alice")), "A's record never arrived"
        assert wait_for(lambda: on_server(pg_schema, "bob", "bob-old")), "B's never arrived"
        bob.wait_idle()
        # Nothing waits to be sent: the new name holds from the restart on.
        assert wait_for(lambda: forwarded(bob)), "B's outbox never emptied"
        assert bob.stop() == 0
        bob.env["MEMQ_MACHINE_NAME"] = "bob-new"
        bob.start()
        # The forwarder takes the new name while nothing waits: before B's next event.
        assert wait_for(lambda: upstream(bob)["machine"] == "bob-new"), upstream(bob)
        remember(bob, "b2", repo, BOB_NEW)
        assert wait_for(lambda: on_server(pg_schema, "bob", "bob-new")), "renamed: never sent"
        alice.wait_idle()
        bob.wait_idle()
        yield repo, bob, bob_key
    finally:
        alice.kill()
        bob.kill()


def team_get(team: TeamServer, token: str, path: str, params: list[tuple[str, str]]) -> Any:
    answer = httpx.get(
        f"{team.team_url}/api/team/v1/{path}",
        params=[("project", PROJECT), *params],
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_server_leaves_out_every_name_given_and_keeps_the_authors_asked(
    team: TeamServer, laptops: Any
) -> None:
    _, _, bob_key = laptops
    both = [("exclude_machine", "bob-old"), ("exclude_machine", "bob-new")]
    context = team_get(team, bob_key, "context", both)["context"]
    assert ALICE_ONLY in context
    assert BOB_OLD not in context
    assert BOB_NEW not in context
    newest = team_get(team, bob_key, "context", [("exclude_machine", "bob-new")])["context"]
    assert BOB_OLD in newest  # only the name given is left out

    hits = team_get(team, bob_key, "search", [("q", WORD), *both])["items"]
    assert [hit["author"] for hit in hits] == ["alice"]
    # author: that person's hits only, however few the limit.
    for author in ("alice", "bob"):
        asked = [("q", WORD), ("author", author), ("limit", "1")]
        assert [h["author"] for h in team_get(team, bob_key, "search", asked)["items"]] == [author]
    two = [("q", WORD), ("author", "alice"), ("author", "bob")]
    assert sorted(h["author"] for h in team_get(team, bob_key, "search", two)["items"]) == [
        "alice",
        "bob",
        "bob",
    ]


async def test_a_renamed_laptop_sees_its_records_once_and_team_hits_by_reference(
    team: TeamServer, laptops: Any
) -> None:
    repo, bob, _ = laptops
    # The context: B's records from local memory only, A's from the team's block.
    team_context_read(bob)
    text, _ = hook(bob, session_start("b3", repo))
    assert text.count(BOB_OLD) == 1, text
    assert text.count(BOB_NEW) == 1, text
    assert ALICE_ONLY in text[text.rindex(FENCE_OPEN) :]

    # memq search (through the daemon): each of B's records once, A's named team#N.
    found = memq(bob, repo, "search", WORD)
    assert found.returncode == 0, found.stderr
    assert found.stdout.count(BOB_OLD) == 1, found.stdout
    assert found.stdout.count(BOB_NEW) == 1, found.stdout
    [alice_line] = [line for line in found.stdout.splitlines() if "[alice]" in line]
    assert re.match(r"^ *team#\d+ ", alice_line), alice_line  # not the server's message id
    own = [line for line in found.stdout.splitlines() if BOB_OLD in line and "Ran" in line]
    assert re.match(r"^ *\d+ ", own[0]), own  # a local hit: this database's message id
    as_json = json.loads(memq(bob, repo, "search", WORD, "--json").stdout)
    team_hit = next(item for item in as_json["items"] if item.get("team"))
    assert team_hit["ref"].startswith("team#")
    assert f"{team_hit['ref']} " in alice_line
    # --author through the daemon: the server's answer is that person's.
    alices = json.loads(memq(bob, repo, "search", WORD, "--author", "alice", "--json").stdout)
    assert [(i["author"], i.get("team")) for i in alices["items"]] == [("alice", True)]
    carols = json.loads(memq(bob, repo, "search", WORD, "--author", "carol", "--json").stdout)
    assert carols["items"] == []  # nobody's: the server was asked for carol's hits

    # The MCP server: search shows B's records once; timeline anchors on local hits only.
    env = {k: v for k, v in bob.env.items() if k.startswith("MEMQ_")}
    async with mcp_client(env, cwd=repo) as client:
        searched = await call(client, "search", query=WORD)
        assert searched.count(BOB_OLD) == 1, searched
        assert searched.count(BOB_NEW) == 1, searched
        # Only A's record (the team's) matches: no local record to anchor a timeline on.
        none = await call(client, "timeline", query=ALICE_ONLY)
        assert none.startswith("No records match"), none
        around = await call(client, "timeline", query=WORD)
        assert ALICE_ONLY not in around
        assert BOB_OLD in around or BOB_NEW in around, around


async def test_with_the_server_down_local_records_are_read_and_the_teams_noted(
    team: TeamServer, laptops: Any
) -> None:
    repo, bob, _ = laptops
    items = json.loads(memq(bob, repo, "search", WORD, "--json").stdout)["items"]
    local_ref = next(record_ref(item) for item in items if not item.get("team"))
    team_ref = next(item["ref"] for item in items if item.get("team"))
    up = memq(bob, repo, "show", local_ref, team_ref)
    assert up.returncode == 0, up.stderr
    assert ALICE_ONLY in up.stdout

    team.daemon.kill()
    down = memq(bob, repo, "show", local_ref, team_ref)
    assert down.returncode == 1, down.stderr
    assert WORD in down.stdout  # B's own record, in full
    assert ALICE_ONLY not in down.stdout
    assert f"memq: {team_ref} not read: the team server ({team.team_url})" in down.stderr
    as_json = json.loads(memq(bob, repo, "show", local_ref, team_ref, "--json").stdout)
    assert [item["ref"] for item in as_json["items"]] == [local_ref]
    assert as_json["missing"] == []
    assert as_json["unavailable"] == [team_ref]
    assert as_json["team_note"].startswith(f"the team server ({team.team_url}) gave no")

    alone = memq(bob, repo, "show", team_ref)  # only the team's: an error, saying why
    assert alone.returncode == 1
    assert "gave no team records" in alone.stderr, alone.stderr
    gone = memq(bob, repo, "show", "#999999", team_ref)  # no local one either: both said
    assert gone.returncode == 1
    assert "memory holds no record #999999" in gone.stderr, gone.stderr
    assert f"{team_ref} not read: the team server" in gone.stderr, gone.stderr

    env = {k: v for k, v in bob.env.items() if k.startswith("MEMQ_")}
    async with mcp_client(env, cwd=repo) as client:
        text = await call(client, "get_observations", ids=[local_ref, team_ref])
    assert WORD in text
    assert f"Not read (the team server ({team.team_url}) gave no team records" in text
    assert text.rstrip().endswith(team_ref)
