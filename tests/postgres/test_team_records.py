"""Team references end to end (issue 17): a real ``memq serve --team`` on PostgreSQL, laptops
A (alice) and B (bob), real ``memq serve`` daemons on SQLite in one git repository. B's team
block names A's record ``team#N``; ``memq show team#N`` on B prints A's record, marked the
team's and A's, while ``memq show #N`` still prints B's own record of that number; the MCP
tool ``get_observations`` reads both, ``timeline`` says a team record has none; the server's
``GET /api/team/v1/records`` gives a key the records of its projects only, another project's
answering as one that does not exist."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx

from memq.limits import MAX_TEAM_REFS
from tests.helpers.daemon import Daemon
from tests.helpers.mcp import call, call_error, mcp_client
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_forwarding_end_to_end import (
    PROJECT,
    git_repository,
    laptop,
    prompt,
    wait_for,
)
from tests.postgres.test_team_reads import hook, session_start, team_context_read
from tests.postgres.test_team_server import TeamServer, batch, event, statuses

OTHER = "github.com/acme/other"
ALICE_WORD = "retrybudget"  # in A's tool call only
BOB_WORD = "bobsonly"  # in B's tool calls only
RECORDS = "/api/team/v1/records"


def bash(session: str, n: int, repo: Path, word: str) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "cwd": str(repo),
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{session}_{n:03d}",
        "tool_input": {"command": f"pytest tests/test_{word}_{n}.py"},
        "tool_response": {"stdout": f"{n} passed", "stderr": "", "interrupted": False},
    }


def post_all(daemon: Daemon, bodies: list[dict[str, Any]]) -> None:
    with daemon.client() as client:
        for body in bodies:
            assert client.post("/api/events", json=body).status_code in (200, 202)


def records(team: TeamServer, token: str, *refs: str) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(
        team.team_url + RECORDS, params=[("ref", ref) for ref in refs], headers=headers, timeout=10
    )


def test_team_references_read_the_teams_record_and_never_a_local_one(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice_key, bob_key = team.key("alice", PROJECT), team.key("bob", PROJECT)
    carol_key = team.key("carol", OTHER)
    alice = laptop(tmp_path / "alice", alice_key, team.team_url)
    bob = laptop(tmp_path / "bob", bob_key, team.team_url)
    try:
        alice.start()
        bob.start()
        # A's tool call, forwarded and processed on the server: its record there is #N.
        post_all(alice, [prompt("a1", 0, repo), bash("a1", 1, repo, ALICE_WORD)])
        query = "SELECT id FROM observations WHERE author = 'alice' ORDER BY id"
        rows = wait_for(lambda: pg_schema.query(query))
        assert rows, "A's record never reached the team server"
        n = int(rows[0][0])
        # A record of another project (carol's key may use OTHER only).
        answer = team.post(carol_key, batch(event(1, "claude-code:q1", project=OTHER)))
        assert statuses(answer) == [(1, "accepted")]
        prompt_rows = wait_for(
            lambda: pg_schema.query(
                "SELECT p.id FROM prompts p JOIN sessions s ON s.key = p.session_key "
                f"WHERE s.project = '{OTHER}'"
            )
        )
        assert prompt_rows, "carol's prompt was never stored"
        other_ref = f"#P{prompt_rows[0][0]}"

        # B's own records: as many as it takes for B to hold a local #N too.
        post_all(bob, [bash("b1", i, repo, BOB_WORD) for i in range(1, n + 1)])
        bob.wait_idle()

        # The server: a key reads its projects' records by reference, and nothing else.
        found = records(team, bob_key, f"#{n}")
        assert found.status_code == 200, found.text
        (item,) = found.json()["items"]
        assert (item["ref"], item["author"], item["project"]) == (f"#{n}", "alice", PROJECT)
        assert ALICE_WORD in item["title"]
        for token, ref in ((bob_key, other_ref), (carol_key, f"#{n}")):
            hidden = records(team, token, ref)
            assert hidden.status_code == 404, hidden.text
            # Answered as a record that does not exist (#99999): nothing says it does.
            absent = records(team, token, "#99999")
            assert absent.status_code == 404
            assert hidden.json()["error"] == absent.json()["error"].replace("#99999", ref)
        mixed = records(team, bob_key, f"#{n}", other_ref).json()
        assert [i["ref"] for i in mixed["items"]] == [f"#{n}"]
        assert mixed["missing"] == [other_ref]
        assert records(team, "", f"#{n}").status_code == 401
        assert records(team, bob_key, "team#3").status_code == 422
        many = [f"#{i}" for i in range(1, MAX_TEAM_REFS + 2)]
        too_many = records(team, bob_key, *many)
        assert too_many.status_code == 422
        assert f"at most {MAX_TEAM_REFS}" in too_many.json()["error"]

        # B's team block names A's record by its team reference.
        hook(bob, session_start("b2", repo))
        team_context_read(bob)
        context, _ = hook(bob, session_start("b3", repo))
        assert f"team#{n} [alice]" in context, context
        assert "memq show team#ID" in context
        team_block = context[context.index("team#") :]
        assert not re.search(r"(?<![\w#])(?<!team)#[SP]?\d+ ", team_block), team_block

        # memq show: team#N is A's record, marked; #N is still B's own.
        shown = bob.memq("show", f"team#{n}")
        assert shown.returncode == 0, shown.stderr
        assert shown.stdout.startswith(f"team#{n}  observation")
        assert "team memory  by alice" in shown.stdout
        assert ALICE_WORD in shown.stdout
        assert BOB_WORD not in shown.stdout
        local = bob.memq("show", f"#{n}")
        assert local.returncode == 0, local.stderr
        assert BOB_WORD in local.stdout
        assert "team memory" not in local.stdout
        assert ALICE_WORD not in local.stdout
        as_json = json.loads(bob.memq("show", f"TEAM #{n}", "--json").stdout)
        assert [(i["ref"], i["team"], i["author"]) for i in as_json["items"]] == [
            (f"team#{n}", True, "alice")
        ]
        hidden_show = bob.memq("show", f"team{other_ref}")
        assert hidden_show.returncode != 0
        assert f"no record team{other_ref}" in hidden_show.stderr
        assert "your team key may not read" in hidden_show.stderr
        junk = bob.memq("show", "team#x1")
        assert junk.returncode != 0
        assert "not a team record reference: 'team#x1'" in junk.stderr
    finally:
        alice.kill()
        bob.kill()


async def test_the_mcp_tools_answer_a_team_reference(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice_key = team.key("alice", PROJECT)
    alice = laptop(tmp_path / "alice", alice_key, team.team_url)
    bob = laptop(tmp_path / "bob", team.key("bob", PROJECT), team.team_url)
    try:
        alice.start()
        bob.start()
        post_all(alice, [prompt("a1", 0, repo), bash("a1", 1, repo, ALICE_WORD)])
        query = "SELECT id FROM observations WHERE author = 'alice' ORDER BY id"
        rows = wait_for(lambda: pg_schema.query(query))
        assert rows, "A's record never reached the team server"
        n = int(rows[0][0])
        post_all(bob, [bash("b1", i, repo, BOB_WORD) for i in range(1, n + 1)])
        bob.wait_idle()
        env = {"MEMQ_HOME": str(bob.home), "MEMQ_PORT": str(bob.port)}
        async with mcp_client(env, cwd=repo) as client:
            text = await call(client, "get_observations", ids=[f"team#{n}", f"#{n}"])
            team_part, local_part = text.split("\n\n", 1)
            assert team_part.startswith(f"team#{n}  observation")
            assert "team memory  by alice" in team_part
            assert ALICE_WORD in team_part
            assert local_part.startswith(f"#{n}  observation")
            assert BOB_WORD in local_part
            missing = await call(client, "get_observations", ids=f"team #{n}, team#99999")
            assert "Not found (deleted, or never there): team#99999" in missing
            error = await call_error(client, "timeline", anchor=f"team#{n}")
            assert "not available for team records" in error
            assert f'get_observations(ids=["team#{n}"])' in error

        # The team server down: a clear error, and never the local record of that number.
        team.daemon.kill()
        async with mcp_client(env, cwd=repo) as client:
            down = await call_error(client, "get_observations", ids=[f"team#{n}"])
            assert "gave no team records" in down
            assert BOB_WORD not in down
        shown = bob.memq("show", f"team#{n}")
        assert shown.returncode != 0
        assert "gave no team records" in shown.stderr
    finally:
        alice.kill()
        bob.kill()
