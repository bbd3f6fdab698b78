"""The daemon's intake of the spool on a real queue and real files (issue 19.1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memq.events import route_event
from memq.exceptions import StorageError
from memq.hooks import fallback, spool
from memq.hooks.spool import SpooledEvent
from memq.queue import Queue
from memq.worker.forks import ForkLinker
from memq.worker.spool_intake import QueueTarget, SpoolIntake, take_in_to
from tests.helpers.rows import all_rows

LIMIT = 1024 * 1024


def payload(tool_use_id: str, session: str = "s1", **extra: Any) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "tool_name": "Bash",
        "tool_use_id": tool_use_id,
        "tool_response": {"stdout": "é ok\n"},
        "memq_event_id": f"id-{tool_use_id}",
        **extra,
    }


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()


def spool_event(home: Path, event: dict[str, Any], now_ms: int = 1) -> Path:
    return Path(spool.write_event(str(home), route_event(event), body_of(event), now_ms=now_ms))


def intake_for(queue: Queue, home: Path, notified: list[str] | None = None) -> SpoolIntake:
    woken = notified if notified is not None else []
    return SpoolIntake(
        home, QueueTarget(queue, ForkLinker(queue), woken.append), max_body_bytes=LIMIT
    )


def waiting(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "spool").iterdir() if p.is_file())


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


class TestTakingIn:
    async def test_oldest_first_each_file_deleted_once_stored(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        for ms, tool in ((3, "c"), (1, "a"), (2, "b")):
            spool_event(tmp_path, payload(tool), now_ms=ms)
        notified: list[str] = []
        report = await intake_for(queue, tmp_path, notified).take_in()
        assert (report.taken, report.duplicates, report.rejected, report.waiting) == (3, 0, 0, 0)
        rows = all_rows(tmp_path / "memq.db")
        assert [r["dedupe_key"] for r in rows] == ["tool:a", "tool:b", "tool:c"]
        assert waiting(tmp_path) == []
        assert notified == ["claude-code:s1"] * 3

    async def test_a_large_spool_keeps_its_order_and_commits_in_batches(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        """Six hundred events of one session (three chunks): stored in file order, with
        far fewer commits than events."""
        for ms in range(600):
            spool_event(tmp_path, payload(f"t{ms:03d}"), now_ms=1000 + ms)
        before = queue._writer.batches
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.waiting) == (600, 0)
        keys = [r["dedupe_key"] for r in all_rows(tmp_path / "memq.db")]
        assert keys == [f"tool:t{ms:03d}" for ms in range(600)]
        assert queue._writer.batches - before <= 12
        assert waiting(tmp_path) == []

    async def test_the_row_is_the_one_the_direct_write_makes(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        """Same session, kind, dedupe key and payload text as ``fallback.store_directly``."""
        spooled, direct = payload("t1", session="spooled"), payload("t1", session="direct")
        spool_event(tmp_path, spooled)
        await intake_for(queue, tmp_path).take_in()
        fallback.store_directly(str(tmp_path), route_event(direct), body_of(direct), 5.0)
        by_session = {r["session_id"]: r for r in all_rows(tmp_path / "memq.db")}
        a, b = by_session["claude-code:spooled"], by_session["claude-code:direct"]
        assert (a["kind"], a["dedupe_key"], a["status"]) == (b["kind"], b["dedupe_key"], "pending")
        assert a["payload"] == body_of(spooled).decode()
        assert b["payload"] == body_of(direct).decode()

    async def test_an_event_the_database_already_holds_is_not_stored_twice(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        event = payload("t1")
        fallback.store_directly(str(tmp_path), route_event(event), body_of(event), 5.0)
        spool_event(tmp_path, event)
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.duplicates) == (0, 1)
        assert len(all_rows(tmp_path / "memq.db")) == 1
        assert waiting(tmp_path) == []

    async def test_a_file_left_after_its_commit_is_a_duplicate_next_time(
        self, queue: Queue, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A crash (here: a failing unlink) between the commit and the delete costs nothing."""
        spool_event(tmp_path, payload("t1"))
        real_unlink = os.unlink

        def refuse(path: Any, *args: Any, **kwargs: Any) -> None:
            raise PermissionError(13, "Permission denied")

        monkeypatch.setattr(os, "unlink", refuse)
        first = await intake_for(queue, tmp_path).take_in()
        assert first.taken == 1
        assert len(waiting(tmp_path)) == 1
        monkeypatch.setattr(os, "unlink", real_unlink)
        second = await intake_for(queue, tmp_path).take_in()
        assert (second.taken, second.duplicates) == (0, 1)
        assert len(all_rows(tmp_path / "memq.db")) == 1
        assert waiting(tmp_path) == []

    async def test_files_stay_while_the_queue_cannot_store(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        """A full disk, a lock held too long: the pass stops, every file stays for the next."""
        for ms in (1, 2, 3):
            spool_event(tmp_path, payload(f"t{ms}"), now_ms=ms)

        class Full:
            calls = 0

            async def link(self, event: SpooledEvent, body: dict[str, Any]) -> None:
                return None

            async def store(self, event: SpooledEvent, body: dict[str, Any]) -> bool:
                self.calls += 1
                raise StorageError("database or disk is full")

        full = Full()
        report = await SpoolIntake(tmp_path, full, max_body_bytes=LIMIT).take_in()
        assert (report.taken, report.waiting, full.calls) == (0, 3, 3)
        assert len(waiting(tmp_path)) == 3
        assert (await intake_for(queue, tmp_path).take_in()).taken == 3
        assert waiting(tmp_path) == []

    async def test_nothing_to_do_without_a_spool(self, queue: Queue, tmp_path: Path) -> None:
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.rejected, report.waiting) == (0, 0, 0)

    async def test_take_in_to_a_database_with_no_daemon(self, tmp_path: Path) -> None:
        """What ``memq repair`` calls after it built a new database."""
        spool_event(tmp_path, payload("t1"))
        report = await take_in_to(tmp_path / "memq.db", tmp_path, max_body_bytes=LIMIT)
        assert report.taken == 1
        assert [r["dedupe_key"] for r in all_rows(tmp_path / "memq.db")] == ["tool:t1"]


