"""Opening a queue: the instance lock, recovery of orphaned claims, unusable files."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from memq.exceptions import QueueLockedError, SchemaError, StorageError
from memq.queue import Queue, lock_path_for
from tests.conftest import FAST
from tests.helpers.processes import kill_hard, read_line, spawn_child
from tests.helpers.rows import all_rows


class TestInstanceLock:
    async def test_a_second_open_in_this_process_fails_at_once(self, db_path: Path) -> None:
        """Two queues on one file would both think every processing row is theirs."""
        async with await Queue.open(db_path):
            started = time.monotonic()
            with pytest.raises(QueueLockedError, match=f"process {os.getpid()}"):
                await Queue.open(db_path)
            assert time.monotonic() - started < 1
        async with await Queue.open(db_path):
            pass  # free again once closed

    async def test_a_second_open_in_another_process_fails_and_names_it(self, db_path: Path) -> None:
        """The error says which process holds the database, without hanging."""
        child = spawn_child("hold-open", str(db_path))
        try:
            assert read_line(child) == "ready"
            with pytest.raises(QueueLockedError, match=f"process {child.pid}"):
                await Queue.open(db_path)
        finally:
            kill_hard(child)
        async with await Queue.open(db_path):
            pass  # the kernel dropped the dead holder's lock

    async def test_a_stale_lock_file_does_not_block(self, db_path: Path) -> None:
        """A lock file left by a dead process (no flock held) is simply reused."""
        lock_path_for(db_path).write_text("999999\n")
        async with await Queue.open(db_path):
            pass


class TestRecoveryAtOpen:
    async def test_orphaned_claims_return_to_pending_with_the_attempt_counted(
        self, db_path: Path
    ) -> None:
        """Rows left processing by a dead owner are pending again the moment the queue opens."""
        async with await Queue.open(db_path) as queue:
            ids = [(await queue.enqueue(f"s{i}", "observation", {})).message_id for i in range(3)]
        child = spawn_child("hold-claims", str(db_path), "s0", "s1", "s2")
        try:
            assert sorted(json.loads(read_line(child))) == ids
            assert {r["status"] for r in all_rows(db_path)} == {"processing"}
        finally:
            kill_hard(child)
        with capture_logs() as logs:
            queue = await Queue.open(db_path)
        rows = all_rows(db_path)
        assert [(r["status"], r["attempts"], r["lease_until"]) for r in rows] == [
            ("pending", 1, None)
        ] * 3
        assert all("interrupted" in r["last_error"] for r in rows)
        resets = [e for e in logs if e["event"] == "recovery.reset"]
        assert sorted(e["message_id"] for e in resets) == ids
        assert await queue.sessions_with_backlog() == ["s0", "s1", "s2"]
        await queue.close()


class TestUnusableFiles:
    async def test_a_file_that_is_not_a_database_is_a_clear_error(self, db_path: Path) -> None:
        """A foreign file gives StorageError naming the path, and releases the lock."""
        db_path.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(StorageError, match=str(db_path)):
            await Queue.open(db_path)
        with pytest.raises(StorageError):
            await Queue.open(db_path)  # not QueueLockedError: the lock was given back

    async def test_a_database_from_a_newer_memq_is_refused(self, db_path: Path) -> None:
        """An old memq does not touch a schema it does not know."""
        async with await Queue.open(db_path) as queue:
            await queue.run_in_transaction(
                lambda tx: tx.execute("INSERT INTO schema_version VALUES (999, 'future', 0)")
            )
        with pytest.raises(SchemaError, match="newer"):
            await Queue.open(db_path)

    async def test_the_data_directory_is_created_private(self, tmp_path: Path) -> None:
        """A missing parent directory is created with mode 0700."""
        path = tmp_path / "new" / "dir" / "memq.db"
        async with await Queue.open(path, FAST):
            pass
        assert (path.parent.stat().st_mode & 0o777) == 0o700
