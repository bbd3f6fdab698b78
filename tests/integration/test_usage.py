"""Recording memory's use on a real queue file: batches, attribution of fetches to sessions,
pruning by age and count with a clock the test moves, and the figures read back."""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import pytest
from structlog.testing import capture_logs

from memq.exceptions import StorageError
from memq.memory import direct
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef
from memq.memory.usage import DAY, UsageRecorder
from memq.memory.usage_figures import UsageFigures, empty_answer
from memq.queue import Queue, Transaction
from memq.storage.schema import available_migrations, migrate
from tests.conftest import FAST
from tests.helpers.clock import FakeClock

T = TypeVar("T")
PROJECT = "/work/app"
OTHER = "/work/lib"
START_MS = 1_750_000_000_000  # 2025-06-15


class Counting:
    """The queue, counting the recorder's transactions; ``failures`` are raised first."""

    def __init__(self, queue: Queue) -> None:
        self.queue = queue
        self.transactions = 0
        self.failures: list[Exception] = []

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        if self.failures:
            raise self.failures.pop(0)
        result = await self.queue.run_in_transaction(fn)
        self.transactions += 1
        return result


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=START_MS)


@pytest.fixture
async def clocked_queue(db_path: Path, clock: FakeClock) -> AsyncIterator[Queue]:
    q = await Queue.open(db_path, FAST, clock=clock)
    yield q
    await q.close()


@pytest.fixture
def writer(clocked_queue: Queue) -> Counting:
    return Counting(clocked_queue)


@pytest.fixture
async def figures(clocked_queue: Queue, db_path: Path) -> AsyncIterator[UsageFigures]:
    async with await UsageFigures.open(db_path) as reader:
        yield reader


def rows(db_path: Path, table: str) -> list[dict[str, Any]]:
    """``table`` as an outside reader sees it, oldest first."""
    conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute(f"SELECT * FROM {table} ORDER BY at, id")]
    finally:
        conn.close()


def later(clock: FakeClock, seconds: float) -> None:
    """Both clocks move on by ``seconds``."""
    clock.advance(seconds)


