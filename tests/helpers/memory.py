"""What the memory tests share: hook payloads, memory written through the worker's path,
tables read as an outside tool would, and the query plans of memq's statements."""

from __future__ import annotations

import json
import re
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from memq.memory import MemoryStore, ObservationRecord, ProcessResult, SummaryRecord
from memq.processors import get_processor
from memq.queue import Queue
from memq.storage import schema
from tests.helpers.rows import table

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code"
SESSION = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
OTHER = "claude-code:c9f4e45b-5385-44d4-9035-1094a42f7f3f"


# -- hook events, processed by the extract processor ------------------------------------------


def sample(name: str, **changes: Any) -> dict[str, Any]:
    """A recorded Claude Code hook payload (tests/fixtures/claude-code), with ``changes``."""
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return payload | changes


def prompt(text: str) -> tuple[str, dict[str, Any]]:
    """A UserPromptSubmit as (message kind, payload)."""
    return "prompt", sample("UserPromptSubmit", prompt=text)


def tool(command: str) -> tuple[str, dict[str, Any]]:
    """A Bash tool call as (message kind, payload)."""
    return "observation", sample("PostToolUse.Bash", tool_input={"command": command})


def stop() -> tuple[str, dict[str, Any]]:
    """A Stop as (message kind, payload)."""
    return "summarize", sample("Stop")


async def enqueue_all(queue: Queue, *items: tuple[str, Any], session: str = SESSION) -> list[int]:
    """Enqueue (kind, payload) items in order; their message ids."""
    return [(await queue.enqueue(session, kind, payload)).message_id for kind, payload in items]


async def process(
    queue: Queue, store: MemoryStore, session: str = SESSION, *, project: str = "project"
) -> int:
    """Process everything pending in ``session`` the way the worker does (the extract
    processor, shown the store's context); returns how many messages."""
    processor = get_processor("extract")
    done = 0
    while session in await queue.sessions_with_backlog():
        async for claim in queue.stream(session, linger=0):
            context = await store.context_for(session)
            result = await processor.process(claim.message, context)
            await claim.ack(store.effect(claim.message, result, project=project))
            done += 1
    return done


async def remember(
    queue: Queue, store: MemoryStore, *items: tuple[str, Any], session: str = SESSION
) -> list[int]:
    """Enqueue ``items`` and process them the way the worker does; their message ids."""
    ids = await enqueue_all(queue, *items, session=session)
    await process(queue, store, session)
    return ids


# -- records written as they are, without a processor -----------------------------------------


@dataclass(frozen=True)
class Prompt:
    """A user's prompt to store (the store numbers it)."""

    text: str


# An observation and a summary together: one message (a Stop) that made both.
Item = Prompt | ObservationRecord | SummaryRecord | tuple[ObservationRecord, SummaryRecord]


def _message(item: Item, cwd: str | None) -> tuple[str, dict[str, Any], ProcessResult]:
    """The message kind and payload that carry ``item``, and the result that stores it."""
    where = {} if cwd is None else {"cwd": cwd}
    if isinstance(item, Prompt):
        return "prompt", {"prompt": item.text, **where}, ProcessResult()
    if isinstance(item, ObservationRecord):
        return "observation", where, ProcessResult(observation=item)
    if isinstance(item, SummaryRecord):
        return "summarize", {}, ProcessResult(summary=item)
    return "summarize", {}, ProcessResult(observation=item[0], summary=item[1])


async def write(
    queue: Queue,
    store: MemoryStore,
    items: list[Item],
    *,
    session: str,
    project: str | None,
    cwd: str | None = None,
    end: bool = False,
) -> list[int]:
    """Store each item as the memory of its own message, in order, through the worker's
    write path (queue, claim, ``store.effect`` with the ack); return the message ids.

    Messages are a few milliseconds apart, so that their times differ. ``cwd`` goes with
    prompts and observations; ``end`` adds a session_end after the items.
    """
    ids: list[int] = []
    results: dict[int, ProcessResult] = {}
    for item in items:
        kind, payload, result = _message(item, cwd)
        message_id = (await queue.enqueue(session, kind, payload)).message_id
        ids.append(message_id)
        results[message_id] = result
        await anyio.sleep(0.002)
    if end:
        await queue.enqueue(session, "session_end", {})
    await settle(queue, store, session, results, project=project)
    return ids


async def settle(
    queue: Queue,
    store: MemoryStore,
    session: str,
    results: dict[int, ProcessResult] | None = None,
    *,
    project: str | None,
) -> None:
    """Process everything pending in ``session`` through the worker's write path, storing
    ``results[message id]`` (nothing for a message without one)."""
    while session in await queue.sessions_with_backlog():
        async for claim in queue.stream(session, linger=0):
            result = (results or {}).get(claim.message.id, ProcessResult())
            await claim.ack(store.effect(claim.message, result, project=project))


# -- the database as an outside tool reads it -------------------------------------------------


def dump(db_path: Path) -> dict[str, list[dict[str, Any]]]:
    """Every row of the tables memory's writes touch, the search index's rowids and the
    AUTOINCREMENT counters: equal dumps mean nothing was written."""
    tables = ("sessions", "prompts", "observations", "summaries", "pending_messages")
    dumped = {name: table(db_path, f"SELECT * FROM {name} ORDER BY rowid") for name in tables}
    dumped["memory_fts"] = table(db_path, "SELECT rowid FROM memory_fts ORDER BY rowid")
    dumped["sqlite_sequence"] = table(db_path, "SELECT * FROM sqlite_sequence ORDER BY name")
    return dumped


# -- statements ---------------------------------------------------------------------------------


def migrated() -> sqlite3.Connection:
    """A fresh in-memory database with memq's whole schema."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    schema.migrate(conn)
    return conn


def null_params(sql: str) -> dict[str, Any]:
    """Every named parameter of ``sql``, NULL."""
    return dict.fromkeys(re.findall(r":([a-z_]+)", sql))


def query_plan(sql: str, **params: Any) -> list[str]:
    """The steps of ``EXPLAIN QUERY PLAN`` of ``sql`` on a fresh migrated database, its
    parameters NULL but those given."""
    conn = migrated()
    try:
        rows = conn.execute("EXPLAIN QUERY PLAN " + sql, null_params(sql) | params)
        return [str(row[3]) for row in rows]
    finally:
        conn.close()