class TestRejected:
    @pytest.mark.parametrize(
        ("content", "reason"),
        [
            (b"garbage", "no header line"),
            (b'{"memq_spool":1}\n{}', "not a memq spool header"),
            (
                json.dumps(
                    {
                        "memq_spool": 1,
                        "session_key": "claude-code:s1",
                        "kind": "no-such-kind",
                        "dedupe_key": "k",
                        "event": "PostToolUse",
                        "spooled_at": 1,
                        "body_bytes": 2,
                    }
                ).encode()
                + b"\n{}",
                "unknown message kind",
            ),
            (
                json.dumps(
                    {
                        "memq_spool": 1,
                        "session_key": "claude-code:s1",
                        "kind": "observation",
                        "dedupe_key": "k",
                        "event": "PostToolUse",
                        "spooled_at": 1,
                        "body_bytes": 5,
                    }
                ).encode()
                + b"\nnope!",
                "not valid JSON",
            ),
        ],
    )
    async def test_an_unusable_file_is_moved_aside_never_deleted(
        self, queue: Queue, tmp_path: Path, content: bytes, reason: str
    ) -> None:
        (tmp_path / "spool").mkdir(mode=0o700)
        bad = tmp_path / "spool" / "0000000000001-1-aa.event"
        bad.write_bytes(content)
        spool_event(tmp_path, payload("good"), now_ms=2)
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.rejected) == (1, 1)
        assert (tmp_path / "spool" / "rejected" / bad.name).read_bytes() == content
        assert not bad.exists()
        assert spool.count_rejected(str(tmp_path)) == 1
        assert [r["dedupe_key"] for r in all_rows(tmp_path / "memq.db")] == ["tool:good"]

    async def test_a_rejected_name_taken_already_keeps_both(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        (tmp_path / "spool" / "rejected").mkdir(parents=True)
        (tmp_path / "spool" / "rejected" / "1-1-aa.event").write_bytes(b"first")
        (tmp_path / "spool" / "1-1-aa.event").write_bytes(b"second")
        await intake_for(queue, tmp_path).take_in()
        kept = sorted(p.read_bytes() for p in (tmp_path / "spool" / "rejected").iterdir())
        assert kept == [b"first", b"second"]


class TestTemporaryFiles:
    def temporary(self, home: Path, pid: int, content: bytes, age: float) -> Path:
        (home / "spool").mkdir(mode=0o700, exist_ok=True)
        path = home / "spool" / f".0000000000005-{pid}-cc.event.tmp"
        path.write_bytes(content)
        then = time.time() - age
        os.utime(path, (then, then))
        return path

    def complete(self, event: dict[str, Any]) -> bytes:
        route, body = route_event(event), body_of(event)
        head = {
            "memq_spool": 1,
            "session_key": route.session_key,
            "kind": route.kind,
            "dedupe_key": route.dedupe_key,
            "event": route.event,
            "spooled_at": 5,
            "body_bytes": len(body),
        }
        return json.dumps(head).encode() + b"\n" + body

    async def test_a_complete_file_whose_hook_died_before_its_rename_is_taken_in(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        path = self.temporary(tmp_path, dead_pid(), self.complete(payload("t1")), age=120)
        report = await intake_for(queue, tmp_path).take_in()
        assert report.taken == 1
        assert not path.exists()

    async def test_a_half_written_file_of_a_dead_hook_is_moved_aside(
        self, queue: Queue, tmp_path: Path
    ) -> None:
        path = self.temporary(tmp_path, dead_pid(), self.complete(payload("t1"))[:-3], age=120)
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.rejected) == (0, 1)
        assert not path.exists()
        assert (tmp_path / "spool" / "rejected" / path.name.lstrip(".")).exists()

    @pytest.mark.parametrize(("alive", "age"), [(True, 120.0), (False, 5.0)])
    async def test_a_file_a_hook_may_still_be_writing_is_left_alone(
        self, queue: Queue, tmp_path: Path, alive: bool, age: float
    ) -> None:
        pid = os.getpid() if alive else dead_pid()
        path = self.temporary(tmp_path, pid, b'{"memq_spool":1,', age=age)
        report = await intake_for(queue, tmp_path).take_in()
        assert (report.taken, report.rejected) == (0, 0)
        assert path.read_bytes() == b'{"memq_spool":1,'
