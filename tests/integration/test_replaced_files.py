"""The queue's database files deleted or swapped while it has them open (issue 19.4), on real
files: what the queue holds is saved at the path through its open connection, a file it finds
there is kept aside and its rows taken in, and nothing it acknowledged is lost."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from memq.exceptions import QueueClosedError, StorageError
from memq.memory.store import MemoryStore
from memq.queue import FileProblem, Queue, QueueSettings
from memq.queue import _files as files_module
from memq.queue._files import DatabaseFiles, leftover_copies
from memq.queue.testing import simulate_crash
from tests.helpers.processes import run_child
from tests.helpers.rows import table

WAL_AND_SHM = ("-wal", "-shm")


def _delete(db_path: Path, *suffixes: str) -> None:
    for suffix in suffixes:
        os.unlink(f"{db_path}{suffix}")


def _keys(db_path: Path) -> Counter[str]:
    """Rows per dedupe key in the file now at ``db_path``."""
    return Counter(str(r["dedupe_key"]) for r in table(db_path, "SELECT * FROM pending_messages"))


def _keys_seen_by_another_process(db_path: Path) -> Counter[str]:
    """The same, read by a separate process (as the next daemon would)."""
    script = (
        "import sqlite3, sys\n"
        "conn = sqlite3.connect(sys.argv[1])\n"
        "for (key,) in conn.execute('SELECT dedupe_key FROM pending_messages'):\n"
        "    print(key)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(db_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    ).stdout
    return Counter(out.split())


async def _fill(queue: Queue, keys: list[str]) -> None:
    for key in keys:
        await queue.enqueue("s", "observation", {"key": key}, key)


class TestIdentity:
    async def test_untouched_files_are_the_queue_own(self, queue: Queue) -> None:
        await _fill(queue, ["k0"])
        assert await queue.check_files() is None
        assert queue.replaced is None

    @pytest.mark.parametrize(
        ("change", "expected"),
        [
            ("rm db", {FileProblem.DATABASE_MISSING, FileProblem.DATABASE_UNLINKED}),
            ("rm wal", {FileProblem.WAL_MISSING}),
            ("rm shm", {FileProblem.SHM_MISSING}),
            ("copy over db", {FileProblem.DATABASE_REPLACED, FileProblem.DATABASE_UNLINKED}),
            ("copy over wal", {FileProblem.WAL_REPLACED}),
        ],
    )
    def test_each_change_is_named(self, tmp_path: Path, change: str, expected: set[str]) -> None:
        db = tmp_path / "memq.db"
        conn = sqlite3.connect(db, isolation_level=None)
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE t (x)")
        conn.execute("INSERT INTO t VALUES (1)")
        files = DatabaseFiles.open(db)
        try:
            what, _, which = change.rpartition(" ")
            path = {"db": db, "wal": Path(f"{db}-wal"), "shm": Path(f"{db}-shm")}[which]
            if what == "rm":
                path.unlink()
            else:  # a sync tool writing its own copy over the file: a new inode
                data = path.read_bytes()
                path.unlink()
                path.write_bytes(data)
            assert set(files.check()) == expected
        finally:
            conn.close()
            files.close()


class TestRescue:
    @pytest.mark.parametrize("deleted", [WAL_AND_SHM, ("",)], ids=["wal-and-shm", "database"])
    async def test_an_enqueue_after_the_deletion_returns_once_saved_at_the_path(
        self, db_path: Path, deleted: tuple[str, ...]
    ) -> None:
        """Its row, and every earlier one, are in the file at the path when ``enqueue``
        returns; the queue then takes no more writes, and reopens on the saved file."""
        queue = await Queue.open(db_path)
        try:
            await _fill(queue, ["k0", "k1", "k2"])
            _delete(db_path, *deleted)
            await _fill(queue, ["k3"])
            replacement = queue.replaced
            assert replacement is not None
            assert replacement.installed.path == db_path
            assert _keys_seen_by_another_process(db_path) == Counter(["k0", "k1", "k2", "k3"])
            with pytest.raises(QueueClosedError):
                await queue.enqueue("s", "observation", {}, "k4")
            queue = await queue.reopen()
            await _fill(queue, ["k4"])
            assert (await queue.stats()).counts.pending == 5
        finally:
            await queue.close()
        assert _keys(db_path) == Counter(["k0", "k1", "k2", "k3", "k4"])
        assert not leftover_copies(db_path)

    async def test_the_check_alone_saves_what_the_queue_holds(self, db_path: Path) -> None:
        """No write after the deletion: ``check_files`` (what maintenance runs every few
        seconds) saves the rows that were only in the deleted WAL."""
        queue = await Queue.open(db_path)
        try:
            await _fill(queue, ["k0", "k1"])
            _delete(db_path, *WAL_AND_SHM)
            replacement = await queue.check_files()
            assert replacement is not None
            assert set(replacement.problems) == {FileProblem.WAL_MISSING, FileProblem.SHM_MISSING}
            # What a SIGKILL now would leave: the file at the path, read by the next process.
            assert _keys_seen_by_another_process(db_path) == Counter(["k0", "k1"])
        finally:
            await queue.close()

    async def test_maintenance_checks_every_file_check_interval(self, db_path: Path) -> None:
        settings = QueueSettings(file_check_interval=0.2)
        queue = await Queue.open(db_path, settings)
        try:
            await _fill(queue, ["k0"])
            async with anyio.create_task_group() as tg:
                await tg.start(queue.run_maintenance)
                _delete(db_path, *WAL_AND_SHM)
                with anyio.fail_after(5):
                    await queue.wait_replaced()
                await queue.close()  # ends run_maintenance
        finally:
            await queue.close()
        assert _keys(db_path) == Counter(["k0"])

    async def test_closing_saves_a_file_deleted_since_the_last_check(self, db_path: Path) -> None:
        """A graceful stop right after the deletion: close looks once more and saves."""
        queue = await Queue.open(db_path)
        await _fill(queue, ["k0", "k1"])
        _delete(db_path, "")
        await queue.close()
        assert _keys(db_path) == Counter(["k0", "k1"])

    async def test_old_connections_closing_leave_the_new_file_and_its_wal_alone(
        self, db_path: Path
    ) -> None:
        """SQLite deletes a WAL by its path when the last connection closes: the old
        connections (the queue's and a memory reader's) must not delete the new file's WAL,
        which holds a commit no checkpoint has copied yet."""
        queue = await Queue.open(db_path)
        store = await MemoryStore.open(db_path)
        try:
            await _fill(queue, ["k0"])
            _delete(db_path, *WAL_AND_SHM)
            await _fill(queue, ["k1"])
            assert queue.replaced is not None
            writer = sqlite3.connect(db_path, isolation_level=None)
            writer.execute("PRAGMA journal_mode = WAL")
            writer.execute("PRAGMA wal_autocheckpoint = 0")
            writer.execute(
                "INSERT INTO pending_messages (session_id, kind, payload, dedupe_key, "
                "available_at, created_at) VALUES ('s', 'observation', '{}', 'k-new', 0, 0)"
            )
            wal = Path(f"{db_path}-wal")
            wal_inode = wal.stat().st_ino
            assert wal.stat().st_size > 0
        finally:
            await store.close()
            await queue.close()
        try:
            assert wal.stat().st_ino == wal_inode, "the new file's WAL was replaced"
            assert _keys_seen_by_another_process(db_path) == Counter(["k0", "k1", "k-new"])
        finally:
            writer.close()

    async def test_a_file_found_at_the_path_is_kept_aside_and_its_rows_taken_in(
        self, db_path: Path
    ) -> None:
        """A hook's fallback made a fresh memq.db while the queue's was gone: that file is
        renamed aside (never deleted), its new event taken in once, and its copy of an event
        the queue already has is not taken twice."""
        queue = await Queue.open(db_path)
        try:
            await _fill(queue, ["k0", "k1"])
            _delete(db_path, "", *WAL_AND_SHM)
            for key in ("k-fallback", "k1"):
                assert run_child("insert-direct", str(db_path), "s", key).returncode == 0
            replacement = await queue.check_files()
            assert replacement is not None
            (aside,) = (p for p in replacement.installed.kept_aside if p.suffix != "")
            assert aside.name.startswith("memq.db.replaced-")
            assert replacement.installed.taken_in == 1
            assert _keys(aside) == Counter(["k-fallback", "k1"])  # still there, untouched
        finally:
            await queue.close()
        assert _keys(db_path) == Counter(["k0", "k1", "k-fallback"])

    async def test_a_copy_saved_before_a_crash_is_put_in_place_at_the_next_open(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """The process died between saving the copy and installing it: the next open installs
        it, keeps the stale file at the path aside, and duplicates nothing."""
        queue = await Queue.open(db_path)
        await _fill(queue, ["k0", "k1"])
        _delete(db_path, *WAL_AND_SHM)

        def die_before_installing(*args: object, **kwargs: object) -> None:
            raise OSError("simulated: the process is gone")

        monkeypatch.setattr(files_module, "install", die_before_installing)
        with pytest.raises(StorageError):
            await _fill(queue, ["k2"])  # not acknowledged: its copy is not in place yet
        assert leftover_copies(db_path)
        await simulate_crash(queue)
        monkeypatch.undo()
        async with await Queue.open(db_path) as reopened:
            assert (await reopened.stats()).counts.pending == 3
        assert _keys(db_path) == Counter(["k0", "k1", "k2"])
        assert not leftover_copies(db_path)
        assert list(db_path.parent.glob("memq.db.replaced-*"))

    async def test_a_copy_that_cannot_be_saved_is_tried_again(
        self, db_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Saving fails (the directory cannot take a new file): the enqueue is not
        acknowledged, writes stay stopped, and the next check saves everything."""
        queue = await Queue.open(db_path)
        real_open_backup = files_module.open_backup
        calls = 0

        def fail_once(path: Path, stamp: str) -> tuple[sqlite3.Connection, Path]:
            nonlocal calls
            calls += 1
            if calls == 1:
                raise OSError(28, "No space left on device")
            return real_open_backup(path, stamp)

        monkeypatch.setattr(files_module, "open_backup", fail_once)
        try:
            await _fill(queue, ["k0"])
            _delete(db_path, *WAL_AND_SHM)
            with pytest.raises(StorageError, match="could not be saved"):
                await _fill(queue, ["k1"])
            assert queue.replaced is None
            with pytest.raises(QueueClosedError):
                await _fill(queue, ["k2"])
            assert await queue.check_files() is not None
        finally:
            await queue.close()
        assert _keys(db_path) == Counter(["k0", "k1"])


