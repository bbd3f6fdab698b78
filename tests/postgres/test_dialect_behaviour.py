"""The PostgreSQL forms of memq's named queries give what the SQLite forms give.

Where the two dialects differ in meaning, not only in spelling (JSON lists, NULL tests,
0/1 flags, SQLite's two-argument min/max, LIMIT -1, dates, identity columns against
AUTOINCREMENT, sums that PostgreSQL widens to numeric), each statement runs in both forms
on the same small data (a migrated SQLite file, a migrated PostgreSQL schema) and the
answers are compared: the same rows, the same values, the same Python types. One thing is
let go: a PostgreSQL boolean compares as the 0/1 SQLite gives, as memq reads those columns
as truth values (``bool(row["found"])``).
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from memq.storage import connection as sqlite_connection
from memq.storage import schema as sqlite_schema
from memq.storage.sqlfile import POSTGRES, SQLITE, load_queries, to_pyformat
from tests.postgres.conftest import PgSchema

DAY_MS = 86_400_000
T0 = 1_700_000_000_000  # 2023-11-14 22:13:20 UTC
MAX_INTEGER = 2**63 - 1

Rows = list[dict[str, Any]]


def normal(rows: Sequence[Any]) -> Rows:
    """Rows (sqlite3.Row, or psycopg's dicts) as plain dicts, a boolean as the 0/1 SQLite
    gives for it."""
    return [
        {key: int(row[key]) if isinstance(row[key], bool) else row[key] for key in row.keys()}  # noqa: SIM118 - sqlite3.Row
        for row in rows
    ]


def typed(rows: Rows) -> list[dict[str, tuple[str, Any]]]:
    """Each value with its type's name: a Decimal where SQLite gives an int is a difference."""
    return [{key: (type(value).__name__, value) for key, value in row.items()} for row in rows]


@dataclass
class Both:
    """A migrated SQLite file and a migrated PostgreSQL schema, written and read alike."""

    lite: sqlite3.Connection
    pg: Any  # psycopg.Connection with dict rows, autocommit

    def seed(self, statement: str, *rows: Mapping[str, Any]) -> None:
        """Run a statement both dialects read alike (``:name`` parameters), once per row."""
        for params in rows:
            self.lite.execute(statement, params)
            self.pg.execute(to_pyformat(statement).encode(), params)

    def select(self, statement: str, params: Mapping[str, Any] | None = None) -> Rows:
        """A plain read of both databases, which must agree; its rows."""
        params = params or {}
        lite = normal(self.lite.execute(statement, params).fetchall())
        pg = normal(self.pg.execute(to_pyformat(statement).encode(), params).fetchall())
        assert typed(pg) == typed(lite)
        return lite

    def run(
        self,
        component: str,
        name: str,
        params: Any,
        *,
        pg_params: Any = None,
    ) -> tuple[Rows, Rows]:
        """The named query in each dialect; the rows each returned."""
        cursor = self.lite.execute(load_queries(component, SQLITE)[name], params)
        lite = normal(cursor.fetchall()) if cursor.description else []
        statement = load_queries(component, POSTGRES)[name]
        pg_cursor = self.pg.execute(statement.encode(), params if pg_params is None else pg_params)
        pg = normal(pg_cursor.fetchall()) if pg_cursor.description else []
        return lite, pg

    def same(
        self,
        component: str,
        name: str,
        params: Any,
        *,
        ordered: bool = True,
        by_position: bool = False,
    ) -> Rows:
        """The named query in each dialect, which must return the same rows; SQLite's.
        ``by_position``: its columns' names differ (count(*) is count on PostgreSQL) and
        memq reads them by position."""
        lite, pg = self.run(component, name, params)
        if by_position:
            lite = [{str(i): v for i, v in enumerate(row.values())} for row in lite]
            pg = [{str(i): v for i, v in enumerate(row.values())} for row in pg]
        if not ordered:
            lite, pg = sorted(lite, key=repr), sorted(pg, key=repr)
        assert typed(pg) == typed(lite), f"{component}.{name} {params}"
        return lite


@pytest.fixture
def both(tmp_path: Path, pg_schema: PgSchema) -> Iterator[Both]:
    import psycopg  # noqa: PLC0415
    from psycopg.rows import dict_row  # noqa: PLC0415

    from memq.storage.postgres import connection, schema  # noqa: PLC0415

    async def migrate() -> None:
        conn = await connection.connect(pg_schema.url, pg_schema.options())
        try:
            await schema.migrate(conn)
        finally:
            await conn.close()

    asyncio.run(migrate())
    lite = sqlite_connection.connect(tmp_path / "memq.db")
    sqlite_schema.migrate(lite)
    lite.row_factory = sqlite3.Row
    with psycopg.connect(pg_schema.url, autocommit=True, row_factory=dict_row) as pg:
        pg.execute(f'SET search_path TO "{pg_schema.name}"'.encode())
        try:
            yield Both(lite, pg)
        finally:
            lite.close()


# Seeds: statements both dialects run alike. Ids of identity columns are left to the
# databases (both count from 1), so that the sequences stay in step.

SESSION = """
INSERT INTO sessions (key, assistant, external_id, project, cwd, title, prompt_count,
                      started_at, ended_at, updated_at, created_at, parent_key, forked_at,
                      title_edited)
VALUES (:key, :assistant, :external_id, :project, :cwd, :title, :prompt_count, :started_at,
        :ended_at, :updated_at, :created_at, :parent_key, :forked_at, :title_edited)
"""
PROMPT = """
INSERT INTO prompts (message_id, session_key, number, text, created_at, inherited, origin_id)
VALUES (:message_id, :session_key, :number, :text, :created_at, :inherited, :origin_id)
"""
OBSERVATION = """
INSERT INTO observations (message_id, session_key, kind, title, subtitle, narrative, facts,
                          concepts, files_read, files_modified, tool_name, command, exit_code,
                          excerpt, created_at, inherited, origin_id)
VALUES (:message_id, :session_key, :kind, :title, '', '', '[]', '[]', '[]', :files_modified,
        NULL, NULL, NULL, '', :created_at, :inherited, :origin_id)
"""
SUMMARY = """
INSERT INTO summaries (message_id, session_key, request, investigated, learned, completed,
                       next_steps, files_read, files_edited, notes, created_at, inherited,
                       origin_id)
VALUES (:message_id, :session_key, :request, '', '', '', '', '[]', '[]', '', :created_at,
        :inherited, :origin_id)
"""
MESSAGE = """
INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, status, attempts,
                              available_at, created_at)
VALUES (:session_id, :kind, '{}', :dedupe_key, :status, 0, :created_at, :created_at)
"""
SESSION_ROW = "SELECT * FROM sessions ORDER BY key"
# Issue 17: the records with these message ids made by :author on a laptop.
AUTHORED = "UPDATE {table} SET author = :author, machine = 'laptop' WHERE message_id IN ({ids})"
# pending_messages' columns on both (PostgreSQL adds claim_token and claimed_by).
QUEUE_COLUMNS = (
    "id, session_id, kind, payload, dedupe_key, status, attempts, available_at, lease_until, "
    "created_at, started_at, finished_at, last_error"
)


def session(key: str, **fields: Any) -> dict[str, Any]:
    assistant, external_id = key.split(":", 1)
    row: dict[str, Any] = {
        "key": key,
        "assistant": assistant,
        "external_id": external_id,
        "project": "/p",
        "cwd": "/p",
        "title": f"title of {key}",
        "prompt_count": 0,
        "started_at": T0,
        "ended_at": None,
        "updated_at": T0,
        "created_at": T0,
        "parent_key": None,
        "forked_at": None,
        "title_edited": 0,
    }
    return {**row, **fields}


def record(message_id: int, session_key: str, at: int, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "message_id": message_id,
        "session_key": session_key,
        "created_at": at,
        "inherited": 0,
        "origin_id": None,
        "kind": "change",
        "title": f"observation {message_id}",
        "files_modified": "[]",
        "request": f"request {message_id}",
        "number": message_id,
        "text": f"prompt {message_id}",
    }
    return {**row, **fields}


def only(rows: Rows, *names: str) -> Rows:
    return [{name: row[name] for name in names} for row in rows]


def test_context_reads_the_same_sessions_and_records(both: Both) -> None:
    both.seed(
        SESSION,
        session("claude:a", updated_at=T0 + 300),
        session("codex:b", updated_at=T0 + 200),
        session("claude:c", updated_at=T0 + 200),
        session("claude:d", updated_at=T0 + 100, project="/other"),
        session("claude:e", updated_at=T0 + 50),  # only inherited records
    )
    both.seed(
        OBSERVATION,
        record(1, "claude:a", T0 + 10),
        record(2, "codex:b", T0 + 20),
        record(3, "claude:c", T0 + 30),
        record(4, "claude:a", T0 + 40),
        record(5, "claude:d", T0 + 50),
        record(6, "claude:e", T0 + 60, inherited=1, origin_id=1),
    )
    both.seed(SUMMARY, record(7, "codex:b", T0 + 70), record(8, "claude:c", T0 + 80))
    # Issue 17: records of people (migration 0018), the rest this machine's user's.
    both.seed(AUTHORED.format(table="observations", ids="1, 3, 6"), {"author": "alice"})
    both.seed(AUTHORED.format(table="summaries", ids="7"), {"author": "bob"})
    page = {"project": "/p", "before_updated_at": MAX_INTEGER, "before_key": "", "limit": 10}
    for exclude in (None, "claude:a"):
        for assistants in (None, '["claude"]', '["codex", "claude"]', "[]"):
            for authors in (None, '["alice"]', '["bob", "alice"]', "[]"):
                scope = {
                    **page,
                    "exclude_session": exclude,
                    "assistants": assistants,
                    "authors": authors,
                }
                for kind in ("observations", "summaries"):
                    both.same("context", f"sessions_with_{kind}", scope)
    first = both.same(
        "context",
        "sessions_with_observations",
        {**page, "limit": 2, "exclude_session": None, "assistants": None, "authors": None},
    )
    assert [row["key"] for row in first] == ["claude:a", "codex:b"]
    rest = both.same(
        "context",
        "sessions_with_observations",
        {
            **page,
            "exclude_session": None,
            "assistants": None,
            "authors": None,
            "before_updated_at": first[-1]["updated_at"],
            "before_key": first[-1]["key"],
        },
    )
    assert [row["key"] for row in rest] == ["claude:c"]
    keys = json.dumps(["claude:a", "codex:b", "claude:c", "claude:e"])
    for after in ((-1, -1), (T0 + 20, 2)):
        for limit in (1, 2, 10):
            for authors in (None, '["alice"]', '["bob"]'):
                # A person's records from one machine left out (a team server's context
                # for a laptop); records of no author are never left out.
                for origin in (
                    (None, None),
                    ("alice", '["laptop"]'),
                    ("bob", '["laptop"]'),
                    ("alice", '["x"]'),
                    ("alice", '["x", "laptop"]'),
                ):
                    params = {
                        "session_keys": keys,
                        "after_created_at": after[0],
                        "after_message_id": after[1],
                        "limit": limit,
                        "authors": authors,
                        "exclude_author": origin[0],
                        "exclude_machines": origin[1],
                    }
                    both.same("context", "newest_observations", params)
                    both.same("context", "newest_summaries", params)
    newest = both.same(
        "context",
        "newest_observations",
        {
            "session_keys": keys,
            "after_created_at": -1,
            "after_message_id": -1,
            "limit": 3,
            "authors": None,
            "exclude_author": None,
            "exclude_machines": None,
        },
    )
    assert [row["message_id"] for row in newest] == [4, 3, 2]
    mine = both.same(
        "context",
        "newest_observations",
        {
            "session_keys": keys,
            "after_created_at": -1,
            "after_message_id": -1,
            "limit": 10,
            "authors": None,
            "exclude_author": "alice",
            "exclude_machines": '["old-name", "laptop"]',
        },
    )
    assert [row["message_id"] for row in mine] == [4, 2]  # alice's 1 and 3 left out


def test_feed_filters_by_assistant_session_and_project(both: Both) -> None:
    both.seed(
        SESSION,
        session("claude:a"),
        session("codex:b", project="/q"),
        session("gemini:c"),
    )
    both.seed(PROMPT, record(1, "claude:a", T0), record(4, "gemini:c", T0 + 3))
    both.seed(OBSERVATION, record(2, "codex:b", T0 + 1, title="x" * 400))
    both.seed(SUMMARY, record(3, "claude:a", T0 + 2), record(1, "claude:a", T0))
    for message_id, key in ((1, "claude:a"), (2, "codex:b"), (3, "claude:a"), (4, "gemini:c")):
        both.same(
            "feed",
            "append_feed",
            {"at": T0 + message_id, "session_key": key, "message_id": message_id},
        )
    assert both.select("SELECT seq, record_type, record_id FROM feed ORDER BY seq") == [
        {"seq": 1, "record_type": "prompt", "record_id": 1},
        {"seq": 2, "record_type": "summary", "record_id": 2},
        {"seq": 3, "record_type": "observation", "record_id": 1},
        {"seq": 4, "record_type": "summary", "record_id": 1},
        {"seq": 5, "record_type": "prompt", "record_id": 2},
    ]
    both.seed(AUTHORED.format(table="summaries", ids="1, 3"), {"author": "alice"})
    for assistants in (None, '["claude"]', '["codex", "gemini"]', '["nobody"]'):
        for session_key in (None, "claude:a"):
            for project in (None, "/q"):
                for authors in (None, '["alice"]', '["null"]'):
                    params = {
                        "session_key": session_key,
                        "project": project,
                        "assistants": assistants,
                        "authors": authors,
                        "limit": 10,
                    }
                    both.same("feed", "feed_after", {**params, "after": 1})
                    both.same("feed", "feed_newest", {**params, "upto": 4})
    rows = both.same(
        "feed",
        "feed_after",
        {
            "after": 0,
            "session_key": None,
            "project": None,
            "assistants": None,
            "authors": None,
            "limit": 10,
        },
    )
    assert len(rows[2]["title"]) == 300
    both.same("feed", "prune_feed_over", {"chunk": 10, "keep": 3})
    assert both.same("feed", "feed_last_seq", {}) == [{"seq": 5}]
    assert [row["seq"] for row in both.select("SELECT seq FROM feed ORDER BY seq")] == [3, 4, 5]


def test_usage_figures_agree(both: Both) -> None:
    injection = """
    INSERT INTO usage_injections (at, session_key, project, source, refs, tokens)
    VALUES (:at, :session_key, :project, :source, :refs, :tokens)
    """
    both.seed(
        injection,
        {
            "at": T0,
            "session_key": "claude:a",
            "project": "/p",
            "source": "startup",
            "refs": '["#1", "#S2"]',
            "tokens": 2**40,
        },
        {
            "at": T0 + 100,
            "session_key": "claude:a",
            "project": "/p",
            "source": "prompt",
            "refs": '["#12"]',
            "tokens": 5,
        },
        {
            "at": T0 + 50,
            "session_key": "claude:b",
            "project": None,
            "source": "resume",
            "refs": "[]",
            "tokens": 7,
        },
        {
            "at": T0 + 60,
            "session_key": "claude:c",
            "project": "/q",
            "source": "compact",
            "refs": '["#3"]',
            "tokens": 1,
        },
    )
    fetch = {"tool": "get_observations", "results": 1, "query": None}
    for at, session_key, project, refs in (
        (T0 + 10, None, "/p", '["#1"]'),  # attributed to claude:a's first injection
        (T0 + 110, None, "/p", '["#123"]'),  # to its second: no ref hit
        (T0 + 55, None, None, '["#9"]'),  # project IS NULL: claude:b
        (T0 + 70, "claude:c", "/q", '["#3"]'),
        (T0 + 20 * 60_000, None, "/p", "[]"),  # outside the window: no session
    ):
        both.same(
            "usage",
            "insert_fetch",
            {
                **fetch,
                "at": at,
                "session_key": session_key,
                "project": project,
                "refs": refs,
                "window": 10 * 60_000,
            },
        )
    assert [
        row["session_key"]
        for row in both.select("SELECT session_key FROM usage_fetches ORDER BY id")
    ] == ["claude:a", "claude:a", "claude:b", "claude:c", None]
    for project in (None, "/p", "/none"):
        # -1: SQLite's "no limit", as usage_figures asks for every project.
        for group, limit in (("project", -1), ("session", 1), ("session", 10)):
            rows = both.same(
                "usage", "injection_figures", {"group": group, "project": project, "limit": limit}
            )
            keys = json.dumps([row["grouping"] for row in rows if row["grouping"] is not None])
            both.same(
                "usage",
                "fetch_figures",
                {"group": group, "project": project, "sessions": keys},
                ordered=False,
            )
    by_project = both.same(
        "usage", "injection_figures", {"group": "project", "project": None, "limit": -1}
    )
    assert only(by_project, "grouping", "hits", "ref_hits", "tokens") == [
        {"grouping": "/p", "hits": 2, "ref_hits": 1, "tokens": 2**40 + 5},
        {"grouping": "/q", "hits": 1, "ref_hits": 1, "tokens": 1},
        {"grouping": None, "hits": 1, "ref_hits": 0, "tokens": 7},
    ]
    assert both.same("usage", "usage_span", {}) == [{"since": T0}]


def test_model_usage_days_and_sums(both: Both) -> None:
    midnight = (T0 // DAY_MS + 1) * DAY_MS
    usage = """
    INSERT INTO model_usage (at, message_id, session_key, project, processor, model, calls,
                             input_tokens, output_tokens, cache_read_tokens,
                             cache_write_tokens, fallback)
    VALUES (:at, 1, 'claude:a', :project, 'llm', 'm', 1, :tokens, 1, 0, 0, :fallback)
    """
    both.seed(
        usage,
        {"at": midnight - 1, "project": "/p", "tokens": 2**40, "fallback": None},
        {"at": midnight, "project": "/p", "tokens": 3, "fallback": "budget"},
        {"at": midnight + 999, "project": None, "tokens": 4, "fallback": None},
    )
    for project in (None, "/p"):
        rows = both.same(
            "model_usage", "model_usage_groups", {"since": 0, "project": project}, ordered=False
        )
    assert sorted(row["day"] for row in rows) == ["2023-11-14", "2023-11-15"]
    assert both.same("model_usage", "tokens_since", {"since": midnight}) == [
        {"tokens": 9, "fallbacks": 1}
    ]
    assert both.same("model_usage", "tokens_since", {"since": midnight + DAY_MS}) == [
        {"tokens": 0, "fallbacks": 0}
    ]


def test_recap_files_takes_the_named_files(both: Both) -> None:
    both.seed(SESSION, session("claude:a"))
    both.seed(
        OBSERVATION,
        record(1, "claude:a", T0, files_modified='["a.py", "", 3, null, ["x"], "b.py"]'),
        record(2, "claude:a", T0 + 1, files_modified='["c.py", "a.py"]'),
        record(3, "claude:a", T0 + 2, files_modified="[]"),
        record(4, "claude:a", T0 + 3, files_modified='["d é.py"]'),
    )
    # c.py and a.py share message 2: their order is each engine's own, so rows are compared
    # as sets, and their order by last_change (no limit cuts between the two).
    for scan, limit in ((10, 10), (2, 10), (10, 1), (10, 3)):
        params = {"session_key": "claude:a", "scan": scan, "limit": limit}
        rows = both.same("recap", "recap_files", params, ordered=False)
        lite, pg = both.run("recap", "recap_files", params)
        assert [row["last_change"] for row in pg] == [row["last_change"] for row in lite]
    assert sorted(row["path"] for row in rows) == ["a.py", "c.py", "d é.py"]
    rows = both.same(
        "recap", "recap_files", {"session_key": "claude:a", "scan": 10, "limit": 9}, ordered=False
    )
    assert sorted(row["path"] for row in rows) == ["a.py", "b.py", "c.py", "d é.py"]


def test_session_writes_agree(both: Both) -> None:
    # A queued event before the session's first record sets its start.
    both.seed(
        MESSAGE,
        {
            "session_id": "claude:a",
            "kind": "event",
            "dedupe_key": "k1",
            "status": "processed",
            "created_at": T0 - 500,
        },
    )
    upsert = {
        "key": "claude:a",
        "assistant": "claude",
        "external_id": "a",
        "project": "/p",
        "cwd": None,
        "title": "first",
        "prompts": 1,
        "at": T0,
        "ended_at": None,
        "reopen": 0,
        "now": T0 + 1,
    }
    both.same("memory", "upsert_session", upsert)
    assert both.select("SELECT started_at FROM sessions") == [{"started_at": T0 - 500}]
    both.same(
        "memory",
        "upsert_session",
        {**upsert, "title": "second", "at": T0 - 100, "ended_at": T0 + 5},
    )
    both.same("memory", "upsert_session", {**upsert, "at": T0 + 10, "reopen": 0})
    both.select(SESSION_ROW)
    assert both.select("SELECT ended_at FROM sessions") == [{"ended_at": T0 + 5}]
    both.same("memory", "upsert_session", {**upsert, "at": T0 + 20, "reopen": 1})
    assert both.select("SELECT ended_at, updated_at FROM sessions") == [
        {"ended_at": None, "updated_at": T0 + 20}
    ]
    update = {"key": "claude:a", "project": None, "cwd": "/c", "at": T0 + 5}
    both.same("memory", "update_session", {**update, "ended_at": T0 + 30, "reopen": 0})
    both.same("memory", "update_session", {**update, "ended_at": None, "reopen": 0})
    assert both.select("SELECT ended_at, updated_at FROM sessions") == [
        {"ended_at": T0 + 30, "updated_at": T0 + 20}
    ]
    both.same("memory", "update_session", {**update, "ended_at": None, "reopen": 1})
    assert both.select("SELECT ended_at FROM sessions") == [{"ended_at": None}]
    # A revert: the title goes with the last prompt unless the user set it.
    recount = {"session_key": "claude:a", "now": T0}
    both.same("memory", "recount_session", recount)
    assert both.select("SELECT title, prompt_count FROM sessions") == [
        {"title": None, "prompt_count": 0}
    ]
    both.same(
        "memory",
        "set_title",
        {"session_key": "claude:a", "title": "mine", "edited": 1, "now": T0 + 99},
    )
    both.same("memory", "recount_session", recount)
    assert both.select("SELECT title, title_edited, updated_at FROM sessions") == [
        {"title": "mine", "title_edited": 1, "updated_at": T0 + 99}
    ]
    both.select(SESSION_ROW)


def test_session_reads_agree(both: Both) -> None:
    both.seed(
        SESSION,
        session("claude:a", updated_at=T0 + 2),
        session("codex:b", updated_at=T0 + 1),
        session("gemini:c", updated_at=T0 + 3),
    )
    both.seed(PROMPT, record(1, "claude:a", T0), record(5, "claude:a", T0 + 1, number=2))
    both.seed(OBSERVATION, record(3, "claude:a", T0), record(7, "codex:b", T0))
    both.seed(SUMMARY, record(4, "claude:a", T0))
    for assistants in ('["claude", "codex"]', '["gemini"]', "[]"):
        both.same(
            "memory",
            "list_sessions_by_assistant",
            {"assistants": assistants, "limit": 10, "offset": 0},
        )
        both.same(
            "memory", "count_sessions_by_assistant", {"assistants": assistants}, by_position=True
        )
    for last in (1, 2, 3, 10):
        both.same("memory", "revert_cutoff", {"session_key": "claude:a", "last": last})
    assert both.same("memory", "revert_cutoff", {"session_key": "nobody", "last": 1}) == [
        {"cutoff": None}
    ]
    names = json.dumps(["sessions", "nope", "prompts", "sessions_updated", "Feed"])
    assert both.same("memory", "existing_tables", {"names": names}, ordered=False) == [
        {"name": "prompts"},
        {"name": "sessions"},
    ]
    ids = json.dumps([3, 7, 99])
    both.same("lookup", "observations_by_id", {"ids": ids})
    both.same("lookup", "prompts_by_id", {"ids": json.dumps([1, 2])})
    both.same("lookup", "summaries_by_id", {"ids": json.dumps([1])})
    for key in ("claude:a", "codex:b", "nobody"):
        # EXISTS is a boolean on PostgreSQL; memq reads it with bool().
        both.same("memory", "session_has_message", {"session_key": key, "message_id": 3})
        both.same("session_config", "session_known", {"session_key": key})
        both.same("fork", "fork_child_known", {"child": key})


def test_transfer_links_and_forks(both: Both) -> None:
    both.seed(
        SESSION,
        session("claude:root"),
        session("claude:mid", parent_key="claude:root", forked_at=T0 + 1),
        session("claude:leaf", parent_key="claude:mid", forked_at=T0 + 2),
        session("claude:src", parent_key="claude:root", forked_at=T0 + 3),
        session("claude:kid", parent_key="claude:src", forked_at=T0 + 4),
        session("claude:mid2", parent_key="claude:src", forked_at=T0 + 5),
    )
    for from_key, to_key in (
        ("claude:src", "claude:leaf"),
        ("claude:leaf", "claude:src"),
        ("claude:src", "claude:new"),
        ("claude:nobody", "claude:root"),
    ):
        lite, pg = both.run("memory", "transfer_links", {"from_key": from_key, "to_key": to_key})
        # target_line is JSON text on both; its spacing differs (json_agg writes ", ").
        for rows in (lite, pg):
            for row in rows:
                row["target_line"] = json.loads(row["target_line"])
        assert typed(pg) == typed(lite)
    links, pg_links = both.run(
        "memory", "transfer_links", {"from_key": "claude:src", "to_key": "claude:kid"}
    )
    assert json.loads(links[0]["target_line"]) == ["claude:kid", "claude:src", "claude:root"]
    assert json.loads(pg_links[0]["target_line"]) == ["claude:kid", "claude:src", "claude:root"]
    forks = {
        "from_key": "claude:src",
        "to_key": "claude:kid",
        "source_parent": "claude:root",
        "source_forked_at": T0 + 3,
    }
    both.run(
        "memory",
        "transfer_forks",
        {**forks, "target_line": links[0]["target_line"]},
        pg_params={**forks, "target_line": pg_links[0]["target_line"]},
    )
    assert only(both.select(SESSION_ROW), "key", "parent_key", "forked_at") == [
        {"key": "claude:kid", "parent_key": "claude:root", "forked_at": T0 + 3},
        {"key": "claude:leaf", "parent_key": "claude:mid", "forked_at": T0 + 2},
        {"key": "claude:mid", "parent_key": "claude:root", "forked_at": T0 + 1},
        {"key": "claude:mid2", "parent_key": "claude:kid", "forked_at": T0 + 5},
        {"key": "claude:root", "parent_key": None, "forked_at": None},
        {"key": "claude:src", "parent_key": "claude:root", "forked_at": T0 + 3},
    ]
    both.same(
        "memory",
        "transfer_session_row",
        {
            "from_key": "claude:src",
            "to_key": "claude:new",
            "assistant": "claude",
            "external_id": "new",
            "parent_key": None,
            "forked_at": None,
            "now": T0 + 9,
        },
    )
    both.same(
        "memory",
        "transfer_session_row",
        {
            "from_key": "claude:src",
            "to_key": "claude:root",
            "assistant": "claude",
            "external_id": "root",
            "parent_key": None,
            "forked_at": None,
            "now": T0 - 9,
        },
    )
    both.select(SESSION_ROW)


def test_import_reserves_ids_as_autoincrement_does(both: Both) -> None:
    both.seed(SESSION, session("claude:a"))
    both.seed(
        MESSAGE,
        {
            "session_id": "claude:a",
            "kind": "event",
            "dedupe_key": "k1",
            "status": "processed",
            "created_at": T0,
        },
    )
    # The count's column is named count(*) on SQLite, count on PostgreSQL: memq reads it
    # by position.
    taken = both.same("archive", "import_ids_taken", {"ids": "[1, 100, 101]"}, by_position=True)
    assert taken == [{"0": 1}]
    # Kept ids, then a new one: past the largest, on both.
    kept = json.dumps([[100, "import:100", T0 + 1], [101, "import:101", T0 + 2]])
    both.same(
        "archive",
        "import_reserve_ids",
        {"session_key": "claude:a", "messages": kept, "now": T0 + 3},
        ordered=False,
    )
    both.seed(
        MESSAGE,
        {
            "session_id": "claude:b",
            "kind": "event",
            "dedupe_key": None,
            "status": "pending",
            "created_at": T0 + 4,
        },
    )
    # New ids, ascending in the order given.
    new = json.dumps([[None, "import:7", T0 + 5], [None, "import:3", T0 + 6]])
    both.same(
        "archive",
        "import_reserve_ids",
        {"session_key": "claude:a", "messages": new, "now": T0 + 7},
        ordered=False,
    )
    assert only(
        both.select("SELECT id, dedupe_key FROM pending_messages ORDER BY id"), "id", "dedupe_key"
    ) == [
        {"id": 1, "dedupe_key": "k1"},
        {"id": 100, "dedupe_key": "import:100"},
        {"id": 101, "dedupe_key": "import:101"},
        {"id": 102, "dedupe_key": None},
        {"id": 103, "dedupe_key": "import:7"},
        {"id": 104, "dedupe_key": "import:3"},
    ]
    both.select(f"SELECT {QUEUE_COLUMNS} FROM pending_messages ORDER BY id")
    keys = json.dumps(["import:100", "import:3", "import:9"])
    both.same(
        "archive", "import_reserved_keys", {"session_key": "claude:a", "keys": keys}, ordered=False
    )
    both.same("archive", "import_forget_stale_keys", {"session_key": "claude:a", "keys": keys})
    assert len(both.select("SELECT id FROM pending_messages")) == 4
    both.seed(PROMPT, record(1, "claude:a", T0 + 1), record(2, "claude:a", T0 + 9))
    both.same(
        "archive",
        "import_prompts_at",
        {"session_key": "claude:a", "times": json.dumps([T0 + 9, T0 + 5])},
    )
    both.same(
        "archive",
        "import_merge_session",
        {
            "key": "claude:a",
            "project": None,
            "cwd": "/c",
            "title": None,
            "imported_prompts": 2,
            "started_at": T0 - 1,
            "updated_at": T0 + 50,
        },
    )
    both.select(SESSION_ROW)


def test_fork_finds_a_parent_of_the_same_assistant(both: Both) -> None:
    both.seed(SESSION, session("claude:p"), session("codex:q"))
    resume = """
    INSERT INTO session_resumes (session_key, cwd, message_id, resumed_at)
    VALUES (:session_key, '/p', :message_id, :resumed_at)
    """
    both.seed(
        resume,
        {"session_key": "claude:p", "message_id": 1, "resumed_at": T0},
        {"session_key": "codex:q", "message_id": 2, "resumed_at": T0 + 1},
        {"session_key": "claudex:r", "message_id": 3, "resumed_at": T0 + 2},
    )
    for child in ("claude:new", "codex:new", "gemini:new", "claude:p", "nocolon"):
        params = {"cwd": "/p", "since": T0 - 10, "child": child}
        both.same("fork", "fork_recent_resume", params)
        both.same("fork", "fork_find_parent", params)
    assert both.same(
        "fork", "fork_find_parent", {"cwd": "/p", "since": 0, "child": "claude:new"}
    ) == [{"session_key": "claude:p"}]
    both.seed(PROMPT, record(9, "claude:p", T0 + 9), record(3, "claude:p", T0 + 3, number=2))
    both.seed(OBSERVATION, record(5, "claude:p", T0 + 5))
    both.same(
        "fork", "fork_reserve_ids", {"child": "claude:new", "parent": "claude:p", "now": T0 + 20}
    )
    assert only(
        both.select("SELECT id, dedupe_key, created_at FROM pending_messages ORDER BY id"),
        "id",
        "dedupe_key",
    ) == [
        {"id": 1, "dedupe_key": "fork:3"},
        {"id": 2, "dedupe_key": "fork:5"},
        {"id": 3, "dedupe_key": "fork:9"},
    ]


def test_activity_keeps_the_newest_access(both: Both) -> None:
    statement = {
        dialect: load_queries("activity", dialect)["upsert_last_access"]
        for dialect in (SQLITE, POSTGRES)
    }
    for at in (T0 + 100, T0 + 50, T0 + 200):
        rows = [("claude:a", at), ("claude:b", T0)]
        both.lite.executemany(statement[SQLITE], rows)
        # The PostgreSQL form names its parameters (see its overlay).
        with both.pg.cursor() as cursor:
            cursor.executemany(
                statement[POSTGRES].encode(),
                [{"session_key": key, "last_access_at": value} for key, value in rows],
            )
    assert both.select("SELECT * FROM session_activity ORDER BY session_key") == [
        {"session_key": "claude:a", "last_access_at": T0 + 200},
        {"session_key": "claude:b", "last_access_at": T0},
    ]


PROMPTS_STATE = (
    "SELECT id, message_id, session_key, number, inherited, origin_id FROM prompts ORDER BY id"
)
OBSERVATIONS_STATE = (
    "SELECT id, message_id, session_key, inherited, origin_id FROM observations ORDER BY id"
)


def test_forget_and_transfer_move_records_alike(both: Both) -> None:
    # UPDATEs whose subqueries read the table they change: SQLite runs them row by row,
    # PostgreSQL against the statement's snapshot; memq's statements must not care.
    both.seed(
        SESSION,
        session("claude:r"),
        session("claude:f1", parent_key="claude:r", forked_at=T0 + 1),
        session("claude:f2", parent_key="claude:r", forked_at=T0 + 2),
        session("claude:f3", parent_key="claude:f1", forked_at=T0 + 3),
    )
    copies = {"claude:f1": 10, "claude:f2": 20, "claude:f3": 30}
    both.seed(PROMPT, record(1, "claude:r", T0, number=1), record(2, "claude:r", T0, number=2))
    both.seed(OBSERVATION, record(3, "claude:r", T0))
    for key, base in copies.items():
        both.seed(
            PROMPT,
            record(base + 1, key, T0, number=1, inherited=1, origin_id=1),
            record(base + 2, key, T0, number=2, inherited=1, origin_id=2),
        )
        both.seed(OBSERVATION, record(base + 3, key, T0, inherited=1, origin_id=3))
    both.seed(PROMPT, record(40, "claude:f2", T0 + 5, number=3))
    forget = {"session_key": "claude:r", "from_id": 0}
    for table in ("prompts", "observations", "summaries"):
        both.same("memory", f"hand_on_{table}_name_heir", forget)
        both.same("memory", f"hand_on_{table}_to_heir", forget)
    both.same("memory", "reparent_forks", forget)
    for name in ("prompts", "observations", "summaries"):
        both.same("memory", f"delete_session_{name}", forget)
    both.same("memory", "delete_session", forget)
    assert only(both.select(PROMPTS_STATE), "message_id", "origin_id") == [
        {"message_id": 11, "origin_id": None},
        {"message_id": 12, "origin_id": None},
        {"message_id": 21, "origin_id": 11},
        {"message_id": 22, "origin_id": 12},
        {"message_id": 31, "origin_id": 11},
        {"message_id": 32, "origin_id": 12},
        {"message_id": 40, "origin_id": None},
    ]
    both.select(OBSERVATIONS_STATE)
    both.select(SESSION_ROW)
    # f1 (holding the originals now) moves into f2, which holds copies of them.
    params = {"from_key": "claude:f1", "to_key": "claude:f2"}
    links, pg_links = both.run("memory", "transfer_links", params)
    both.same(
        "memory",
        "transfer_session_row",
        {
            **params,
            "assistant": "claude",
            "external_id": "f2",
            "parent_key": None,
            "forked_at": None,
            "now": T0 + 9,
        },
    )
    for table in ("prompts", "observations", "summaries"):
        both.same("memory", f"transfer_drop_held_{table}", params)
        taken = both.same("memory", f"transfer_take_originals_{table}", params, ordered=False)
        originals = json.dumps(sorted(row["message_id"] for row in taken))
        both.same("memory", f"transfer_restore_{table}", {**params, "originals": originals})
        both.same("memory", f"transfer_{table}", params)
    both.same("memory", "transfer_recount", params)
    forks = {**params, "source_parent": None, "source_forked_at": None}
    both.run(
        "memory",
        "transfer_forks",
        {**forks, "target_line": links[0]["target_line"]},
        pg_params={**forks, "target_line": pg_links[0]["target_line"]},
    )
    both.same("memory", "delete_session", {"session_key": "claude:f1"})
    prompts = both.select(PROMPTS_STATE)
    assert only(prompts, "message_id", "session_key", "number", "origin_id") == [
        {"message_id": 11, "session_key": "claude:f2", "number": 1, "origin_id": None},
        {"message_id": 12, "session_key": "claude:f2", "number": 2, "origin_id": None},
        {"message_id": 31, "session_key": "claude:f3", "number": 1, "origin_id": 11},
        {"message_id": 32, "session_key": "claude:f3", "number": 2, "origin_id": 12},
        {"message_id": 40, "session_key": "claude:f2", "number": 3, "origin_id": None},
    ]
    both.select(OBSERVATIONS_STATE)
    both.select(SESSION_ROW)
