"""``memq repair`` (``memq.repair``) on real SQLite files, damaged in place.

One database is written per module through memq's own write path (the queue, the extract
processor, the memory store): observations over many pages, prompts, a summary, queue rows
still pending, per-session settings. Each test copies it into a home, overwrites chosen pages
(found by walking the b-trees from their root pages, ``tests.faults.damaged``), repairs, and
compares what the new database holds with what the damaged one held.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

import memq.repair as repair_module
from memq.events import route_event
from memq.exceptions import RepairError
from memq.hooks.spool import write_event
from memq.memory.store import MemoryStore
from memq.queue import InstanceLock, Queue, lock_path_for
from memq.repair import (
    RepairOutcome,
    RepairReport,
    build_from,
    repair,
    report_lines,
    spool_intake,
)
from memq.storage import integrity, repairing, schema
from tests.faults.damaged import btree_pages, cells_on, checkpointed, overwrite_pages
from tests.helpers.memory import OTHER, SESSION, prompt, remember, stop, tool
from tests.helpers.rows import table

OBSERVATIONS = 150
PENDING = 4  # messages of OTHER left unprocessed
SETTINGS_ROWS = 300  # session_config rows: enough for several pages of a WITHOUT ROWID table


async def _write(path: Path) -> None:
    queue = await Queue.open(path)
    try:
        async with await MemoryStore.open(path) as store:
            items = [prompt(f"please calibrate the flux capacitor, step {n}") for n in range(5)]
            items += [
                tool(f"calibrate --flux {n} " + "capacitor " * 40) for n in range(OBSERVATIONS)
            ]
            await remember(queue, store, *items, stop())
        for n in range(PENDING):
            await queue.enqueue(OTHER, "observation", {"tool_name": "Bash", "n": n}, f"key-{n}")
    finally:
        await queue.close()
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.executemany(
            "INSERT INTO session_config (session_key, name, value, updated_at) "
            "VALUES (?, 'processor', '\"extract\"', 1)",
            [(f"claude-code:settings-{n:04d}-" + "s" * 60,) for n in range(SETTINGS_ROWS)],
        )
    finally:
        conn.close()
    checkpointed(path)


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The module's database, written once."""
    path = tmp_path_factory.mktemp("template") / "memq.db"
    anyio.run(_write, path)
    return path


