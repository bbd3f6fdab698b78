"""The disk reserve and the daemon's disk state, on real files, with a clock the test moves
and a free-space figure the test sets."""

from __future__ import annotations

import errno
import os
import sqlite3
from pathlib import Path
from types import SimpleNamespace

import pytest
from structlog.testing import capture_logs

from memq.cli.status_gather import offline_disk
from memq.cli.status_lines import disk_lines, status_problems
from memq.config import Settings
from memq.events import route_event
from memq.exceptions import DiskFullError, SettingError, StorageError
from memq.queue import is_out_of_space
from memq.worker.disk import CHECK_INTERVAL, MIN_MARGIN_BYTES, DiskMonitor, DiskState, Reserve
from memq.worker.http.routes import events as event_routes
from tests.helpers.clock import FakeClock
from tests.helpers.tmpfs import MIB, TmpfsUnavailable, fill_disk, mounted_tmpfs

KIB = 1024
RESERVE = 256 * KIB
FULL = DiskFullError("SQLite: database or disk is full")


class FreeSpace:
    """What ``os.statvfs`` would say, set by the test; counts the looks."""

    def __init__(self, free: int = 0) -> None:
        self.free = free
        self.looks = 0

    def __call__(self) -> int:
        self.looks += 1
        return self.free


def allocated(path: Path) -> int:
    return os.lstat(path).st_blocks * 512


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def space() -> FreeSpace:
    return FreeSpace()


@pytest.fixture
def reserve(tmp_path: Path) -> Reserve:
    return Reserve(tmp_path / "reserve", RESERVE)


@pytest.fixture
async def monitor(reserve: Reserve, clock: FakeClock, space: FreeSpace) -> DiskMonitor:
    made = DiskMonitor(reserve, clock=clock, free_space=space)
    await made.prepare()
    return made


