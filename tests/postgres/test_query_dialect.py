"""Every named query memq runs has a working PostgreSQL form.

For each component file (``memq/storage/queries/*.sql``), each statement as
``load_queries(component, POSTGRES)`` gives it (the base text, or its overlay from
``queries/postgres/``) is planned with ``EXPLAIN`` on a freshly migrated schema, with
parameters bound as memq's Python binds them (JSON lists as text, times as integers), and
again with its nullable parameters NULL: the server parses it, resolves every table,
column, function and operator, and infers every parameter's type, without running it. A
statement in SQLite's dialect fails here until it has an overlay. Only the components that
exist for a SQLite file alone are left out (SQLITE_ONLY_COMPONENTS); a statement not ported
yet is named in NOT_YET_PORTED, and must really fail. Whether a form also means what the
SQLite form means is tests/postgres/test_dialect_behaviour.py's question.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from memq.storage.sqlfile import POSTGRES, QUERIES_DIR, load_queries

# Components that never run on PostgreSQL: what they do exists only for a SQLite file.
SQLITE_ONLY_COMPONENTS = {
    "repair": "memq repair copies the rows of a damaged SQLite file (pragmas, rowid, "
    "sqlite_sequence, FTS5 rebuild)",
    "rescue": "the rescue takes in the queue rows of a SQLite file swapped under the daemon "
    "(ATTACHed database)",
}

# (component, query) pairs without a working PostgreSQL form yet: "who ports it: why not yet".
# Every other statement, the queue's (queue.sql, pg_queue.sql) and search's included, must
# plan. Shrinking only: an entry whose statement plans is an error
# (test_not_yet_ported_really_fails), so a port removes its entry.
NOT_YET_PORTED: dict[tuple[str, str], str] = {}

# Parameters memq binds as JSON text (json.dumps of a list), by name; a component's own
# meaning of a name is in SAMPLE_OVERRIDES.
_JSON_SAMPLES: dict[str, str] = {
    "times": "[1700000000000]",
    "keys": '["import:1"]',
    "ids": "[1, 2]",
    "messages": '[[1, "import:1", 1700000000000]]',
    "names": '["sessions", "prompts"]',
    "session_keys": '["claude:s1"]',
    "originals": "[1]",
    "target_line": '["claude:s1"]',
    "assistants": '["claude"]',
    "sessions": '["claude:s1"]',
    "claims": '[[1, 1, "pending", 1700000000000, "boom"]]',
    "facts": '["a fact"]',
    "concepts": '["a concept"]',
    "files_read": '["src/a.py"]',
    "files_modified": '["src/a.py"]',
    "files_edited": '["src/a.py"]',
    "refs": '["#1"]',
    "value": "true",
    "types": "[1, 2, 3]",
    "kinds": '["change"]',
    "authors": '["alice"]',
    "exclude_machines": '["laptop-1"]',
}
_TEXT_SAMPLES: dict[str, str] = {
    "group": "session",
    "source": "startup",
    "tool": "search",
    "name": "paused",
    "fallback": "budget",
    "kind": "change",
    "assistant": "claude",
    "external_id": "s1",
    "project": "/work/p",
    "cwd": "/work/p",
    "author": "alice",
    "machine": "laptop-1",
    "address": "203.0.113.5",
}
_TEXT_NAMES = {
    "key", "session_key", "session_id", "child", "parent", "from_key", "to_key", "parent_key",
    "source_parent", "exclude_session", "before_key", "title", "text", "subtitle", "narrative",
    "command", "excerpt", "request", "investigated", "learned", "completed", "next_steps",
    "notes", "tool_name", "error", "query", "model", "processor", "mark_open", "mark_close",
    "ellipsis", "file",
}  # fmt: skip
_TIME = re.compile(r"^(now|at|since|until|before|latest_due|window|upto)$|_at$|_until$")
# Per (component, query, parameter), or (component, parameter) for all its queries: where a
# name means something else than above.
SAMPLE_OVERRIDES: dict[tuple[str, ...], Any] = {
    ("queue", "move_session", "from_id"): "claude:s1",
    ("queue", "move_session", "to_id"): "claude:s2",
    ("queue", "drop_moved_duplicates", "from_id"): "claude:s1",
    ("pg_queue", "channel"): "memq_wake",
    ("pg_queue", "payload"): "1",
    ("team", "key_id"): "0123456789ab",
    ("team", "key"): "alice",
    ("team", "secret_hash"): "ab" * 32,
    ("team", "projects"): '["github.com/owner/repo"]',
    ("team", "key_name"): "alice",
    ("team", "action"): "refused",
    ("team", "target"): "github.com/owner/repo",
    ("team", "detail"): "wrong secret",
    ("team_intake", "key_id"): "0123456789ab",
}
# What memq binds as None (NULL filters, optional fields): each statement must also plan
# with these NULL, as psycopg then sends them untyped.
NULLABLE = {
    "project", "exclude_session", "assistants", "session_key", "parent_key", "forked_at",
    "source_parent", "source_forked_at", "ended_at", "title", "cwd", "tool_name", "command",
    "exit_code", "fallback", "query", "since", "until", "types", "kinds", "file",
    "available_at", "error", "authors", "author", "machine", "exclude_machines", "address",
}  # fmt: skip
_PARAMETER = re.compile(r"%\((\w+)\)s")
# A parameter the statement casts (``:ids::bigint[]``, ``CAST(:ids AS bigint[])``): a
# PostgreSQL form that takes a Python list as an array says so with its cast.
_CAST = re.compile(r"%\((\w+)\)s::(\w+(?:\[\])?)|CAST\(%\((\w+)\)s AS (\w+(?:\[\])?)\)", re.I)
_INTEGER_TYPES = {"bigint", "int8", "integer", "int", "int4", "smallint", "int2"}


def casts(statement: str) -> dict[str, str]:
    """The type each parameter is first cast to in ``statement``, lower case."""
    found: dict[str, str] = {}
    for match in _CAST.finditer(statement):
        name, type_name = match.group(1) or match.group(3), match.group(2) or match.group(4)
        found.setdefault(name, type_name.lower())
    return found


def sample(component: str, query: str, name: str, cast: str | None = None) -> Any:  # noqa: PLR0911
    """A value of the type memq binds for parameter ``name`` (cast to ``cast``)."""
    for key in ((component, query, name), (component, name)):
        if key in SAMPLE_OVERRIDES:
            return SAMPLE_OVERRIDES[key]
    if cast is not None and cast.endswith("[]"):
        return [1] if cast[:-2] in _INTEGER_TYPES else ["claude:s1"]
    if cast in _INTEGER_TYPES:
        return 1_700_000_000_000 if _TIME.search(name) else 1
    if name in _JSON_SAMPLES:
        return _JSON_SAMPLES[name]
    if name in _TEXT_SAMPLES:
        return _TEXT_SAMPLES[name]
    if name in _TEXT_NAMES:
        return f"claude:{name}" if "key" in name or name in {"child", "parent"} else name
    return 1_700_000_000_000 if _TIME.search(name) else 1


def sample_params(component: str, query: str, *, nulls: bool = False) -> dict[str, Any]:
    """Parameters for the query in its PostgreSQL form; with ``nulls``, the nullable ones
    None."""
    statement = load_queries(component, POSTGRES)[query]
    cast = casts(statement)
    return {
        name: None if nulls and name in NULLABLE else sample(component, query, name, cast.get(name))
        for name in _PARAMETER.findall(statement)
    }


def components() -> list[str]:
    return sorted(path.stem for path in QUERIES_DIR.glob("*.sql"))


def ported_components() -> list[str]:
    return [c for c in components() if c not in SQLITE_ONLY_COMPONENTS]


def all_queries() -> list[tuple[str, str]]:
    return [(c, name) for c in ported_components() for name in load_queries(c, POSTGRES)]


def plan_error(conn: Any, component: str, name: str) -> str | None:
    """Why PostgreSQL cannot plan the statement (with samples, then with NULLs); None: it can."""
    import psycopg  # noqa: PLC0415

    statement = load_queries(component, POSTGRES)[name]
    for nulls in (False, True):
        try:
            params = sample_params(component, name, nulls=nulls)
            conn.execute(f"EXPLAIN {statement}".encode(), params)
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            return f"{'with NULLs: ' if nulls else ''}{first}"
        finally:
            conn.rollback()
    return None


@pytest.fixture(scope="module")
def planner(postgres_server: str) -> Iterator[Any]:
    """A connection to a freshly migrated schema, shared by the module's tests: each
    statement is only planned, in a transaction rolled back."""
    import psycopg  # noqa: PLC0415

    from memq.storage.postgres import connection, schema  # noqa: PLC0415

    name = f"memq_test_{os.getpid()}_{secrets.token_hex(4)}"

    async def migrate() -> None:
        conn = await connection.connect(postgres_server, connection.ConnectOptions(schema=name))
        try:
            await schema.migrate(conn)
        finally:
            await conn.close()

    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE SCHEMA "{name}"'.encode())
    try:
        asyncio.run(migrate())
        with psycopg.connect(postgres_server) as conn:
            conn.execute(f'SET search_path TO "{name}"'.encode())
            conn.commit()
            yield conn
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(f'DROP SCHEMA "{name}" CASCADE'.encode())


def test_every_component_is_checked_unless_sqlite_only() -> None:
    # A stale exclusion, or an overlay for a component said never to run on PostgreSQL,
    # means the list above is wrong.
    assert set(SQLITE_ONLY_COMPONENTS) <= set(components())
    overlays = {path.stem for path in (QUERIES_DIR / POSTGRES).glob("*.sql")}
    assert not overlays & set(SQLITE_ONLY_COMPONENTS)
    assert overlays <= set(components()), "an overlay without its base file"


def test_the_list_of_unported_queries_names_real_queries() -> None:
    assert set(NOT_YET_PORTED) <= set(all_queries())


@pytest.mark.parametrize(
    ("component", "name"),
    [pair for pair in all_queries() if pair not in NOT_YET_PORTED],
    ids=str,
)
def test_the_postgres_form_plans(planner: Any, component: str, name: str) -> None:
    assert plan_error(planner, component, name) is None


def test_not_yet_ported_really_fails(planner: Any) -> None:
    # An entry that works now must leave the list: it is then checked like the others.
    working = [pair for pair in NOT_YET_PORTED if plan_error(planner, *pair) is None]
    assert working == [], f"ported: remove from NOT_YET_PORTED {working}"
