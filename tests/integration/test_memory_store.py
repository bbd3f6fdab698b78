"""The memory store on each backend: effects written with the ack, reads, forgetting."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import anyio
import pytest

from memq.exceptions import InvalidRequestError, SchemaError, StorageError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, ProcessResult
from memq.memory.archive import SessionExporter
from memq.memory.context import ContextBuilder
from memq.memory.reader import ReadsMemory
from memq.memory.search import MemorySearch
from memq.processors import get_processor
from memq.queue import ClaimState, Message, MessageKind, MessageStatus
from memq.storage.sqlfile import load_queries
from tests.helpers.backends import Backend
from tests.helpers.memory import (
    OTHER,
    SESSION,
    enqueue_all,
    migrated,
    null_params,
    process,
    prompt,
    query_plan,
    sample,
)


def memory_rows(backend: Backend) -> dict[str, int]:
    return {
        name: backend.table(f"SELECT count(*) AS n FROM {name}")[0]["n"]
        for name in ("sessions", "prompts", "observations", "summaries")
    }


# What each backend says when a write breaks a constraint (the effect's error, as it is).
CHECK_FAILED = {"sqlite": "CHECK constraint failed", "postgres": "violates check constraint"}
UNIQUE_FAILED = {
    "sqlite": "UNIQUE constraint failed",
    "postgres": "duplicate key value violates unique constraint",
}
# A write on a reader's connection: SQLite's query_only, PostgreSQL's read-only transaction.
READ_ONLY = {"sqlite": "readonly", "postgres": "read-only transaction"}

# Every class that reads memory on a connection of its own (memq.memory.reader).
READERS: list[type[ReadsMemory]] = [MemoryStore, MemorySearch, ContextBuilder, SessionExporter]


@pytest.mark.parametrize("reader", READERS, ids=lambda reader: reader.__name__)
class TestOpen:
    @pytest.mark.sqlite_only(
        "a reader opened on a file path; on PostgreSQL readers share the daemon's pool, made"
        " after PgQueue.open migrated the schema (memq.worker.composition.MemorySource)"
    )
    async def test_refuses_a_database_without_memory_tables(
        self, tmp_path: Path, reader: type[ReadsMemory]
    ) -> None:
        """Opening before the queue migrated the file is a clear SchemaError."""
        path = tmp_path / "bare.db"
        sqlite3.connect(path).close()
        with pytest.raises(SchemaError, match="open the queue first"):
            await reader.open(path)

    @pytest.mark.sqlite_only("a database file's path")
    async def test_does_not_create_a_missing_file(
        self, tmp_path: Path, reader: type[ReadsMemory]
    ) -> None:
        """A wrong path is an error, not a new empty database."""
        path = tmp_path / "missing.db"
        with pytest.raises(StorageError):
            await reader.open(path)
        assert not path.exists()

    async def test_read_only_and_closes_twice(
        self, backend: Backend, reader: type[ReadsMemory]
    ) -> None:
        """Writes go through the queue's writer only: the reader's connection refuses them.
        Closing is idempotent, and the reader works as an async context manager."""
        async with await backend.reader(reader) as memory:
            with pytest.raises(StorageError, match=READ_ONLY[backend.name]):
                async with memory._reader.reading() as conn:
                    await conn.execute_fetchall("DELETE FROM sessions")
            await memory.close()


class TestSessions:
    async def test_first_prompt_creates_and_titles_the_session(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A session gets its assistant, id, cwd, project, and a title from its first prompt."""
        queue, store = backend.queue, backend_store
        await enqueue_all(
            queue,
            ("event", sample("SessionStart")),
            prompt("\n  Fix   the retry logic\nin the worker please"),
            prompt("second prompt"),
        )
        await process(queue, store)
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert detail.assistant == "claude-code"
        assert detail.external_id == SESSION.removeprefix("claude-code:")
        assert detail.cwd == "/home/dev/project"
        assert detail.project == "project"
        assert detail.title == "Fix the retry logic"
        assert detail.prompt_count == 2
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "\n  Fix   the retry logic\nin the worker please"),
            (2, "second prompt"),
        ]
        assert detail.ended_at is None
        data = detail.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert [p["number"] for p in data["prompts"]] == [1, 2]
        assert data["started_at"].endswith("Z")

    async def test_a_long_first_line_is_cut_to_80_characters(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The title stays one short line."""
        queue, store = backend.queue, backend_store
        await enqueue_all(queue, prompt("word " * 100))
        await process(queue, store)
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert detail.title is not None
        assert len(detail.title) == 80
        assert detail.title.endswith("…")

    async def test_a_session_without_prompts_has_no_title(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Tool calls alone create the session but do not title it."""
        queue, store = backend.queue, backend_store
        await enqueue_all(queue, ("observation", sample("PostToolUse.Bash")))
        await process(queue, store)
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert detail.title is None
        assert detail.prompt_count == 0
        assert detail.observation_count == 1

    async def test_session_end_and_restart(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """session_end sets ended_at; a later SessionStart opens the session again."""
        queue, store = backend.queue, backend_store
        _, end_id = await enqueue_all(queue, prompt("hi"), ("session_end", sample("SessionEnd")))
        await process(queue, store)
        ended = await store.get_session(SESSION)
        assert ended is not None
        assert ended.ended_at is not None
        stored = backend.table("SELECT ended_at FROM sessions WHERE key = ?", SESSION)
        assert stored[0]["ended_at"] == backend.row(end_id)["created_at"]
        await queue.enqueue(SESSION, *prompt("x"))
        await process(queue, store)
        still = await store.get_session(SESSION)
        assert still is not None
        assert still.ended_at == ended.ended_at  # only a SessionStart re-opens

        await queue.enqueue(SESSION, "event", sample("SessionStart", source="resume"))
        await process(queue, store)
        reopened = await store.get_session(SESSION)
        assert reopened is not None
        assert reopened.ended_at is None
        assert reopened.started_at == ended.started_at
        assert reopened.updated_at > ended.updated_at

    async def test_started_and_updated_are_event_times(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """started_at is the first event's time and updated_at the latest's."""
        queue, store = backend.queue, backend_store
        first, _, last = await enqueue_all(
            queue,
            prompt("a"),
            ("observation", sample("PostToolUse.Bash")),
            ("observation", sample("PostToolUse.Write")),
        )
        await anyio.sleep(0.05)
        await process(queue, store)
        stored = backend.table("SELECT started_at, updated_at FROM sessions")[0]
        assert stored["started_at"] == backend.row(first)["created_at"]
        assert stored["updated_at"] == backend.row(last)["created_at"]

    async def test_unknown_session(self, backend_store: MemoryStore) -> None:
        """A session memory never saw is None."""
        store = backend_store
        assert await store.get_session("claude-code:nope") is None

    async def test_list_newest_first_with_totals(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Sessions are listed by latest activity, paged, with the total count."""
        queue, store = backend.queue, backend_store
        keys = [f"claude-code:s{i}" for i in range(5)]
        for key in keys:
            await queue.enqueue(key, *prompt(f"prompt of {key}"))
            await anyio.sleep(0.002)  # distinct millisecond timestamps
            await process(queue, store, key)
        page = await store.list_sessions(limit=2)
        assert page.total == 5
        assert [s.key for s in page.items] == [keys[4], keys[3]]
        rest = await store.list_sessions(limit=10, offset=2)
        assert [s.key for s in rest.items] == [keys[2], keys[1], keys[0]]
        assert rest.total == 5
        assert (await store.list_sessions(offset=50)).items == ()
        assert page.items[0].title == f"prompt of {keys[4]}"

    async def test_negative_paging_is_refused(self, backend_store: MemoryStore) -> None:
        """limit and offset must not be negative."""
        store = backend_store
        with pytest.raises(InvalidRequestError, match="negative"):
            await store.list_sessions(limit=-1)

    async def test_bare_keys_belong_to_an_unknown_assistant(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A key without an assistant part is still stored, as assistant 'unknown'."""
        queue, store = backend.queue, backend_store
        await queue.enqueue("plain-id", *prompt("hi"))
        await process(queue, store, "plain-id")
        detail = await store.get_session("plain-id")
        assert detail is not None
        assert (detail.assistant, detail.external_id) == ("unknown", "plain-id")


class TestObservations:
    async def test_each_carries_its_message_id_and_original_time(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """created_at is when the event was enqueued, not when it was processed."""
        queue, store = backend.queue, backend_store
        before = datetime.now(UTC)
        (message_id,) = await enqueue_all(queue, ("observation", sample("PostToolUse.Write")))
        after = datetime.now(UTC)
        await anyio.sleep(0.2)
        processed_from = datetime.now(UTC)
        await process(queue, store)
        page = await store.observations(SESSION)
        assert page.total == 1
        (record,) = page.items
        assert record.message_id == message_id
        assert record.session_key == SESSION
        assert record.id is not None
        assert record.created_at is not None
        assert before - timedelta(milliseconds=1) <= record.created_at <= after
        assert record.created_at < processed_from - timedelta(milliseconds=150)
        stored = backend.table("SELECT created_at FROM observations")[0]["created_at"]
        assert stored == backend.row(message_id)["created_at"]
        assert record.title == "Created notes.txt"
        assert record.files_modified == ("notes.txt",)

    async def test_round_trip_of_every_field(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """What the processor made is what the store gives back, plus the origin fields."""
        queue, store = backend.queue, backend_store
        payload = sample("PostToolUseFailure")
        await enqueue_all(queue, ("observation", payload))
        await process(queue, store)
        (stored,) = (await store.observations(SESSION)).items
        made = await get_processor("extract").process(
            _message_like(stored.message_id, payload), await store.context_for(SESSION)
        )
        assert made.observation is not None
        origin = {"id": None, "message_id": None, "session_key": None, "created_at": None}
        assert ObservationRecord(**(stored.to_dict() | origin)).to_dict() == (
            made.observation.to_dict()
        )
        assert stored.exit_code == 3

    async def test_in_order_with_pagination(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Observations come oldest first, paged, with their total."""
        queue, store = backend.queue, backend_store
        commands = [f"echo {i}" for i in range(7)]
        await enqueue_all(
            queue,
            *[
                ("observation", sample("PostToolUse.Bash", tool_input={"command": c}))
                for c in commands
            ],
        )
        await process(queue, store)
        first = await store.observations(SESSION, limit=3)
        second = await store.observations(SESSION, limit=3, offset=3)
        last = await store.observations(SESSION, limit=3, offset=6)
        assert first.total == second.total == last.total == 7
        got = [o.command for page in (first, second, last) for o in page.items]
        assert got == commands
        ids = [o.message_id or 0 for page in (first, second, last) for o in page.items]
        assert ids == sorted(ids)
        assert (await store.observations("claude-code:other")).total == 0

    async def test_every_kind_fits_the_table(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The kind CHECK constraint accepts every ObservationKind."""
        queue, store = backend.queue, backend_store
        kinds = list(ObservationKind)
        ids = await enqueue_all(queue, *[("observation", {}) for _ in kinds])
        async for claim in queue.stream(SESSION, linger=0):
            kind = kinds[ids.index(claim.message.id)]
            result = ProcessResult(observation=ObservationRecord(kind=kind, title=str(kind)))
            await claim.ack(store.effect(claim.message, result, project=None))
        page = await store.observations(SESSION, limit=100)
        assert [o.kind for o in page.items] == kinds


class TestSummaries:
    async def test_summary_of_the_batch(self, backend: Backend, backend_store: MemoryStore) -> None:
        """A Stop summarizes the prompts and tool calls since the last summary."""
        queue, store = backend.queue, backend_store
        await enqueue_all(
            queue,
            prompt("create out.txt"),
            ("observation", sample("PostToolUse.Bash")),
            ("observation", sample("PostToolUse.Write")),
            ("summarize", sample("Stop")),
        )
        await process(queue, store)
        page = await store.summaries(SESSION)
        assert page.total == 1
        (summary,) = page.items
        assert summary.request == "create out.txt"
        assert summary.files_edited == ("notes.txt",)
        assert summary.notes == "$ echo hello > out.txt (exit 0)"
        assert summary.completed == sample("Stop")["last_assistant_message"]
        assert summary.message_id is not None
        assert summary.created_at is not None

    async def test_context_starts_after_the_last_summary(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A processor sees only the prompts and observations since the last summary."""
        queue, store = backend.queue, backend_store
        await enqueue_all(
            queue,
            prompt("first"),
            ("observation", sample("PostToolUse.Bash")),
            ("summarize", sample("Stop")),
            prompt("second"),
            ("observation", sample("PostToolUse.Write")),
        )
        await process(queue, store)
        context = await store.context_for(SESSION)
        assert context.project == "project"
        assert [(p.number, p.text) for p in context.prompts] == [(2, "second")]
        assert [o.title for o in context.observations] == ["Created notes.txt"]

        await queue.enqueue(SESSION, "summarize", sample("Stop"))
        await process(queue, store)
        summaries = (await store.summaries(SESSION)).items
        assert [s.request for s in summaries] == ["first", "second"]
        assert summaries[1].files_edited == ("notes.txt",)
        fresh = await store.context_for(SESSION)
        assert fresh.prompts == ()
        assert fresh.observations == ()

    async def test_context_of_an_unknown_session(self, backend_store: MemoryStore) -> None:
        """A session memory never saw has an empty context."""
        store = backend_store
        context = await store.context_for("claude-code:new")
        assert context.session_key == "claude-code:new"
        assert context.project is None
        assert context.prompts == ()
        assert context.observations == ()

    async def test_summaries_page(self, backend: Backend, backend_store: MemoryStore) -> None:
        """Summaries come oldest first, paged, with their total."""
        queue, store = backend.queue, backend_store
        for i in range(3):
            await queue.enqueue(SESSION, *prompt(f"p{i}"))
            await queue.enqueue(SESSION, "summarize", sample("Stop"))
        await process(queue, store)
        page = await store.summaries(SESSION, limit=2, offset=1)
        assert page.total == 3
        assert [s.request for s in page.items] == ["p1", "p2"]


class TestExactlyOnce:
    async def test_a_failing_effect_leaves_nothing(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """If any write of the effect fails, no memory row and no processed mark is kept."""
        queue, store = backend.queue, backend_store
        (message_id,) = await enqueue_all(queue, prompt("first ever prompt"))
        bogus = ObservationRecord(kind=cast(ObservationKind, "bogus"), title="x")
        async for claim in queue.stream(SESSION, linger=0):
            effect = store.effect(claim.message, ProcessResult(observation=bogus), project="p")
            with pytest.raises(StorageError, match=CHECK_FAILED[backend.name]):
                await claim.ack(effect)
            assert claim.state is ClaimState.ACTIVE
            assert backend.row(message_id)["status"] == "processing"
            assert memory_rows(backend) == dict.fromkeys(memory_rows(backend), 0)
            assert await claim.fail("bogus kind") is MessageStatus.PENDING
            break
        assert await store.get_session(SESSION) is None
        assert await process(queue, store) == 1  # a good attempt later stores it once
        assert memory_rows(backend) == {
            "sessions": 1,
            "prompts": 1,
            "observations": 0,
            "summaries": 0,
        }

    async def test_a_second_write_for_one_message_is_an_error(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The UNIQUE message_id makes a duplicate write fail loudly and change nothing."""
        queue, store = backend.queue, backend_store
        await enqueue_all(
            queue,
            prompt("hi"),
            ("observation", sample("PostToolUse.Bash")),
            ("summarize", sample("Stop")),
        )
        claims = []
        processor = get_processor("extract")
        async for claim in queue.stream(SESSION, linger=0):
            result = await processor.process(claim.message, await store.context_for(SESSION))
            effect = store.effect(claim.message, result, project="p")
            await claim.ack(effect)
            claims.append((claim.message, effect))
        before = memory_rows(backend)
        assert before == {"sessions": 1, "prompts": 1, "observations": 1, "summaries": 1}
        for _message, effect in claims:
            with pytest.raises(StorageError, match=UNIQUE_FAILED[backend.name]):
                await queue.run_in_transaction(effect)
        assert memory_rows(backend) == before
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert detail.prompt_count == 1

    async def test_concurrent_sessions_number_their_own_prompts(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Prompt numbers count per session, even when sessions are processed together."""
        queue, store = backend.queue, backend_store
        for i in range(4):
            await queue.enqueue(SESSION, *prompt(f"a{i}"))
            await queue.enqueue(OTHER, *prompt(f"b{i}"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(process, queue, store, SESSION)
            tg.start_soon(process, queue, store, OTHER)
        for key, letter in ((SESSION, "a"), (OTHER, "b")):
            detail = await store.get_session(key)
            assert detail is not None
            assert [(p.number, p.text) for p in detail.prompts] == [
                (i + 1, f"{letter}{i}") for i in range(4)
            ]


class TestForget:
    async def test_forget_deletes_the_session_and_all_its_memory(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Every row of the session goes; other sessions stay."""
        queue, store = backend.queue, backend_store
        for session in (SESSION, OTHER):
            await enqueue_all(
                queue,
                prompt("hi"),
                ("observation", sample("PostToolUse.Bash")),
                ("summarize", sample("Stop")),
                session=session,
            )
            await process(queue, store, session)
        deleted = await queue.run_in_transaction(store.forget_effect(SESSION))
        assert deleted == 4  # session, prompt, observation, summary
        assert await store.get_session(SESSION) is None
        assert (await store.observations(SESSION)).total == 0
        assert (await store.summaries(SESSION)).total == 0
        assert memory_rows(backend) == {
            "sessions": 1,
            "prompts": 1,
            "observations": 1,
            "summaries": 1,
        }
        assert await store.get_session(OTHER) is not None

    async def test_forgetting_an_unknown_session(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Nothing to delete is zero rows, not an error."""
        queue, store = backend.queue, backend_store
        assert await queue.run_in_transaction(store.forget_effect("claude-code:x")) == 0

    async def test_a_forgotten_session_starts_over(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """After forgetting, new events make a fresh session numbered from 1."""
        queue, store = backend.queue, backend_store
        await enqueue_all(queue, prompt("old"))
        await process(queue, store)
        await queue.run_in_transaction(store.forget_effect(SESSION))
        await enqueue_all(queue, prompt("new"))
        await process(queue, store)
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert detail.title == "new"
        assert [(p.number, p.text) for p in detail.prompts] == [(1, "new")]


@pytest.mark.sqlite_only("SQLite's EXPLAIN and query plans (PostgreSQL's: tests/postgres)")
class TestStatements:
    @pytest.mark.parametrize(
        "component", ["memory", "search", "context", "history", "fork", "archive"]
    )
    def test_every_statement_compiles(self, component: str) -> None:
        """A typo in a memory component's .sql file fails here, not on the first message in
        production."""
        conn = migrated()
        try:
            for name, sql in load_queries(component).items():
                try:
                    conn.execute("EXPLAIN " + sql, null_params(sql))
                except sqlite3.Error as exc:  # pragma: no cover - the failure message
                    pytest.fail(f"query {name} does not compile: {exc}")
        finally:
            conn.close()

    def plan(self, name: str) -> list[str]:
        return query_plan(load_queries("memory")[name])

    @pytest.mark.parametrize(
        "name",
        [
            "get_session",
            "session_prompts",
            "list_observations",
            "count_observations",
            "list_summaries",
            "count_summaries",
            "insert_prompt",
            "delete_session_prompts",
            "delete_session_observations",
            "delete_session_summaries",
            "delete_session",
        ],
    )
    def test_session_statements_search_an_index(self, name: str) -> None:
        """A statement about one session never scans a table or index (nor sorts), so it
        stays fast however much memory other sessions have."""
        plan = self.plan(name)
        assert not [step for step in plan if step.startswith("SCAN")], plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan

    def test_the_session_list_reads_in_index_order(self) -> None:
        """Listing sessions walks the updated_at index and stops at the page's end."""
        plan = self.plan("list_sessions")
        assert plan[0] == "SCAN sessions USING INDEX sessions_updated", plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        assert not [step for step in plan[1:] if step.startswith("SCAN")], plan


def _message_like(message_id: int | None, payload: Any) -> Message:
    return Message(
        id=message_id or 0,
        session_id=SESSION,
        kind=MessageKind.OBSERVATION,
        payload=payload,
        dedupe_key=None,
        attempts=1,
        created_at=datetime.now(UTC),
    )