class TestReserve:
    async def test_prepare_allocates_the_reserve(self, monitor: DiskMonitor) -> None:
        """Really allocated blocks, not a sparse file that would free nothing."""
        path = monitor.reserve.path
        assert path.stat().st_size == RESERVE
        assert allocated(path) >= RESERVE
        assert oct(path.stat().st_mode & 0o777) == oct(0o600)
        assert monitor.state is DiskState.OK

    async def test_a_sparse_file_is_made_a_real_reserve(self, reserve: Reserve) -> None:
        reserve.path.write_bytes(b"")
        os.truncate(reserve.path, RESERVE)
        assert allocated(reserve.path) < RESERVE
        assert reserve.create() is True
        assert allocated(reserve.path) >= RESERVE
        assert reserve.create() is False  # ready: nothing to do

    async def test_without_fallocate_zeros_are_written(
        self, reserve: Reserve, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def unsupported(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.EOPNOTSUPP, "not supported")

        monkeypatch.setattr(os, "posix_fallocate", unsupported)
        reserve.create()
        assert reserve.path.read_bytes() == bytes(RESERVE)
        assert allocated(reserve.path) >= RESERVE

    async def test_no_room_for_it_at_start_is_a_full_disk(
        self, reserve: Reserve, clock: FakeClock, space: FreeSpace, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Nothing half-made is left behind; the disk counts as full (events still taken)."""

        def no_room(fd: int, offset: int, length: int) -> None:
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(os, "posix_fallocate", no_room)
        monitor = DiskMonitor(reserve, clock=clock, free_space=space)
        with capture_logs() as logs:
            await monitor.prepare()
        assert not reserve.path.exists()
        assert monitor.state is DiskState.RESERVE_RELEASED
        assert monitor.accepting
        assert [e["event"] for e in logs] == ["disk.full"]

    async def test_a_symlink_is_never_followed(
        self, reserve: Reserve, tmp_path: Path, clock: FakeClock, space: FreeSpace
    ) -> None:
        target = tmp_path / "someone-elses"
        target.write_text("keep me")
        reserve.path.symlink_to(target)
        monitor = DiskMonitor(reserve, clock=clock, free_space=space)
        with capture_logs() as logs:
            await monitor.prepare()
        assert [e["event"] for e in logs] == ["disk.reserve_unavailable"]
        assert target.read_text() == "keep me"
        monitor.storage_failed(FULL)  # nothing of ours to release: the symlink stays
        assert reserve.path.is_symlink()
        assert monitor.state is DiskState.FULL

    async def test_size_zero_removes_a_reserve_left_over(
        self, reserve: Reserve, clock: FakeClock, space: FreeSpace
    ) -> None:
        reserve.create()
        monitor = DiskMonitor(Reserve(reserve.path, 0), clock=clock, free_space=space)
        await monitor.prepare()
        assert not reserve.path.exists()
        assert monitor.state is DiskState.OK


class TestStateMachine:
    async def test_the_first_out_of_space_error_releases_the_reserve(
        self, monitor: DiskMonitor
    ) -> None:
        """Released before anything is logged (the log needs room too); events still taken."""
        with capture_logs() as logs:
            monitor.storage_failed(FULL)
        assert not monitor.reserve.path.exists()
        assert monitor.state is DiskState.RESERVE_RELEASED
        assert monitor.accepting
        assert [e["event"] for e in logs] == ["disk.full", "disk.reserve_released"]
        assert logs[1]["bytes"] >= RESERVE

    async def test_the_next_one_refuses_new_events(self, monitor: DiskMonitor) -> None:
        monitor.storage_failed(FULL)
        with capture_logs() as logs:
            monitor.storage_failed(OSError(errno.ENOSPC, "No space left on device"))
        assert monitor.state is DiskState.FULL
        assert not monitor.accepting
        assert [e["event"] for e in logs] == ["disk.reserve_spent"]
        monitor.storage_failed(FULL)
        assert monitor.state is DiskState.FULL

    async def test_other_storage_errors_leave_the_disk_alone(self, monitor: DiskMonitor) -> None:
        monitor.storage_failed(StorageError("SQLite: database is locked"))
        monitor.storage_failed(OSError(errno.EIO, "Input/output error"))
        assert monitor.state is DiskState.OK
        assert monitor.reserve.is_ready()

    async def test_without_a_reserve_the_first_error_refuses_events(
        self, tmp_path: Path, clock: FakeClock, space: FreeSpace
    ) -> None:
        monitor = DiskMonitor(Reserve(tmp_path / "reserve", 0), clock=clock, free_space=space)
        await monitor.prepare()
        monitor.storage_failed(FULL)
        assert monitor.state is DiskState.FULL
        space.free = MIN_MARGIN_BYTES
        clock.advance(CHECK_INTERVAL)
        assert await monitor.check() is DiskState.OK

    async def test_free_space_is_looked_at_only_while_full_and_every_few_seconds(
        self, monitor: DiskMonitor, clock: FakeClock, space: FreeSpace
    ) -> None:
        clock.advance(60)
        await monitor.check()
        assert space.looks == 0  # all is well: no statvfs at all
        monitor.storage_failed(FULL)
        await monitor.check()
        assert space.looks == 0  # not yet due
        clock.advance(CHECK_INTERVAL - 0.1)
        await monitor.check()
        assert space.looks == 0
        clock.advance(0.1)
        await monitor.check()
        assert space.looks == 1
        await monitor.check()
        assert space.looks == 1
        clock.advance(CHECK_INTERVAL)
        await monitor.check()
        assert space.looks == 2

    async def test_room_for_reserve_and_margin_makes_the_reserve_again(
        self, monitor: DiskMonitor, clock: FakeClock, space: FreeSpace
    ) -> None:
        monitor.storage_failed(FULL)
        monitor.storage_failed(FULL)
        needed = RESERVE + monitor.margin
        space.free = needed - 1
        clock.advance(CHECK_INTERVAL)
        assert await monitor.check() is DiskState.RESERVE_RELEASED  # room for the margin only
        assert not monitor.reserve.path.exists()
        space.free = needed
        clock.advance(10)
        with capture_logs() as logs:
            assert await monitor.check() is DiskState.OK
        assert monitor.reserve.is_ready()
        (recovered,) = [e for e in logs if e["event"] == "disk.recovered"]
        assert recovered["full_for_seconds"] == CHECK_INTERVAL + 10
        assert monitor.report()["full_for_seconds"] is None

    async def test_full_takes_events_again_once_the_margin_is_free(
        self, monitor: DiskMonitor, clock: FakeClock, space: FreeSpace
    ) -> None:
        monitor.storage_failed(FULL)
        monitor.storage_failed(FULL)
        space.free = monitor.margin - 1
        clock.advance(CHECK_INTERVAL)
        assert await monitor.check() is DiskState.FULL
        space.free = monitor.margin
        clock.advance(CHECK_INTERVAL)
        assert await monitor.check() is DiskState.RESERVE_RELEASED
        assert monitor.accepting
        monitor.storage_failed(FULL)  # and back, should the room go again
        assert monitor.state is DiskState.FULL

    async def test_a_write_failing_while_the_reserve_is_made_keeps_the_room_free(
        self, tmp_path: Path, clock: FakeClock, space: FreeSpace
    ) -> None:
        """The reserve must not take the room a write needs right now."""

        watching: list[DiskMonitor] = []

        class Racing(Reserve):
            def create(self) -> bool:
                made = super().create()
                watching[0].storage_failed(FULL)  # a write ran out of space meanwhile
                return made

        racing = DiskMonitor(Racing(tmp_path / "reserve", RESERVE), clock=clock, free_space=space)
        watching.append(racing)
        racing.storage_failed(FULL)  # no reserve made yet: straight to FULL
        space.free = 10 * RESERVE
        clock.advance(CHECK_INTERVAL)
        assert await racing.check() is DiskState.FULL
        assert not racing.reserve.path.exists()

    async def test_the_report_says_disk_full(
        self, monitor: DiskMonitor, clock: FakeClock, space: FreeSpace
    ) -> None:
        assert monitor.report()["full"] is False
        assert monitor.message() is None
        monitor.storage_failed(FULL)
        clock.advance(3)
        space.free = 12345
        report = monitor.report()
        assert report["state"] == "reserve_released"
        assert report["full"] is True
        assert report["accepting"] is True
        assert report["reserve_present"] is False
        assert report["free_bytes"] == 12345
        assert report["full_for_seconds"] == 3
        assert report["message"].startswith("disk full: memq released its 256 KiB reserve")
        monitor.storage_failed(FULL)
        assert "cannot store new events" in (monitor.message() or "")
        assert monitor.report()["accepting"] is False


class TestOutOfSpace:
    def test_sqlite_full_is_out_of_space(self, tmp_path: Path) -> None:
        conn = sqlite3.connect(tmp_path / "x.db")
        conn.execute("CREATE TABLE t (b BLOB)")
        (pages,) = conn.execute("PRAGMA page_count").fetchone()
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(sqlite3.Error) as raised:
            conn.execute("INSERT INTO t VALUES (zeroblob(100000))")
        conn.close()
        assert is_out_of_space(raised.value)

    def test_other_errors_are_not(self) -> None:
        assert not is_out_of_space(sqlite3.OperationalError("database is locked"))
        assert not is_out_of_space(OSError(errno.EIO, "Input/output error"))
        assert not is_out_of_space(StorageError("SQLite: disk I/O error"))
        assert is_out_of_space(OSError(errno.EDQUOT, "Disk quota exceeded"))
        assert is_out_of_space(FULL)


class TestSetting:
    def test_reserve_bytes_defaults_to_32_mib(self) -> None:
        assert Settings.from_env({}).reserve_bytes == 32 * 1024 * 1024

    def test_zero_disables_and_a_bad_value_is_named(self) -> None:
        assert Settings.from_env({"MEMQ_RESERVE_BYTES": "0"}).reserve_bytes == 0
        with pytest.raises(SettingError, match="MEMQ_RESERVE_BYTES=-1"):
            Settings.from_env({"MEMQ_RESERVE_BYTES": "-1"})
        with pytest.raises(SettingError, match="MEMQ_RESERVE_BYTES"):
            Settings.from_env({"MEMQ_RESERVE_BYTES": "32M"})


class TestStatusWithoutDaemon:
    """``memq status`` with no daemon looks at the disk itself (the same ``disk`` shape)."""

    async def test_the_report_has_the_daemons_keys(
        self, tmp_path: Path, monitor: DiskMonitor
    ) -> None:
        report = offline_disk(str(tmp_path), RESERVE)
        assert set(report) == set(monitor.report())
        assert report["reserve_present"] is True  # the monitor fixture made it there
        assert report["full"] is False
        assert disk_lines({"disk": report}) == []

    def test_a_disk_with_no_room_is_full(self, tmp_path: Path) -> None:
        try:
            with mounted_tmpfs(tmp_path / "disk", 2 * MIB) as disk:
                fill_disk(disk / "filler")
                report = offline_disk(str(disk), RESERVE)
        except TmpfsUnavailable as why:
            pytest.skip(str(why))
        assert report["full"] is True
        assert report["free_bytes"] == 0
        assert status_problems({"disk": report}) == [report["message"]]
        assert disk_lines({"disk": report})[0].startswith("DISK      disk full: 0 KiB free")


class TestIntake:
    async def test_with_the_reserve_spent_events_are_refused_without_a_write(
        self, monitor: DiskMonitor
    ) -> None:
        """No write is even tried (``queue`` and ``forks`` are absent here): the refusal
        names the full disk, and the API answers it with 503 ``disk_full``."""
        monitor.storage_failed(FULL)
        monitor.storage_failed(FULL)
        services = SimpleNamespace(disk=monitor, queue=None, forks=None)
        route = route_event({"hook_event_name": "Stop", "session_id": "s"})
        with pytest.raises(DiskFullError, match="disk full: memq cannot store new events"):
            await event_routes._store_event(services, route, {}, None)  # type: ignore[arg-type]
