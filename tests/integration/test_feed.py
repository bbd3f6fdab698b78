"""The live feed's rows on a real SQLite file: appended with the ack exactly once, read in
order with filters, pruned by age and count on a clock the test controls."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import cast

import anyio
import pytest

from memq.exceptions import SettingError, StorageError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, ProcessResult
from memq.memory.feed import Feed, FeedReader
from memq.processors import get_processor
from memq.processors.pool import ProcessorPool
from memq.queue import ClaimState, MessageStatus, Queue
from memq.storage.sqlfile import load_queries
from memq.worker.http.routes.feed import FeedStream
from memq.worker.processing import ClaimHandler
from tests.conftest import FAST
from tests.helpers.clock import FakeClock
from tests.helpers.memory import (
    OTHER,
    SESSION,
    enqueue_all,
    process,
    prompt,
    query_plan,
    sample,
    stop,
    tool,
)
from tests.helpers.rows import table

START_MS = 1_700_000_000_000
MINUTE = 60.0


def feed_rows(db_path: Path) -> list[tuple[int, str, str]]:
    rows = table(db_path, "SELECT seq, session_key, record_type FROM feed ORDER BY seq")
    return [(r["seq"], r["session_key"], r["record_type"]) for r in rows]


@pytest.fixture
async def reader(queue: Queue, db_path: Path) -> AsyncIterator[FeedReader]:
    async with await FeedReader.open(db_path) as feed_reader:
        yield feed_reader


class TestAppendedWithTheAck:
    async def test_each_new_record_once_in_order(
        self, queue: Queue, store: MemoryStore, reader: FeedReader, db_path: Path
    ) -> None:
        """A prompt, a tool call and a stop add one row each, in the order they committed,
        and the reader shows each record's reference, session, project and title."""
        await enqueue_all(queue, ("event", sample("SessionStart")), prompt("Fix the retry"))
        await enqueue_all(queue, tool("pytest -q"), stop())
        await process(queue, store)
        rows = feed_rows(db_path)
        assert [r[2] for r in rows] == ["prompt", "observation", "summary"]
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        items = await reader.after(0)
        assert [i.seq for i in items] == [r[0] for r in rows]
        assert [i.to_json()["ref"] for i in items] == [
            f"#P{items[0].record_id}",
            f"#{items[1].record_id}",
            f"#S{items[2].record_id}",
        ]
        first = items[0].to_json()
        assert (first["session_key"], first["project"], first["title"]) == (
            SESSION,
            "project",
            "Fix the retry",
        )
        assert await reader.last_seq() == rows[-1][0]

    async def test_a_failed_attempt_adds_nothing_and_the_retry_adds_once(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """The feed row rolls back with a failing effect; the good attempt later adds one
        row; writing the same message's effect again fails and adds nothing."""
        await enqueue_all(queue, prompt("first ever prompt"))
        bogus = ObservationRecord(kind=cast(ObservationKind, "bogus"), title="x")
        async for claim in queue.stream(SESSION, linger=0):
            effect = store.effect(claim.message, ProcessResult(observation=bogus), project="p")
            with pytest.raises(StorageError):
                await claim.ack(effect)
            assert claim.state is ClaimState.ACTIVE
            assert feed_rows(db_path) == []
            assert await claim.fail("bogus kind") is MessageStatus.PENDING
            break
        assert await process(queue, store) == 1
        assert [r[2] for r in feed_rows(db_path)] == ["prompt"]

        await enqueue_all(queue, ("observation", sample("PostToolUse.Bash")))
        processor = get_processor("extract")
        async for claim in queue.stream(SESSION, linger=0):
            result = await processor.process(claim.message, await store.context_for(SESSION))
            effect = store.effect(claim.message, result, project="p")
            await claim.ack(effect)
            with pytest.raises(StorageError, match="UNIQUE"):
                await queue.run_in_transaction(effect)
            break
        assert [r[2] for r in feed_rows(db_path)] == ["prompt", "observation"]

    async def test_a_session_start_adds_no_row(
        self, queue: Queue, store: MemoryStore, db_path: Path
    ) -> None:
        """A message that stores no record (it only opens the session) is no news."""
        await enqueue_all(queue, ("event", sample("SessionStart")))
        await process(queue, store)
        assert feed_rows(db_path) == []


class TestReading:
    async def test_filters_positions_and_deleted_records(
        self, queue: Queue, store: MemoryStore, reader: FeedReader
    ) -> None:
        """Filters by session and project; ``newest`` gives the newest up to a seq, oldest
        first; a deleted session's records leave the feed."""
        await enqueue_all(queue, prompt("a1"), prompt("a2"))
        await enqueue_all(queue, prompt("b1"), session=OTHER)
        await process(queue, store, project="alpha")
        await process(queue, store, OTHER, project="beta")
        everything = await reader.after(0)
        assert [i.title for i in everything] == ["a1", "a2", "b1"]
        assert [i.title for i in await reader.after(0, session_key=OTHER)] == ["b1"]
        assert [i.title for i in await reader.after(0, project="alpha")] == ["a1", "a2"]
        assert [i.title for i in await reader.after(everything[0].seq)] == ["a2", "b1"]
        last = everything[-1].seq
        assert [i.title for i in await reader.newest(last, limit=2)] == ["a2", "b1"]
        assert [i.title for i in await reader.newest(last - 1, limit=5)] == ["a1", "a2"]
        assert await reader.after(0, project="nowhere") == []

        await queue.run_in_transaction(store.forget_effect(OTHER))
        assert [i.title for i in await reader.after(0)] == ["a1", "a2"]


class TestPruning:
    @pytest.fixture
    def clock(self) -> FakeClock:
        return FakeClock(wall_ms=START_MS)

    @pytest.fixture
    async def clocked(self, db_path: Path, clock: FakeClock) -> AsyncIterator[Queue]:
        q = await Queue.open(db_path, FAST, clock=clock)
        yield q
        await q.close()

    async def test_by_age_and_count_and_seqs_are_never_reused(
        self, clocked: Queue, clock: FakeClock, db_path: Path
    ) -> None:
        async with (
            await MemoryStore.open(db_path) as store,
            await FeedReader.open(db_path) as reader,
        ):
            feed = Feed(reader, clocked, clock=clock, retention=10 * MINUTE, max_rows=3)
            await enqueue_all(clocked, prompt("old1"), prompt("old2"))
            await process(clocked, store)
            clock.advance(5 * MINUTE)
            await enqueue_all(clocked, *(prompt(f"new{i}") for i in range(4)))
            await process(clocked, store)
            assert await feed.prune() == 3  # none is 10 minutes old; the newest 3 of 6 kept
            assert [i.title for i in await reader.after(0)] == ["new1", "new2", "new3"]
            clock.advance(6 * MINUTE)  # the new ones are 6 minutes old, none older
            assert await feed.prune() == 0
            clock.advance(5 * MINUTE)
            assert await feed.prune() == 3
            assert feed_rows(db_path) == []
            top = await reader.last_seq()
            assert top == 0
            await enqueue_all(clocked, prompt("after"))
            await process(clocked, store)
            (item,) = await reader.after(0)
            assert item.seq == 7  # the pruned seqs 1..6 are never given again


class TestSignal:
    async def test_notify_and_close_wake_waiters_and_stop_run(
        self, queue: Queue, reader: FeedReader
    ) -> None:
        feed = Feed(reader, queue, prune_interval=3600.0)
        changed = feed.changed()
        assert not changed.is_set()
        feed.notify()
        assert changed.is_set()
        later = feed.changed()
        assert not later.is_set()
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                await tg.start(feed.run)
                feed.close()
        assert later.is_set()
        assert feed.closed


class TestStream:
    async def test_heartbeat_recheck_and_close(
        self, queue: Queue, store: MemoryStore, reader: FeedReader
    ) -> None:
        """An idle stream gets comment lines; a row committed without a signal (another
        process's) arrives with the re-check; ``close`` ends the stream."""
        feed = Feed(reader, queue, heartbeat=0.05, recheck=0.02)
        events = FeedStream(feed, after=0, backlog=50, session_key=None, project=None).events()
        assert (await events.__anext__()).startswith(b"retry: ")
        with anyio.fail_after(10):
            assert await events.__anext__() == b": keep-alive\n\n"
            await enqueue_all(queue, prompt("unsignalled"))
            await process(queue, store)
            chunk = await events.__anext__()
            while chunk.startswith(b":"):
                chunk = await events.__anext__()
        assert chunk.startswith(b"id: 1\nevent: record\ndata: ")
        assert b'"title":"unsignalled"' in chunk
        feed.close()
        with anyio.fail_after(10):
            assert [c async for c in events if not c.startswith(b":")] == []

    async def test_a_new_stream_names_its_position(
        self, queue: Queue, store: MemoryStore, reader: FeedReader
    ) -> None:
        """Started without a position, the stream sends the newest items and then an id
        alone: a browser that reconnects resumes there, without the backlog again."""
        await enqueue_all(queue, prompt("p1"), prompt("p2"), prompt("p3"))
        await process(queue, store)
        feed = Feed(reader, queue)
        events = FeedStream(feed, after=None, backlog=2, session_key=None, project=None).events()
        chunks = [await events.__anext__() for _ in range(4)]
        await events.aclose()
        assert [b'"title":"p2"' in chunks[1], b'"title":"p3"' in chunks[2]] == [True, True]
        assert chunks[3] == b"id: 3\n\n"

    async def test_unusable_settings_are_refused(self, queue: Queue, reader: FeedReader) -> None:
        with pytest.raises(SettingError):
            Feed(reader, queue, max_rows=0)
        with pytest.raises(SettingError):
            Feed(reader, queue, heartbeat=0)


class TestStatements:
    def test_each_compiles_and_reads_by_index(self) -> None:
        """A stream's read walks the feed from its position and finds each record and
        session by key: it costs the same however much memory holds."""
        queries = load_queries("feed")
        memory = ("SCAN prompts", "SCAN observations", "SCAN summaries", "SCAN sessions")
        for name, sql in queries.items():
            plan = query_plan(sql)  # compiles
            assert not [step for step in plan if step.startswith(memory)], name
        for name in ("feed_after", "feed_newest"):
            plan = query_plan(queries[name])
            assert plan[0].startswith("SEARCH f USING INTEGER PRIMARY KEY"), plan
            assert all(step.startswith("SEARCH") for step in plan), plan
        assert "SCAN feed" not in query_plan(queries["prune_feed_before"])


class TestClaimHandler:
    async def test_signals_after_the_ack_commits(
        self, queue: Queue, store: MemoryStore, reader: FeedReader
    ) -> None:
        """The handler wakes the feed once the ack committed: the row is readable then."""
        seen: list[str] = []

        def on_stored() -> None:
            seen.append("stored")

        handler = ClaimHandler(
            lambda key: ProcessorPool("extract", env={}).default, store, on_stored=on_stored
        )
        await enqueue_all(queue, prompt("signalled"))
        async with queue.stream(SESSION, linger=0) as stream:
            await handler(await anext(aiter(stream)))
        assert len(seen) == 1
        assert [i.title for i in await reader.after(0)] == ["signalled"]
