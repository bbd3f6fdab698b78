"""A person's ``<private>`` text and secrets never leave the laptop (issue 17), end to end: a
real ``memq serve --team`` on PostgreSQL and a laptop daemon (``MEMQ_UPSTREAM``) in a git
repository. Events holding a ``<private>`` part and secrets that built-in redaction rules
know (an AWS access key id, a GitHub token) arrive every way an event can: through the real
``memq hook`` with the daemon up, through the daemon's API (memq's payload, a JSON-escaped
one, an assistant's native one), and through the hook's direct write while no daemon runs
(then the daemon started). The server is down meanwhile, so every event waits in the
laptop's outbox, which is searched; then the server comes back, takes and processes them
all, and every text column of every table of its schema is searched: none of the private
text or secrets is anywhere; the words around them are (the search finds what is there)."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from tests.faults.kit import keep_hooks_from_spawning
from tests.helpers.daemon import Daemon
from tests.postgres.conftest import PgSchema
from tests.postgres.test_team_forwarding_end_to_end import (
    PROJECT,
    git_repository,
    laptop,
    wait_for,
)
from tests.postgres.test_team_reads import hook
from tests.postgres.test_team_server import TeamServer

AWS_KEY = "AKIAQ7XEXAMPLEZ2ZAB3"  # the shape of an AWS access key id (aws-access-key-id)
GITHUB_TOKEN = "ghp_" + "Zq7rT2mB9xK4wL8vN3pH6sD1fG5jC0aE2yU7"  # github-token
# Each way in marks its private text and its visible words with its own name.
WAYS = ("hook", "api", "escaped", "native", "direct")


def private(way: str) -> str:
    return f"PRIVATE{way.upper()}SECRETPLAN"


def visible(way: str) -> str:
    return f"visible{way}word"


def needles() -> list[str]:
    """What must be nowhere upstream."""
    return [AWS_KEY, GITHUB_TOKEN, *(private(way) for way in WAYS)]


def a_prompt(way: str, repo: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": f"s-{way}",
        "cwd": str(repo),
        "prompt": (
            f"Deploy {visible(way)} with <private>the plan {private(way)} and"
            f" {AWS_KEY}</private> then export AWS_ACCESS_KEY_ID={AWS_KEY}"
            f" and GH_TOKEN={GITHUB_TOKEN}"
        ),
        "prompt_id": f"{way}-1",
    }


def a_bare_prompt(way: str, repo: Path) -> dict[str, Any]:
    """The secrets alone: no word beside them that a rule is triggered by."""
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": f"s-{way}",
        "cwd": str(repo),
        "prompt": f"Deploy {visible(way)} with {AWS_KEY} or {GITHUB_TOKEN}",
        "prompt_id": f"{way}-2",
    }


def a_tool_call(way: str, repo: Path) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": f"s-{way}",
        "cwd": str(repo),
        "tool_name": "Bash",
        "tool_use_id": f"toolu_{way}_001",
        "tool_input": {
            "command": f"git push https://x:{GITHUB_TOKEN}@github.com/acme/app {visible(way)}",
            "description": f"push <private>{private(way)}</private>",
        },
        "tool_response": {
            "stdout": f"key {AWS_KEY} <private>{private(way)}</private> done",
            # Structured output whose keys are a person's text: private there too.
            "env": {f"<private>{private(way)}</private>HOME": "/home/dev"},
            "stderr": "",
            "interrupted": False,
        },
    }


def escaped(body: dict[str, Any]) -> bytes:
    """``body`` as JSON with every letter of the secrets and tags written as ``\\uXXXX``:
    valid JSON, the same payload, none of the literal texts a screen of the bytes looks
    for."""
    text = json.dumps(body)
    for word in (AWS_KEY, GITHUB_TOKEN, "<private>", "</private>"):
        text = text.replace(word, "".join(f"\\u{ord(c):04x}" for c in word))
    assert AWS_KEY not in text
    assert "<private>" not in text
    return text.encode()


def readable(value: Any) -> str:
    """``value`` as text, JSON's escapes (``\\u0041``) decoded: a secret written escaped
    is still found."""
    text = value.decode(errors="replace") if isinstance(value, bytes) else str(value)
    if "\\" not in text:
        return text
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return text + "\n" + json.dumps(decoded, ensure_ascii=False)


def hits_in(
    table: str, names: list[str], rows: list[tuple[Any, ...]], words: list[str]
) -> list[str]:
    """``table.column: word`` for each word in a column of ``rows``."""
    found: set[str] = set()
    for row in rows:
        for name, value in zip(names, row, strict=True):
            if value is None:
                continue
            text = readable(value)
            found.update(f"{table}.{name}: {word}" for word in words if word in text)
    return sorted(found)


def sqlite_hits(database: Path, words: list[str], tables: list[str] | None = None) -> list[str]:
    """``table.column: word`` for each word found in a column of the SQLite file."""
    conn = sqlite3.connect(database)
    try:
        names = tables or [
            row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
        ]
        found: list[str] = []
        for table in names:
            cursor = conn.execute(f'SELECT * FROM "{table}"')
            columns = [d[0] for d in cursor.description]
            found += hits_in(table, columns, cursor.fetchall(), words)
    finally:
        conn.close()
    return found


def postgres_hits(schema: PgSchema, words: list[str]) -> list[str]:
    """``table.column: word`` for each word found in any column of any table of the
    schema (every column read as text: JSON payloads, arrays and all)."""
    columns = schema.query(
        "SELECT c.table_name, c.column_name FROM information_schema.columns c"
        " JOIN information_schema.tables t"
        " ON t.table_schema = c.table_schema AND t.table_name = c.table_name"
        " WHERE c.table_schema = %s AND t.table_type = 'BASE TABLE'"
        " ORDER BY c.table_name, c.ordinal_position",
        (schema.name,),
    )
    tables: dict[str, list[str]] = {}
    for table, column in columns:
        tables.setdefault(table, []).append(column)
    assert len(tables) > 10, tables  # the whole schema, not an empty one
    found: list[str] = []
    for table, names in tables.items():
        listed = ", ".join(f'"{name}"::text' for name in names)
        rows = schema.query(f'SELECT {listed} FROM "{schema.name}"."{table}"')
        found += hits_in(table, names, rows, words)
    return found


def outbox_rows(daemon: Daemon) -> int:
    conn = sqlite3.connect(daemon.home / "memq.db")
    try:
        ((count,),) = conn.execute("SELECT count(*) FROM upstream_outbox").fetchall()
    finally:
        conn.close()
    return int(count)


def test_no_private_part_leaves_the_laptop(
    team: TeamServer, pg_schema: PgSchema, tmp_path: Path
) -> None:
    repo = git_repository(tmp_path / "repo")
    alice = laptop(tmp_path / "alice", team.key("alice", PROJECT), team.team_url)
    team.daemon.kill()  # every event waits in the outbox, where it is searched
    try:
        alice.start()
        # The real hook, the daemon up.
        for body in (a_prompt("hook", repo), a_tool_call("hook", repo)):
            hook(alice, body)
        with alice.client() as client:
            # The daemon's API: memq's payload (no hook's redaction mark), the same
            # JSON-escaped, and an assistant's own payload mapped by its adapter.
            for body in (a_prompt("api", repo), a_tool_call("api", repo)):
                assert client.post("/api/events", json=body).status_code in (200, 202)
            escaped_bodies = (
                a_prompt("escaped", repo),
                a_tool_call("escaped", repo),
                a_bare_prompt("escaped", repo),
            )
            for body in escaped_bodies:
                answer = client.post(
                    "/api/events",
                    content=escaped(body),
                    headers={"Content-Type": "application/json"},
                )
                assert answer.status_code in (200, 202), answer.text
            for body in (a_prompt("native", repo), a_tool_call("native", repo)):
                answer = client.post("/api/events", params={"assistant": "claude-code"}, json=body)
                assert answer.status_code in (200, 202), answer.text
        assert alice.stop() == 0
        # The hook's direct write: no daemon runs (and the hook starts none).
        keep_hooks_from_spawning(alice.home)
        before = outbox_rows(alice)
        for body in (a_prompt("direct", repo), a_tool_call("direct", repo)):
            hook(alice, body)
        assert outbox_rows(alice) == before + 2, "the hook did not write directly"
        alice.start()

        # Everything waits in the outbox: searched there (and in the whole local file).
        outbox = sqlite_hits(alice.home / "memq.db", needles(), ["upstream_outbox"])
        assert outbox == [], outbox
        database = alice.home / "memq.db"
        shown = sqlite_hits(database, [visible(w) for w in WAYS], ["upstream_outbox"])
        assert len(shown) == len(WAYS), shown  # the search finds what is there
        assert sqlite_hits(database, needles()) == []

        # The server back: it takes every event and processes it.
        team.start()
        local = len(WAYS) * 2 + 1
        assert wait_for(lambda: outbox_rows(alice) == 0, timeout=90), "not forwarded"
        assert wait_for(
            lambda: (
                pg_schema.query("SELECT count(*) FROM pending_messages WHERE status = 'processed'")[
                    0
                ][0]
                >= local
            ),
            timeout=60,
        ), pg_schema.query("SELECT status, count(*) FROM pending_messages GROUP BY status")
        assert pg_schema.query("SELECT count(*) FROM observations")[0][0] >= len(WAYS)

        assert postgres_hits(pg_schema, needles()) == []
        found = postgres_hits(pg_schema, [visible(way) for way in WAYS])
        assert {hit.rsplit(": ", 1)[1] for hit in found} == {visible(w) for w in WAYS}, found
    finally:
        alice.kill()