class TestRecording:
    async def test_a_batch_is_one_transaction(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """Records wait in memory until a trigger; then they are written together."""
        usage = UsageRecorder(writer, clock=clock, flush_every=10, flush_interval=2.0)
        usage.record_injection("s1", PROJECT, "startup", ["#1", "#S2", "P3"], 120)
        usage.record_fetch("search", project=PROJECT, results=4, query="login bug")
        usage._next_prune = float("inf")  # this test counts flushes only
        await usage.step()
        assert (writer.transactions, usage.pending) == (0, 2)
        later(clock, 2.0)
        await usage.step()
        assert (writer.transactions, usage.pending) == (1, 0)
        (injection,) = rows(db_path, "usage_injections")
        assert injection["session_key"] == "s1"
        assert json.loads(injection["refs"]) == ["#1", "#S2", "#P3"]
        assert (injection["source"], injection["tokens"], injection["at"]) == (
            "startup",
            120,
            START_MS,
        )
        (fetch,) = rows(db_path, "usage_fetches")
        assert (fetch["tool"], fetch["results"], fetch["query"]) == ("search", 4, "login bug")

    async def test_the_count_trigger(self, writer: Counting, clock: FakeClock) -> None:
        usage = UsageRecorder(writer, clock=clock, flush_every=3)
        usage._next_prune = float("inf")
        for i in range(3):
            usage.record_fetch("search", project=PROJECT, query=f"q{i}")
        await usage.step()
        assert writer.transactions == 1

    async def test_bad_values_are_dropped_not_raised(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """A bad source or tool, an empty session: logged and dropped, the caller goes on."""
        usage = UsageRecorder(writer, clock=clock)
        with capture_logs() as logs:
            usage.record_injection("s1", PROJECT, "sideways", [], 10)
            usage.record_injection("", PROJECT, "startup", [], 10)
            usage.record_fetch("delete_everything", project=PROJECT)
            usage.record_injection("s1", PROJECT, "startup", ["#1", "nonsense"], 0)
        assert usage.pending == 0
        assert [e["event"] for e in logs] == ["usage.record_dropped"] * 3
        await usage.flush()
        assert rows(db_path, "usage_injections") == []

    async def test_references_are_kept_canonical_and_once(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        refs: list[RecordRef | str] = [RecordRef(RecordType.SUMMARY, 4), "#s4", "12", "x", "#12"]
        usage.record_fetch("get_observations", project=PROJECT, refs=refs, results=2)
        await usage.flush()
        assert json.loads(rows(db_path, "usage_fetches")[0]["refs"]) == ["#S4", "#12"]

    async def test_a_failed_write_drops_the_batch_and_the_next_one_goes_through(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        writer.failures.append(StorageError("disk I/O error"))
        usage.record_injection("s1", PROJECT, "startup", ["#1"], 50)
        with capture_logs() as logs:
            assert await usage.flush() is False
        assert logs[0]["event"] == "usage.flush_failed"
        usage.record_injection("s1", PROJECT, "compact", ["#2"], 60)
        assert await usage.flush() is True
        assert [r["source"] for r in rows(db_path, "usage_injections")] == ["compact"]

    async def test_a_full_backlog_drops_new_records(
        self, writer: Counting, clock: FakeClock
    ) -> None:
        """A writer that cannot keep up never makes the backlog grow without bound."""
        usage = UsageRecorder(writer, clock=clock, flush_every=2, max_pending=5)
        for i in range(8):
            usage.record_fetch("search", project=PROJECT, query=str(i))
        assert usage.pending == 5
        with capture_logs() as logs:
            await usage.flush()
        assert {"event": "usage.dropped", "records": 3, "log_level": "warning"} in logs

    async def test_close_writes_what_is_pending_and_stops_run(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock, flush_interval=3600)
        async with anyio.create_task_group() as tg:
            await tg.start(usage.run)
            usage.record_injection("s1", PROJECT, "resume", ["#1"], 10)
            await usage.close()
        assert len(rows(db_path, "usage_injections")) == 1
        usage.record_injection("s1", PROJECT, "resume", ["#1"], 10)  # after close: dropped
        assert usage.pending == 0


class TestAttribution:
    async def test_a_fetch_goes_to_the_newest_injection_of_its_project(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("old", PROJECT, "startup", ["#1"], 10)
        later(clock, 60)
        usage.record_injection("other-project", OTHER, "startup", ["#2"], 10)
        later(clock, 60)
        usage.record_injection("new", PROJECT, "startup", ["#3"], 10)
        later(clock, 1)
        usage.record_fetch("get_observations", project=PROJECT, refs=["#3"], results=1)
        usage.record_fetch("search", project=OTHER, query="x")
        usage.record_fetch("search", project="/elsewhere", query="y")
        usage.record_fetch("search", project=PROJECT, session_key="named", query="z")
        await usage.flush()
        assert [(r["project"], r["session_key"]) for r in rows(db_path, "usage_fetches")] == [
            (PROJECT, "new"),
            (OTHER, "other-project"),
            ("/elsewhere", None),
            (PROJECT, "named"),
        ]

    async def test_an_injection_in_the_same_batch_counts(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """Written before the fetches of its batch, an injection attributes them at once."""
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("s1", PROJECT, "startup", ["#1"], 10)
        usage.record_fetch("search", project=PROJECT, query="q")
        await usage.flush()
        assert rows(db_path, "usage_fetches")[0]["session_key"] == "s1"

    async def test_an_injection_older_than_the_window_attributes_nothing(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock, attribution_window=DAY)
        usage.record_injection("s1", PROJECT, "startup", ["#1"], 10)
        await usage.flush()
        later(clock, DAY + 1)
        usage.record_fetch("search", project=PROJECT, query="q")
        await usage.flush()
        assert rows(db_path, "usage_fetches")[0]["session_key"] is None

    async def test_a_directory_names_its_project_by_its_git_root(
        self, writer: Counting, clock: FakeClock, db_path: Path, tmp_path: Path
    ) -> None:
        root = tmp_path / "repo"
        (root / ".git").mkdir(parents=True)
        (root / "src").mkdir()
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("s1", str(root), "startup", ["#1"], 10)
        usage.record_fetch("search", project=str(root / "src"), query="q")
        await usage.flush()
        assert rows(db_path, "usage_fetches")[0]["project"] == str(root)
        assert rows(db_path, "usage_fetches")[0]["session_key"] == "s1"


class TestPruning:
    async def test_rows_older_than_the_retention_go(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """90 days kept (the default): a day's rows go once they are 90 days old."""
        usage = UsageRecorder(writer, clock=clock)
        for day in range(100):
            usage.record_injection(f"s{day}", PROJECT, "startup", ["#1"], 10)
            usage.record_fetch("search", project=PROJECT, query="q")
            await usage.flush()
            later(clock, DAY)
        # Now: day 100. Rows of days 0..9 are older than 90 days.
        assert await usage.prune() == 20
        kept = rows(db_path, "usage_injections")
        assert [r["session_key"] for r in kept] == [f"s{day}" for day in range(10, 100)]
        assert len(rows(db_path, "usage_fetches")) == 90
        assert await usage.prune() == 0

    async def test_the_newest_rows_are_kept_within_the_limits(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """More rows than the limits, in more than one chunk: the oldest go."""
        usage = UsageRecorder(
            writer, clock=clock, max_injections=1000, max_fetches=500, max_pending=10_000
        )
        for i in range(3500):
            usage.record_injection(f"s{i}", PROJECT, "prompt", ["#1"], 5)
            usage.record_fetch("search", project=PROJECT, query=str(i))
            later(clock, 1)
        await usage.flush()
        assert await usage.prune() == 2500 + 3000
        kept = rows(db_path, "usage_injections")
        assert len(kept) == 1000
        assert kept[0]["session_key"] == "s2500"
        assert rows(db_path, "usage_fetches")[0]["query"] == "3000"

    async def test_run_prunes_at_start_and_then_every_interval(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock, prune_interval=3600)
        usage.record_injection("s0", PROJECT, "startup", ["#1"], 10)
        await usage.flush()
        later(clock, 91 * DAY)
        assert await usage.step() == pytest.approx(3600)
        assert rows(db_path, "usage_injections") == []
        usage.record_injection("s1", PROJECT, "startup", ["#1"], 10)
        await usage.flush()
        clock.step_wall(91 * DAY)  # the row is old, and no time passed for the interval
        await usage.step()  # so the next prune is not due yet
        assert len(rows(db_path, "usage_injections")) == 1
        later(clock, 3600)
        await usage.step()
        assert rows(db_path, "usage_injections") == []

    async def test_forgetting_a_session_deletes_its_rows(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("gone", PROJECT, "startup", ["#1"], 10)
        usage.record_fetch("search", project=PROJECT, query="q")
        await usage.flush()
        usage.record_fetch("search", project=PROJECT, session_key="gone", query="pending")
        usage.record_injection("kept", OTHER, "startup", ["#1"], 10)
        await usage.forget_session("gone")
        await usage.flush()
        assert [r["session_key"] for r in rows(db_path, "usage_injections")] == ["kept"]
        assert rows(db_path, "usage_fetches") == []

    async def test_moving_a_session_moves_its_rows(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("old", PROJECT, "startup", ["#1"], 10)
        await usage.flush()
        usage.record_fetch("search", project=PROJECT, session_key="old", query="pending")
        usage.record_injection("kept", OTHER, "startup", ["#1"], 10)
        await usage.move_session("old", "new")
        await usage.flush()
        injections = sorted(r["session_key"] for r in rows(db_path, "usage_injections"))
        assert injections == ["kept", "new"]
        assert [r["session_key"] for r in rows(db_path, "usage_fetches")] == ["new"]


class TestFigures:
    async def test_empty(self, figures: UsageFigures) -> None:
        answer = await figures.answer()
        assert answer["overall"]["injections"] == 0
        assert answer["overall"]["hit_rate"] is None
        assert (answer["projects"], answer["sessions"], answer["since"]) == ([], [], None)

    async def test_hits_by_window_and_references(
        self, writer: Counting, clock: FakeClock, figures: UsageFigures
    ) -> None:
        """Session a: startup then a fetch of a shown record (hit, ref hit); a compaction
        with nothing after it (no hit). Session b: a search only (hit, no ref hit); its
        recent_context after a resume is no hit. Project c: fetches without an injection."""
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("a", PROJECT, "startup", ["#1", "#2"], 300)
        later(clock, 10)
        usage.record_fetch("get_observations", project=PROJECT, refs=["#2", "#9"], results=2)
        later(clock, 10)
        usage.record_injection("a", PROJECT, "compact", ["#5"], 200)
        later(clock, 10)
        await usage.flush()
        usage.record_injection("b", OTHER, "startup", ["#7"], 100)
        later(clock, 10)
        usage.record_fetch("search", project=OTHER, query="cache", results=3)
        later(clock, 10)
        usage.record_injection("b", OTHER, "resume", ["#7"], 100)
        later(clock, 10)
        usage.record_fetch("recent_context", project=OTHER)
        later(clock, 10)
        usage.record_fetch("search", project="/c", query="lonely")
        await usage.flush()

        answer = await figures.answer()
        overall = answer["overall"]
        assert (overall["injections"], overall["tokens"], overall["refs_shown"]) == (4, 700, 5)
        assert (overall["hits"], overall["hit_rate"]) == (2, 0.5)
        assert (overall["ref_hits"], overall["ref_hit_rate"]) == (1, 0.25)
        assert (overall["fetches"], overall["searches"], overall["records_fetched"]) == (4, 2, 2)
        assert overall["by_source"] == {
            "startup": 2,
            "resume": 1,
            "clear": 0,
            "compact": 1,
            "prompt": 0,
        }
        assert overall["by_tool"] == {
            "search": 2,
            "timeline": 0,
            "get_observations": 1,
            "recent_context": 1,
        }
        by_project = {row["project"]: row for row in answer["projects"]}
        assert by_project[PROJECT]["hit_rate"] == 0.5
        assert by_project[PROJECT]["ref_hit_rate"] == 0.5
        assert by_project[OTHER]["hits"] == 1
        assert by_project["/c"]["injections"] == 0
        assert by_project["/c"]["searches"] == 1
        assert by_project["/c"]["hit_rate"] is None
        sessions = answer["sessions"]
        assert [s["session_key"] for s in sessions] == ["b", "a"]
        assert (sessions[1]["injections"], sessions[1]["records_fetched"]) == (2, 2)
        assert answer["since"] == "2025-06-15T15:06:40.000Z"

        only = await figures.answer(project=OTHER)
        assert [row["project"] for row in only["projects"]] == [OTHER]
        assert only["overall"]["injections"] == 2
        assert [s["session_key"] for s in only["sessions"]] == ["b"]

    async def test_the_newest_sessions_only(
        self, writer: Counting, clock: FakeClock, figures: UsageFigures
    ) -> None:
        usage = UsageRecorder(writer, clock=clock)
        for i in range(15):
            usage.record_injection(f"s{i:02d}", PROJECT, "startup", ["#1"], 10)
            later(clock, 1)
        await usage.flush()
        answer = await figures.answer(sessions=3)
        assert [s["session_key"] for s in answer["sessions"]] == ["s14", "s13", "s12"]
        assert answer["overall"]["injections"] == 15


class TestReadWithoutTheDaemon:
    async def test_the_figures_from_the_file(
        self, writer: Counting, clock: FakeClock, db_path: Path
    ) -> None:
        """``direct.stats`` answers as the route does, from a file the queue holds open."""
        usage = UsageRecorder(writer, clock=clock)
        usage.record_injection("s1", PROJECT, "startup", ["#1"], 10)
        usage.record_fetch("get_observations", project=PROJECT, refs=["#1"], results=1)
        await usage.flush()
        async with await UsageFigures.open(db_path) as reader:
            expected = await reader.answer()
        # direct runs its own event loop, as the CLI does: in a thread of its own here.
        status, body = await anyio.to_thread.run_sync(lambda: direct.stats(db_path))
        assert status == 200
        assert json.loads(body) == expected
        assert (expected["overall"]["injections"], expected["overall"]["ref_hit_rate"]) == (1, 1.0)

    def test_a_file_from_before_the_usage_tables_is_not_migrated(self, tmp_path: Path) -> None:
        """Read-only: a database at schema 9 has no figures yet, and stays at schema 9."""
        database = tmp_path / "memq.db"
        conn = sqlite3.connect(database, isolation_level=None)
        migrate(conn, available_migrations()[:9])
        conn.close()
        before = hashlib.sha256(database.read_bytes()).hexdigest()
        status, body = direct.stats(database, project="/p")
        assert (status, json.loads(body)) == (200, empty_answer("/p"))
        assert hashlib.sha256(database.read_bytes()).hexdigest() == before

    def test_a_missing_database_is_not_created(self, tmp_path: Path) -> None:
        status, body = direct.stats(tmp_path / "memq.db")
        assert (status, json.loads(body)["overall"]["injections"]) == (200, 0)
        assert not (tmp_path / "memq.db").exists()