class TestTakeIn:
    async def test_only_unfinished_events_the_database_lacks_are_taken(
        self, tmp_path: Path
    ) -> None:
        """Rows with a dedupe key the database has, keyless rows it holds the same (same
        session, kind, time and payload), and settled rows stay out; the rest come in as
        pending."""
        main, aside = tmp_path / "memq.db", tmp_path / "memq.db.replaced-x"
        async with await Queue.open(main) as queue:
            await queue.enqueue("s", "observation", {"n": 1}, "shared")
            await queue.enqueue("s", "observation", {"n": 2})  # keyless, in both
        async with await Queue.open(aside) as other:
            await other.enqueue("s", "observation", {"n": 1}, "shared")
            await other.enqueue("s", "observation", {"n": 3}, "only-aside")
            await other.enqueue("s", "observation", {"n": 4})  # keyless, only here
            # (a keyless copy of {"n": 2}, stamped with the main row's time, is added below)
            done = (await other.enqueue("s", "observation", {"n": 5}, "done")).message_id
            await other.run_in_transaction(
                lambda tx: tx.execute(
                    "UPDATE pending_messages SET status = 'processed', payload = NULL "
                    "WHERE id = :id",
                    {"id": done},
                )
            )
        same_time = table(main, "SELECT created_at FROM pending_messages WHERE dedupe_key IS NULL")
        conn = sqlite3.connect(aside, isolation_level=None)
        conn.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, available_at, created_at) "
            "VALUES ('s', 'observation', '{\"n\":2}', 0, ?)",
            (same_time[0]["created_at"],),
        )
        conn.close()

        assert files_module.take_in(main, aside) == 2
        rows = table(main, "SELECT payload, dedupe_key, status FROM pending_messages ORDER BY id")
        assert [(r["payload"], r["dedupe_key"], r["status"]) for r in rows] == [
            ('{"n":1}', "shared", "pending"),
            ('{"n":2}', None, "pending"),
            ('{"n":3}', "only-aside", "pending"),
            ('{"n":4}', None, "pending"),
        ]

    def test_a_file_that_is_not_a_database_is_reported_not_taken(self, tmp_path: Path) -> None:
        main = tmp_path / "memq.db"
        sqlite3.connect(main).execute("CREATE TABLE pending_messages (x)").connection.close()
        text = tmp_path / "memq.db.replaced-x"
        text.write_text("not a database\n" * 500)
        with pytest.raises(sqlite3.DatabaseError):
            files_module.take_in(main, text)
        assert text.read_text().startswith("not a database")