@pytest.fixture
def home(tmp_path: Path, template: Path) -> Path:
    """A home holding a copy of the module's database."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    shutil.copy(template, home / "memq.db")
    return home


def rows(database: Path, name: str) -> list[dict[str, Any]]:
    found = table(database, f"SELECT * FROM {name}")
    return sorted(found, key=lambda row: [repr(value) for value in row.values()])


def count(database: Path, name: str) -> int:
    return int(table(database, f"SELECT count(*) AS n FROM {name}")[0]["n"])


def fix(home: Path, **options: Any) -> RepairReport:
    return repair(home, settle_seconds=0, **options)


def middle_leaf(database: Path, name: str) -> int:
    _, leaves = btree_pages(database, name)
    assert len(leaves) >= 3, f"{name} has {len(leaves)} leaf page(s)"
    return sorted(leaves)[len(leaves) // 2]


def search_hits(database: Path, words: str) -> int:
    found = table(database, "SELECT count(*) AS n FROM memory_fts WHERE memory_fts MATCH ?", words)
    return int(found[0]["n"])


class TestDamagedTablePages:
    def test_a_damaged_leaf_costs_only_the_rows_on_it(self, home: Path, template: Path) -> None:
        database = home / "memq.db"
        page = middle_leaf(database, "observations")
        on_page = cells_on(database, page)
        overwrite_pages(database, [page], fill="zeros")
        report = fix(home)
        assert report.outcome is RepairOutcome.REPAIRED
        rescue = report.table("observations")
        assert rescue.lost == on_page
        assert not rescue.lost_at_least
        assert rescue.saved == OBSERVATIONS - on_page
        assert len(rescue.unreadable) == 1
        kept = {row["message_id"] for row in rows(database, "observations")}
        before = {row["message_id"] for row in rows(template, "observations")}
        assert kept < before
        assert len(before - kept) == on_page
        # Everything else is whole: the queue, sessions, prompts, summaries.
        for name in ("pending_messages", "sessions", "prompts", "summaries", "session_config"):
            assert rows(database, name) == rows(template, name), name
            assert report.table(name).lost == 0
        # Search is rebuilt from the saved rows: the lost ones are not found.
        assert search_hits(database, "calibrate") == search_hits(template, "calibrate") - on_page

    def test_garbage_over_a_leaf_is_found_and_skipped(self, home: Path) -> None:
        database = home / "memq.db"
        page = middle_leaf(database, "observations")
        on_page = cells_on(database, page)
        overwrite_pages(database, [page], fill="garbage")
        report = fix(home)
        assert report.found.damaged
        assert report.table("observations").saved == OBSERVATIONS - on_page

    def test_queue_rows_lost_are_counted_and_their_ids_never_given_again(
        self, home: Path, template: Path
    ) -> None:
        database = home / "memq.db"
        _, leaves = btree_pages(database, "pending_messages")
        last = max(leaves, key=lambda page: page)  # the newest rows, the highest ids
        on_page = cells_on(database, last)
        top_id = max(row["id"] for row in rows(template, "pending_messages"))
        overwrite_pages(database, [last], fill="zeros")
        report = fix(home)
        rescue = report.table("pending_messages")
        # The four partial indexes (one per status) still list every row: an exact count.
        assert rescue.lost == on_page
        assert not rescue.lost_at_least

        async def enqueue() -> int:
            async with await Queue.open(database) as queue:
                return (await queue.enqueue(SESSION, "observation", {"n": 1})).message_id

        assert anyio.run(enqueue) > top_id

    def test_a_damaged_interior_page_costs_the_rows_under_it_counted_exactly(
        self, home: Path
    ) -> None:
        database = home / "memq.db"
        interior, _ = btree_pages(database, "observations")
        overwrite_pages(database, interior[:1], fill="zeros")  # the root
        report = fix(home)
        rescue = report.table("observations")
        # Nothing below the root can be reached; UNIQUE (message_id) still lists every row.
        assert rescue.saved == 0
        assert rescue.lost == OBSERVATIONS
        assert not rescue.lost_at_least

    def test_a_without_rowid_table_is_read_from_both_ends(self, home: Path) -> None:
        database = home / "memq.db"
        page = middle_leaf(database, "session_config")
        overwrite_pages(database, [page], fill="zeros")
        report = fix(home)
        rescue = report.table("session_config")
        assert 0 < rescue.saved < SETTINGS_ROWS
        # Rows on both sides of the bad page are saved.
        keys = [row["session_key"] for row in rows(database, "session_config")]
        assert "claude-code:settings-0000-" + "s" * 60 in keys
        assert f"claude-code:settings-{SETTINGS_ROWS - 1:04d}-" + "s" * 60 in keys
        assert rescue.lost is None or rescue.saved + rescue.lost == SETTINGS_ROWS


class TestDamagedIndexPages:
    def test_no_row_is_lost_and_the_indexes_are_built_afresh(
        self, home: Path, template: Path
    ) -> None:
        database = home / "memq.db"
        pages: list[int] = []
        for index in ("pending_messages_dedupe", "observations_session", "sessions_updated"):
            interior, leaves = btree_pages(database, index)
            pages += interior + leaves
        overwrite_pages(database, pages, fill="garbage")
        assert integrity.check(str(database)).damaged
        report = fix(home)
        for rescue in report.tables:
            assert rescue.lost == 0, rescue
        for name in ("pending_messages", "sessions", "prompts", "observations", "summaries"):
            assert rows(database, name) == rows(template, name), name
        assert integrity.check(str(database), thorough=True).verdict == integrity.Verdict.OK
        assert search_hits(database, "calibrate") == search_hits(template, "calibrate")

    def test_damaged_search_pages_cost_nothing_search_is_rebuilt(
        self, home: Path, template: Path
    ) -> None:
        database = home / "memq.db"
        interior, leaves = btree_pages(database, "memory_fts_data")
        overwrite_pages(database, interior + leaves[1:], fill="garbage")
        report = fix(home)
        assert all(rescue.lost == 0 for rescue in report.tables)
        assert search_hits(database, "calibrate") == search_hits(template, "calibrate")
        assert search_hits(database, "flux") == search_hits(template, "flux")


class TestWhatIsKept:
    def test_the_damaged_files_are_renamed_with_their_wal_never_deleted(
        self, home: Path, tmp_path: Path
    ) -> None:
        """Rows still only in the -wal are read through it: the files move together."""
        database = home / "memq.db"
        writer = sqlite3.connect(database, isolation_level=None)
        writer.execute("PRAGMA wal_autocheckpoint = 0")
        writer.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, available_at,"
            " created_at) VALUES (?, 'observation', '{}', 'only-in-wal', 1, 1)",
            (OTHER,),
        )
        # A snapshot of the files as they are now, the row only in the -wal.
        snapshot = tmp_path / "snapshot"
        snapshot.mkdir()
        for suffix in ("", "-wal"):
            shutil.copy(f"{database}{suffix}", snapshot / f"memq.db{suffix}")
        writer.close()
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        for suffix in ("", "-wal"):
            shutil.copy(snapshot / f"memq.db{suffix}", f"{database}{suffix}")
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        before = (home / "memq.db").read_bytes()
        report = fix(home)
        aside = [Path(path) for path in report.kept_aside]
        assert [path.name.removeprefix(aside[0].name) for path in aside][:2] == ["", "-wal"]
        assert aside[0].read_bytes() == before
        keys = [row["dedupe_key"] for row in rows(database, "pending_messages")]
        assert "only-in-wal" in keys

    def test_a_text_file_gives_an_empty_new_database(self, home: Path) -> None:
        database = home / "memq.db"
        database.write_text("notes\n" * 500)
        report = fix(home)
        assert report.found.detail.startswith("not a SQLite database")
        assert all(rescue.saved == 0 for rescue in report.tables)
        assert all(rescue.lost is None for rescue in report.tables)
        assert Path(report.kept_aside[0]).read_text() == "notes\n" * 500
        assert count(database, "pending_messages") == 0
        assert "nothing could be read" in "\n".join(report_lines(report))

    def test_the_new_database_is_private_whole_and_current(self, home: Path) -> None:
        database = home / "memq.db"
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        fix(home)
        assert database.stat().st_mode & 0o777 == 0o600
        assert integrity.check(str(database), thorough=True).verdict == integrity.Verdict.OK
        conn = sqlite3.connect(database)
        try:
            assert schema.current_version(conn) == len(schema.available_migrations())
        finally:
            conn.close()

        async def claim_pending() -> int:
            async with await Queue.open(database) as queue:
                claimed = 0
                async for claim in queue.stream(OTHER, linger=0):
                    await claim.ack()
                    claimed += 1
                return claimed

        assert anyio.run(claim_pending) == PENDING

    def test_an_older_schema_is_copied_then_migrated(self, tmp_path: Path) -> None:
        """A database at schema version 5 (before forks added columns) is rebuilt at 5,
        then the newer migrations run over the saved rows."""
        home = tmp_path / "home"
        home.mkdir()
        database = home / "memq.db"
        conn = sqlite3.connect(database, isolation_level=None)
        schema.migrate(conn, schema.available_migrations()[:5])
        conn.executemany(
            "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, available_at,"
            " created_at) VALUES (?, 'observation', ?, ?, 1, 1)",
            [(SESSION, "{" + '"x": "' + "y" * 900 + '"}', f"k{n}") for n in range(40)],
        )
        conn.close()
        overwrite_pages(database, [middle_leaf(database, "pending_messages")], fill="zeros")
        report = fix(home)
        rescue = report.table("pending_messages")
        assert rescue.saved + (rescue.lost or 0) == 40
        assert 0 < rescue.saved < 40
        assert "parent_key" in {
            row["name"] for row in table(database, "PRAGMA table_info(sessions)")
        }


class TestWhenItRuns:
    def test_a_whole_database_is_left_alone_unless_forced(self, home: Path, template: Path) -> None:
        before = (home / "memq.db").read_bytes()
        report = fix(home)
        assert report.outcome is RepairOutcome.NOT_DAMAGED
        assert (home / "memq.db").read_bytes() == before
        assert not list(home.glob("memq.db.damaged-*"))
        forced = fix(home, force=True)
        assert forced.outcome is RepairOutcome.REPAIRED
        assert all(rescue.lost == 0 for rescue in forced.tables)
        assert rows(home / "memq.db", "observations") == rows(template, "observations")

    def test_no_database_is_nothing_to_repair(self, tmp_path: Path) -> None:
        assert fix(tmp_path).outcome is RepairOutcome.NO_DATABASE

    def test_it_refuses_while_another_process_holds_the_database(self, home: Path) -> None:
        overwrite_pages(
            home / "memq.db", [middle_leaf(home / "memq.db", "observations")], fill="zeros"
        )
        lock = InstanceLock.acquire(lock_path_for((home / "memq.db").resolve()))
        try:
            with pytest.raises(RepairError, match="another memq process"):
                fix(home)
        finally:
            lock.release()
        assert not list(home.glob("memq.db.damaged-*"))

    def test_a_database_of_a_newer_memq_is_left_as_it_is(self, home: Path) -> None:
        database = home / "memq.db"
        conn = sqlite3.connect(database, isolation_level=None)
        conn.execute("INSERT INTO schema_version (version, name, applied_at) VALUES (999, 'x', 1)")
        conn.close()
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        with pytest.raises(RepairError, match="newer than this memq"):
            fix(home)
        assert database.exists()
        assert not list(home.glob("memq.db.damaged-*"))

    def test_a_failed_rebuild_puts_the_damaged_files_back(self, home: Path) -> None:
        database = home / "memq.db"
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        before = database.read_bytes()

        def failing_build(source: Path, target: Path) -> Any:
            raise OSError(28, "No space left on device")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(repair_module, "build_from", failing_build)
            with pytest.raises(OSError, match="No space left"):
                fix(home)
        assert database.read_bytes() == before
        assert not list(home.glob("memq.db.damaged-*"))
        assert not list(home.glob("memq.db.repairing-*"))
        assert repairing.repairing_pid(str(home)) is None

    def test_hooks_are_kept_off_the_files_while_they_are_replaced(self, home: Path) -> None:
        """The repair mark is there, naming this process, for the whole rebuild."""
        database = home / "memq.db"
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        seen: list[int | None] = []

        def take_in(_database: Path, _home: Path) -> Any:
            seen.append(repairing.repairing_pid(str(home)))  # after: the mark is gone
            return None

        real_build = build_from

        def watching_build(source: Path, target: Path) -> Any:
            seen.append(repairing.repairing_pid(str(home)))
            return real_build(source, target)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(repair_module, "build_from", watching_build)
            repair(home, settle_seconds=0, take_in_spool=take_in)
        assert seen == [os.getpid(), None]

    def test_the_spool_is_taken_in(self, home: Path) -> None:
        database = home / "memq.db"
        overwrite_pages(database, [middle_leaf(database, "observations")], fill="zeros")
        payload = {
            "hook_event_name": "PostToolUse",
            "session_id": "spooled-during-damage",
            "cwd": "/tmp/p",
            "tool_name": "Bash",
            "tool_use_id": "spooled-1",
            "tool_input": {"command": "ls"},
            "tool_response": {"stdout": "", "stderr": "", "interrupted": False},
        }
        body = json.dumps(payload).encode()
        write_event(str(home), route_event(payload), body, now_ms=1)
        report = repair(home, settle_seconds=0, take_in_spool=spool_intake(1024 * 1024))
        assert report.spool is not None
        assert report.spool.taken == 1
        found = table(
            database, "SELECT * FROM pending_messages WHERE dedupe_key = 'tool:spooled-1'"
        )
        assert len(found) == 1
        assert not list((home / "spool").glob("*.event"))
