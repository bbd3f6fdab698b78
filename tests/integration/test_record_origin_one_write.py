"""A team server's record costs one statement, on each backend: the insert itself carries who
made it and on which machine (``memq.memory.origin``); no UPDATE stamps it afterwards."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, cast

from memq.memory import MemoryStore, ObservationKind, ObservationRecord, SummaryRecord
from memq.memory.records import ProcessResult
from memq.queue import Message, MessageKind, Transaction
from tests.helpers.backends import Backend

SESSION = "claude-code:alice-1"
ORIGIN = {"key": "alice", "machine": "laptop-a", "local_id": 7, "project": "github.com/o/r"}
RECORD_TABLES = ("prompts", "observations", "summaries")


class Counting:
    """The writer's transaction, noting each statement it runs."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx
        self.now_ms = tx.now_ms
        self.statements: list[str] = []

    async def execute(self, sql: str, parameters: Any = ()) -> int:
        self.statements.append(sql)
        return await self._tx.execute(sql, parameters)

    async def executemany(self, sql: str, parameters: Sequence[Any]) -> None:
        self.statements.append(sql)
        await self._tx.executemany(sql, parameters)

    async def fetchall(self, sql: str, parameters: Any = ()) -> list[Any]:
        self.statements.append(sql)
        return list(await self._tx.fetchall(sql, parameters))


def writes_to(statements: list[str], table: str) -> list[str]:
    """The statements that insert into or update ``table``."""
    pattern = re.compile(rf"\b(INSERT INTO|UPDATE)\s+{table}\b", re.IGNORECASE)
    return [sql for sql in statements if pattern.search(sql)]


def message(message_id: int, kind: MessageKind, payload: dict[str, Any]) -> Message:
    return Message(
        id=message_id,
        session_id=SESSION,
        kind=kind,
        payload=payload,
        dedupe_key=None,
        attempts=1,
        created_at=datetime.now(UTC),
    )


async def write(
    backend: Backend, store: MemoryStore, msg: Message, result: ProcessResult
) -> Counting:
    effect = store.effect(msg, result, project="/home/dev/app")
    counting: list[Counting] = []

    async def run(tx: Transaction) -> None:
        counting.append(Counting(tx))
        await effect(cast("Transaction", counting[0]))

    await backend.queue.run_in_transaction(run)
    return counting[0]


async def test_each_record_of_a_team_event_is_one_insert(
    backend: Backend, backend_store: MemoryStore
) -> None:
    """A prompt, then a tool call that made an observation and a summary: one statement
    writes each record, author and machine included."""
    payload = {"cwd": "/home/dev/app", "prompt": "Fix the backoff", "memq_origin": ORIGIN}
    prompt = await write(
        backend, backend_store, message(101, MessageKind.PROMPT, payload), ProcessResult()
    )
    both = await write(
        backend,
        backend_store,
        message(102, MessageKind.SUMMARIZE, {"cwd": "/home/dev/app", "memq_origin": ORIGIN}),
        ProcessResult(
            observation=ObservationRecord(kind=ObservationKind.CHANGE, title="Edited retry.py"),
            summary=SummaryRecord(request="Fix the backoff", completed="done"),
        ),
    )
    assert len(writes_to(prompt.statements, "prompts")) == 1, prompt.statements
    for table in ("observations", "summaries"):
        assert len(writes_to(both.statements, table)) == 1, both.statements
    for table in RECORD_TABLES:
        rows = backend.table(f"SELECT author, machine FROM {table} WHERE session_key = ?", SESSION)
        assert [(row["author"], row["machine"]) for row in rows] == [("alice", "laptop-a")]


async def test_a_local_record_names_no_one(backend: Backend, backend_store: MemoryStore) -> None:
    payload = {"cwd": "/home/dev/app", "prompt": "Fix the backoff"}
    done = await write(
        backend, backend_store, message(201, MessageKind.PROMPT, payload), ProcessResult()
    )
    assert len(writes_to(done.statements, "prompts")) == 1
    rows = backend.table("SELECT author, machine FROM prompts WHERE session_key = ?", SESSION)
    assert [(row["author"], row["machine"]) for row in rows] == [(None, None)]
