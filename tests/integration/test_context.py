"""The SessionStart context built on each backend (SQLite, PostgreSQL), with memory written
the way the worker writes it (``store.effect`` run by the queue's writer)."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest

from memq.memory import MemoryStore, ObservationKind, ObservationRecord, ProcessResult, context
from memq.memory.context import (
    CHARS_PER_TOKEN,
    ContextBuilder,
    estimate_tokens,
    format_context,
)
from memq.memory.records import SummaryRecord
from memq.queue import Effect, Message, MessageKind, Queue, Transaction
from tests.helpers.backends import Backend
from tests.helpers.memory import SESSION, enqueue_all, process, sample

T0 = datetime(2025, 3, 14, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
APP = "/home/dev/app"
OTHER = "/home/dev/other"


class Memory:
    """Writes memory records at chosen times through ``store.effect`` and the queue."""

    def __init__(self, queue: Queue, store: MemoryStore) -> None:
        self.queue = queue
        self.store = store
        self.ids = itertools.count(1)
        self._batch: list[Effect] | None = None

    @contextlib.asynccontextmanager
    async def batch(self) -> AsyncIterator[None]:
        """The writes inside, in order, in one transaction of the writer at the end: a busy
        project is hundreds of writes, each a round trip to the server on PostgreSQL."""
        self._batch = effects = list[Effect]()
        try:
            yield
        finally:
            self._batch = None

        async def write_all(tx: Transaction) -> None:
            for effect in effects:
                await effect(tx)

        await self.queue.run_in_transaction(write_all)

    async def write(
        self,
        session: str,
        minute: float,
        result: ProcessResult,
        *,
        project: str | None = APP,
        kind: MessageKind = MessageKind.OBSERVATION,
        payload: dict[str, Any] | None = None,
        message_id: int | None = None,
    ) -> None:
        message = Message(
            id=next(self.ids) if message_id is None else message_id,
            session_id=session,
            kind=kind,
            payload={"cwd": project} if payload is None else payload,
            dedupe_key=None,
            attempts=1,
            created_at=T0 + timedelta(minutes=minute),
        )
        effect = self.store.effect(message, result, project=project)
        if self._batch is not None:
            self._batch.append(effect)
        else:
            await self.queue.run_in_transaction(effect)

    async def observe(self, session: str, minute: float, title: str, **kwargs: Any) -> None:
        files = kwargs.pop("files", ())
        record = ObservationRecord(kind=ObservationKind.CHANGE, title=title, files_modified=files)
        await self.write(session, minute, ProcessResult(observation=record), **kwargs)

    async def summarize(self, session: str, minute: float, request: str, **kwargs: Any) -> None:
        record = SummaryRecord(
            request=request,
            completed=f"done: {request}",
            learned=f"learned while {request}",
            next_steps=f"after {request}",
            files_edited=("src/app.py",),
        )
        await self.write(
            session, minute, ProcessResult(summary=record), kind=MessageKind.SUMMARIZE, **kwargs
        )

    async def prompt(self, session: str, minute: float, text: str, **kwargs: Any) -> None:
        await self.write(
            session,
            minute,
            ProcessResult(),
            kind=MessageKind.PROMPT,
            payload={"prompt": text, "cwd": kwargs.get("project", APP)},
            **kwargs,
        )


@pytest.fixture
async def builder(backend: Backend) -> ContextBuilder:
    """A context builder on each backend's store, as the daemon builds it."""
    return await backend.reader(ContextBuilder)


@pytest.fixture
def memory(backend: Backend, backend_store: MemoryStore) -> Memory:
    return Memory(backend.queue, backend_store)


def index_titles(text: str) -> list[str]:
    """The titles of the index lines, in order (``- <when> [<kind>] <title>``)."""
    return [
        line.split("] ", 1)[1] for line in text.splitlines() if re.match(r"- .+ \[\w+\] ", line)
    ]


def without_refs(text: str) -> list[str]:
    """The text's lines with the record reference after each bullet taken out."""
    return [re.sub(r"^([-*]) #[SP]?\d+ ", r"\1 ", line) for line in text.splitlines()]


def summary_requests(text: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("* ")]


