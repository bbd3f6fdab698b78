"""What the PostgreSQL schema computes itself: the search columns (SQLite's FTS5 index) and
the resume trigger (SQLite's 0006)."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest

from memq.storage.postgres import schema


@pytest.fixture
async def migrated(pg_conn: Any) -> Any:
    await schema.migrate(pg_conn)
    await pg_conn.execute(
        "INSERT INTO sessions (key, assistant, external_id, started_at, updated_at, created_at)"
        " VALUES ('claude-code:s1', 'claude-code', 's1', 1, 1, 1)"
    )
    return pg_conn


async def add_observation(conn: Any, message_id: int, **fields: Any) -> None:
    row = {
        "title": "t",
        "subtitle": "s",
        "narrative": "n",
        "facts": "[]",
        "concepts": "[]",
        "files_read": "[]",
        "files_modified": "[]",
        "command": None,
        "excerpt": "e",
        "tool_name": None,
        **fields,
    }
    await conn.execute(
        "INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative,"
        " facts, concepts, files_read, files_modified, command, excerpt, tool_name, created_at)"
        " VALUES (%(id)s, 'claude-code:s1', 'change', %(title)s, %(subtitle)s, %(narrative)s,"
        " %(facts)s, %(concepts)s, %(files_read)s, %(files_modified)s, %(command)s,"
        " %(excerpt)s, %(tool_name)s, 1)",
        {"id": message_id, **row},
    )


async def search(conn: Any, words: str) -> list[int]:
    """Message ids of the observations that match ``words``, best first. A quoted text is a
    phrase, a word after ``-`` must be absent. Each part passes through memq_search_text on
    its own, as memq's search must do (the function turns quotes and dashes into spaces)."""
    parts, params = [], []
    for term in words.split(" "):
        if term.startswith('"'):
            parts.append("phraseto_tsquery('english', memq_search_text(%s))")
            params.append(term.strip('"'))
        elif term.startswith("-"):
            parts.append("!! plainto_tsquery('english', memq_search_text(%s))")
            params.append(term[1:])
        else:
            parts.append("plainto_tsquery('english', memq_search_text(%s))")
            params.append(term)
    query = " && ".join(parts)
    cursor = await conn.execute(
        f"SELECT message_id FROM observations, (SELECT {query} AS q) AS words"
        " WHERE search @@ q ORDER BY ts_rank(search, q) DESC, message_id",
        params,
    )
    return [row[0] for row in await cursor.fetchall()]


@pytest.mark.parametrize(
    ("words", "found"),
    [
        ("policy", [1, 2]),  # a camelCase part (0011), a part of a file name
        ("RetryPolicy", [1]),  # the whole identifier
        ('"retry_policy.py"', [2]),  # a path as a phrase of its words
        ('"policy_retry"', []),  # ... in their order
        ("net", [2]),  # a directory of a path
        ("cafe", [3]),  # diacritics folded
        ("retrying", [1, 2]),  # word forms folded by the stemmer
        ("fix -cafe", [1]),
        ("fix cafe", [3]),
        ("nowhere", []),
    ],
)
async def test_search_finds_words_as_sqlite_does(
    migrated: Any, words: str, found: list[int]
) -> None:
    await add_observation(migrated, 1, title="Fix RetryPolicy")
    await add_observation(
        migrated, 2, files_modified=json.dumps(["src/net/retry_policy.py"]), narrative="retry"
    )
    await add_observation(migrated, 3, title="Fix café", facts=json.dumps(["fix"]))
    assert sorted(await search(migrated, words)) == found


async def test_a_title_outranks_the_output(migrated: Any) -> None:
    await add_observation(migrated, 1, excerpt="backoff")
    await add_observation(migrated, 2, title="backoff")
    await add_observation(migrated, 3, narrative="backoff")
    assert await search(migrated, "backoff") == [2, 3, 1]


async def test_an_update_reindexes_and_a_delete_unindexes(migrated: Any) -> None:
    await add_observation(migrated, 1, title="alpha")
    await migrated.execute("UPDATE observations SET title = 'beta' WHERE message_id = 1")
    assert (await search(migrated, "alpha"), await search(migrated, "beta")) == ([], [1])
    await migrated.execute("DELETE FROM observations WHERE message_id = 1")
    assert await search(migrated, "beta") == []


async def test_a_list_that_is_not_json_is_refused(migrated: Any) -> None:
    with pytest.raises(psycopg.Error):
        await add_observation(migrated, 1, facts='{"not": "a list"}')


async def enqueue(conn: Any, session: str, payload: str, created_at: int) -> None:
    await conn.execute(
        "INSERT INTO pending_messages (session_id, kind, payload, available_at, created_at)"
        " VALUES (%s, 'event', %s, 0, %s)",
        (session, payload, created_at),
    )


async def test_a_resuming_session_start_is_kept_for_the_fork_link(migrated: Any) -> None:
    resume = {"hook_event_name": "SessionStart", "source": "resume", "cwd": "/work"}
    await enqueue(migrated, "claude-code:a", json.dumps(resume), 1000)
    await enqueue(migrated, "claude-code:b", json.dumps({**resume, "source": "startup"}), 1001)
    await enqueue(migrated, "claude-code:c", "SessionStart but no JSON", 1002)  # not refused
    cursor = await migrated.execute("SELECT session_key, cwd, resumed_at FROM session_resumes")
    assert await cursor.fetchall() == [("claude-code:a", "/work", 1000)]
    # A day later, the old one is dropped as the next is kept.
    await enqueue(migrated, "claude-code:d", json.dumps(resume), 1000 + 86_400_001)
    cursor = await migrated.execute("SELECT session_key FROM session_resumes")
    assert await cursor.fetchall() == [("claude-code:d",)]


async def test_a_processing_row_names_its_claim(migrated: Any) -> None:
    await enqueue(migrated, "claude-code:a", "{}", 1)
    with pytest.raises(psycopg.errors.CheckViolation):
        await migrated.execute("UPDATE pending_messages SET status = 'processing'")
    await migrated.execute(
        "UPDATE pending_messages SET status = 'processing', claimed_by = 1,"
        " claim_token = nextval('claim_tokens')"
    )