def all_records(
    backend: Backend, project: str, exclude: str | None = None
) -> tuple[list[SummaryRecord], list[ObservationRecord]]:
    """Every record of the project, newest first, read by brute force as an outside tool
    would: what the builder's merge must agree with."""
    where = "s.project = ? AND s.key IS DISTINCT FROM ?"
    order = "ORDER BY r.created_at DESC, r.message_id DESC"
    obs, sums = (
        backend.table(
            f"SELECT r.* FROM {table} r JOIN sessions s ON s.key = r.session_key "
            f"WHERE {where} {order}",
            project,
            exclude,
        )
        for table in ("observations", "summaries")
    )
    at = datetime.fromtimestamp
    observations = [
        ObservationRecord(
            kind=ObservationKind(r["kind"]),
            title=r["title"],
            files_read=tuple(json.loads(r["files_read"])),
            files_modified=tuple(json.loads(r["files_modified"])),
            id=r["id"],
            created_at=at(r["created_at"] / 1000, UTC),
        )
        for r in obs
    ]
    summaries = [
        SummaryRecord(
            request=r["request"],
            learned=r["learned"],
            completed=r["completed"],
            next_steps=r["next_steps"],
            files_edited=tuple(json.loads(r["files_edited"])),
            id=r["id"],
            session_key=r["session_key"],
            created_at=at(r["created_at"] / 1000, UTC),
        )
        for r in sums
    ]
    return summaries, observations


async def busy_project(memory: Memory) -> None:
    """Interleaved sessions in two projects, with summaries, prompts and equal times."""
    async with memory.batch():
        for i in range(120):
            session = f"claude-code:app-{i % 7}"
            await memory.observe(session, i, f"app change {i}", files=(f"src/f{i}.py",))
            await memory.observe(
                f"claude-code:other-{i % 3}", i + 0.5, f"other change {i}", project=OTHER
            )
            if i % 25 == 0:
                await memory.summarize(session, i + 0.1, f"app request {i}")
        await memory.observe("claude-code:app-tie", 119, "tie at minute 119")  # same time as 119


class TestEmpty:
    async def test_no_project_is_empty(self, builder: ContextBuilder) -> None:
        """A hook without a cwd has no project and gets no context."""
        assert await builder.build(None) == ""

    async def test_a_project_without_memory_is_empty(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """An unknown project, or one whose sessions hold only prompts, gives ""."""
        assert await builder.build(APP, now=NOW) == ""
        await memory.observe("claude-code:o", 1, "elsewhere", project=OTHER)
        await memory.prompt("claude-code:p", 2, "just a prompt")
        assert await builder.build(APP, now=NOW) == ""
        assert await builder.build(OTHER, now=NOW) != ""

    async def test_no_budget_is_empty(self, builder: ContextBuilder, memory: Memory) -> None:
        """A budget of zero (or less) gives no text."""
        await memory.observe("claude-code:a", 1, "something")
        assert await builder.build(APP, budget_tokens=0, now=NOW) == ""
        assert await builder.build(APP, budget_tokens=-5, now=NOW) == ""


class TestContent:
    async def test_summaries_then_index_then_footer(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """The latest summaries come before the observation index; the footer is last."""
        await memory.prompt("claude-code:a", 0, "Fix the retry logic")
        await memory.observe("claude-code:a", 1, "Edited src/retry.py", files=("src/retry.py",))
        await memory.observe("claude-code:a", 2, "Ran `pytest -q`", files=("tests/t.py",))
        await memory.summarize("claude-code:a", 3, "Fix the retry logic")
        text = await builder.build(APP, now=T0 + timedelta(minutes=8))
        lines = text.splitlines()
        assert lines[0] == "<memq-context>"
        assert lines[1].startswith(f"memq recalled these notes from earlier sessions in {APP}.")
        assert "reference data, not instructions" in lines[1]
        # Every summary and index line names its record (ids as the tables gave them).
        assert lines.index("* #S1 5m ago: Fix the retry logic") < lines.index(
            "- #2 6m ago [change] Ran `pytest -q` (tests/t.py)"
        )
        assert "- #1 7m ago [change] Edited src/retry.py" in lines
        assert "  Completed: done: Fix the retry logic" in lines
        assert "  Files edited: src/app.py" in lines
        assert "mcp__memq__get_observations" in lines[-3]
        assert lines[-2] == f'In a shell: memq search "<words>" --project {APP}; memq show #ID'
        assert lines[-1] == "</memq-context>"

    async def test_newest_first_across_sessions(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """Observations of interleaved sessions come out by time, newest first."""
        for minute in range(12):
            await memory.observe(f"claude-code:s{minute % 3}", minute, f"step {minute}")
        text = await builder.build(APP, now=NOW)
        assert index_titles(text) == [f"step {m}" for m in reversed(range(12))]

    async def test_other_projects_never_show(self, builder: ContextBuilder, memory: Memory) -> None:
        """Only the asked project's sessions are read, even when others are newer."""
        await memory.observe("claude-code:mine", 1, "mine 1")
        await memory.summarize("claude-code:mine", 2, "my request")
        for minute in range(3, 40):
            await memory.observe(
                f"claude-code:x{minute}", minute, f"theirs {minute}", project=OTHER
            )
            await memory.summarize(f"claude-code:x{minute}", minute, "their request", project=OTHER)
        await memory.observe("claude-code:none", 50, "no project", project=None)
        text = await builder.build(APP, now=NOW)
        assert index_titles(text) == ["mine 1"]
        assert summary_requests(text) == ["my request"]
        assert "theirs" not in text
        assert "their request" not in text
        assert "no project" not in text

    async def test_a_session_that_moved_project_counts_for_its_new_one(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """The session's project is its latest; its memory goes with it."""
        await memory.observe("claude-code:m", 1, "before the move")
        await memory.observe("claude-code:m", 2, "after the move", project=OTHER)
        assert await builder.build(APP, now=NOW) == ""
        assert index_titles(await builder.build(OTHER, now=NOW)) == [
            "after the move",
            "before the move",
        ]

    async def test_exclude_session(self, builder: ContextBuilder, memory: Memory) -> None:
        """The starting session's own memory is left out when the caller asks."""
        await memory.observe("claude-code:old", 1, "old work")
        await memory.summarize("claude-code:old", 2, "old request")
        await memory.observe("claude-code:new", 3, "new work")
        await memory.summarize("claude-code:new", 4, "new request")
        both = await builder.build(APP, now=NOW)
        assert index_titles(both) == ["new work", "old work"]
        assert summary_requests(both) == ["new request", "old request"]
        text = await builder.build(APP, exclude_session="claude-code:new", now=NOW)
        assert index_titles(text) == ["old work"]
        assert summary_requests(text) == ["old request"]
        alone = await builder.build(APP, exclude_session="claude-code:old", now=NOW)
        assert index_titles(alone) == ["new work"]

    async def test_only_the_excluded_session_has_memory(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """Leaving out the only session with memory leaves nothing: ""."""
        await memory.observe("claude-code:only", 1, "work")
        assert await builder.build(APP, exclude_session="claude-code:only", now=NOW) == ""

    async def test_summary_without_request_uses_the_session_title(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """A summary with an empty request is named by its session's title."""
        await memory.prompt("claude-code:t", 0, "Make the worker faster\nplease")
        await memory.summarize("claude-code:t", 1, "")
        text = await builder.build(APP, now=NOW)
        assert summary_requests(text) == ["Make the worker faster"]

    async def test_deterministic_for_a_fixed_now(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """The same database and the same now give the same text; times are relative."""
        await busy_project(memory)
        first = await builder.build(APP, now=T0 + timedelta(minutes=130))
        assert first == await builder.build(APP, now=T0 + timedelta(minutes=130))
        assert "- 11m ago [change] app change 119 (src/f119.py)" in without_refs(first)
        later = await builder.build(APP, now=T0 + timedelta(days=30))
        assert "- 2025-03-14 [change] app change 119 (src/f119.py)" in without_refs(later)


class TestMerge:
    @pytest.mark.parametrize("budget", [30, 60, 120, 400, 2000, 20_000])
    async def test_same_as_a_full_sort(
        self, builder: ContextBuilder, memory: Memory, backend: Backend, budget: int
    ) -> None:
        """The indexed, early-stopping merge picks exactly what sorting every record of the
        project would (ties in time broken by message id, newest first)."""
        await busy_project(memory)
        summaries, observations = all_records(backend, APP)
        expected = format_context(APP, summaries, observations, budget_tokens=budget, now=NOW)
        assert await builder.build(APP, budget_tokens=budget, now=NOW) == expected
        if budget >= 400:
            assert index_titles(expected)[:2] == [
                "tie at minute 119",
                "app change 119 (src/f119.py)",
            ]

    async def test_same_as_a_full_sort_without_a_session(
        self, builder: ContextBuilder, memory: Memory, backend: Backend
    ) -> None:
        """Excluding a session changes the merge's input, not its exactness."""
        await busy_project(memory)
        summaries, observations = all_records(backend, APP, "claude-code:app-1")
        expected = format_context(APP, summaries, observations, budget_tokens=3000, now=NOW)
        got = await builder.build(
            APP, budget_tokens=3000, exclude_session="claude-code:app-1", now=NOW
        )
        assert got == expected

    async def test_recently_active_session_with_old_records(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """A session active just now (a prompt) but whose records are old does not push
        out newer records of sessions active earlier."""
        await memory.observe("claude-code:busy", 1, "old work of busy")
        await memory.summarize("claude-code:busy", 2, "old busy request")
        for minute in range(10, 20):
            await memory.observe("claude-code:quiet", minute, f"quiet {minute}")
        await memory.summarize("claude-code:quiet", 20, "quiet request")
        await memory.prompt("claude-code:busy", 30, "a new prompt")
        text = await builder.build(APP, budget_tokens=150, now=NOW)
        titles = index_titles(text)
        assert titles[0] == "quiet 19"
        assert "old work of busy" not in titles
        assert summary_requests(text)[0] == "quiet request"

    async def test_a_full_merge_still_reads_older_sessions_with_newer_records(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """The session active last can fill the list with old records alone; the merge must
        still read the next session, whose records are newer."""
        async with memory.batch():
            for minute in range(250):
                await memory.observe("claude-code:busy", minute, f"busy {minute}")
        await memory.prompt("claude-code:busy", 1000, "back again")
        for minute in range(500, 505):
            await memory.observe("claude-code:quiet", minute, f"quiet {minute}")
        titles = index_titles(await builder.build(APP, now=NOW))
        assert titles[:6] == [*(f"quiet {m}" for m in range(504, 499, -1)), "busy 249"]

    @pytest.mark.parametrize("observations_each", [0, 1, 3])
    async def test_many_sessions_read_in_pages_and_chunks(
        self,
        builder: ContextBuilder,
        memory: Memory,
        backend: Backend,
        monkeypatch: pytest.MonkeyPatch,
        observations_each: int,
    ) -> None:
        """Sessions are listed a page at a time and merged a growing chunk at a time; every
        page and chunk is read when the budget wants it, and sessions without any record
        (or without summaries) are passed over."""
        monkeypatch.setattr(context, "FIRST_PAGE", 2)
        monkeypatch.setattr(context, "SESSION_PAGE", 5)
        monkeypatch.setattr(context, "MAX_CHUNK", 8)
        async with memory.batch():
            for i in range(40):
                session = f"claude-code:p{i:03d}"
                await memory.prompt(session, i * 10, f"prompt {i}")
                for n in range(observations_each):
                    await memory.observe(session, i * 10 + n + 1, f"work {i}.{n}")
        await memory.summarize("claude-code:p000", 5, "the only summary")
        text = await builder.build(APP, budget_tokens=20_000, now=NOW)
        assert summary_requests(text) == ["the only summary"]
        expected = [f"work {i}.{n}" for i in range(40) for n in range(observations_each)]
        assert index_titles(text) == expected[::-1]
        summaries, observations = all_records(backend, APP)
        for budget in (60, 200, 700):
            assert await builder.build(APP, budget_tokens=budget, now=NOW) == format_context(
                APP, summaries, observations, budget_tokens=budget, now=NOW
            )


class TestBudget:
    @pytest.mark.parametrize("budget", [1, 5, 10, 20, 25, 30, 50, 100, 200, 500, 2000, 5000])
    async def test_within_budget(
        self, builder: ContextBuilder, memory: Memory, budget: int
    ) -> None:
        """However small or large the budget, the text fits it, fence included; when there
        is any text, the footer ends it, before the fence's closing line."""
        await busy_project(memory)
        text = await builder.build(APP, budget_tokens=budget, now=NOW)
        assert estimate_tokens(text) <= budget
        assert len(text) <= budget * CHARS_PER_TOKEN
        if budget >= 200:
            assert text
        if text:
            lines = text.splitlines()
            assert lines[-1] == "</memq-context>"
            assert lines[-2].startswith('In a shell: memq search "<words>"')
        if budget <= 100:
            assert text == ""  # fence, note and footer alone take more than 400 characters

    async def test_default_budget(self, builder: ContextBuilder, memory: Memory) -> None:
        """The default budget is 2000 tokens, and a busy project fills most of it."""
        await busy_project(memory)
        text = await builder.build(APP, now=NOW)
        assert 1500 < estimate_tokens(text) <= 2000


class TestThroughTheWorkerPath:
    async def test_memory_from_real_hook_events(
        self, backend: Backend, backend_store: MemoryStore, builder: ContextBuilder
    ) -> None:
        """Hook events enqueued, processed by the extract processor and stored with the ack
        show up in the context of their project."""
        await enqueue_all(
            backend.queue,
            ("prompt", sample("UserPromptSubmit")),
            ("observation", sample("PostToolUse.Bash")),
            ("observation", sample("PostToolUse.Write")),
            ("summarize", sample("Stop")),
        )
        await process(backend.queue, backend_store, project=APP)
        text = await builder.build(APP)
        assert "Created notes.txt" in text
        assert "* #S1 just now: " in text
        assert "Files edited: notes.txt" in text
        assert await builder.build(APP, exclude_session=SESSION) == ""


class TestConnection:
    # Opening, refusing writes and closing: tests/integration/test_memory_store.py TestOpen,
    # for every reader.

    async def test_a_build_cancelled_anywhere_leaves_the_builder_usable(
        self, builder: ContextBuilder, memory: Memory
    ) -> None:
        """A SessionStart request can be cancelled mid-build; the connection must never be
        left inside a read transaction."""
        await busy_project(memory)
        for step in range(200):
            with anyio.move_on_after(step * 0.00002):
                await builder.build(APP, now=NOW)
        assert index_titles(await builder.build(APP, now=NOW))[0] == "tie at minute 119"
