"""A full disk: the reserve ("ballast") file, and the daemon's disk state.

At start the daemon makes ``MEMQ_HOME/reserve``: ``reserve_bytes`` of really allocated
blocks, fsynced. On the first write that runs out of space it deletes the reserve, so memq
goes on taking events and finishing work in the room that frees, and reports "disk full"
(``memq status``, ``/api/health``, the log). Only when writes run out of space again, the
reserve spent too, does it refuse new events (503 with the reason; the hook keeps them in its
spool). While the disk is full it looks at the free space every few seconds; once there is
room for the reserve and a margin, it makes the reserve again and is back to ``OK``::

    OK ──out of space──> RESERVE_RELEASED ──out of space──> FULL
     ^                     │        ^                          │
     └─ room for reserve ──┘        └──── room for a margin ───┘
        and a margin

With no reserve to release (``reserve_bytes = 0``, or the file could not be made), the first
out-of-space error leads straight to ``FULL``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.file_sync import sync_directory
from memq.queue import SYSTEM_CLOCK, Clock, is_out_of_space

log = structlog.get_logger("memq.disk")

MIB: Final = 1024 * 1024
# Free space needed, besides the reserve itself, before memq calls the disk usable again:
# as much as the reserve, and never less than this.
MIN_MARGIN_BYTES: Final = 1 * MIB
CHECK_INTERVAL: Final = 2.0  # seconds between looks at the free space while the disk is full
ZERO_CHUNK_BYTES: Final = 1 * MIB
# posix_fallocate is not supported here (some filesystems): write zeros instead.
NO_FALLOCATE: Final = frozenset({errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS})


class DiskState(StrEnum):
    """How the disk under ``MEMQ_HOME`` is, as the daemon sees it."""

    OK = "ok"  # the reserve is in place (or none is configured); writes succeed
    RESERVE_RELEASED = "reserve_released"  # out of space once: memq goes on in the reserve's room
    FULL = "full"  # out of space with the reserve spent: new events are refused


class Reserve:
    """The reserve file: ``size`` bytes of allocated blocks at ``path`` (0: none)."""

    def __init__(self, path: Path, size: int) -> None:
        if size < 0:
            raise ValueError(f"the reserve's size must not be negative, not {size}")
        self.path = path
        self.size = size

    def exists(self) -> bool:
        """Whether a regular file is at the path (never followed through a symlink)."""
        try:
            return stat.S_ISREG(os.lstat(self.path).st_mode)
        except OSError:
            return False

    def is_ready(self) -> bool:
        """Whether the file is there, ``size`` bytes long, with its blocks allocated."""
        try:
            info = os.lstat(self.path)
        except OSError:
            return False
        return (
            stat.S_ISREG(info.st_mode)
            and info.st_size == self.size
            and info.st_blocks * 512 >= self.size
        )

    def create(self) -> bool:
        """Make the file (blocking): allocate its blocks (``posix_fallocate``, else zeros),
        fsync it and its directory. Returns False when it was ready already.

        Raises ``OSError`` (ENOSPC when there is no room: nothing is left behind then).
        """
        if self.is_ready():
            return False
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(self.path, flags, 0o600)
        try:
            _check_regular(fd, self.path)
            _allocate(fd, self.size)
            os.ftruncate(fd, self.size)  # a longer file left by a larger setting
            os.fsync(fd)
        except BaseException:
            os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(self.path)  # half a reserve is no reserve, and takes room
            raise
        os.close(fd)
        sync_directory(self.path.parent)
        return True

    def release(self) -> int:
        """Delete the file; returns the bytes it held (0: there was no reserve)."""
        try:
            info = os.lstat(self.path)
            if not stat.S_ISREG(info.st_mode):
                return 0  # not memq's reserve: left alone
            os.unlink(self.path)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            log.warning("disk.reserve_release_failed", path=str(self.path), error=str(exc))
            return 0
        return max(info.st_blocks * 512, info.st_size)


def _check_regular(fd: int, path: Path) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise OSError(errno.EINVAL, "not a regular file", str(path))


def _allocate(fd: int, size: int) -> None:
    if size == 0:
        return
    try:
        os.posix_fallocate(fd, 0, size)
    except AttributeError:
        pass  # a platform without posix_fallocate
    except OSError as exc:
        if exc.errno not in NO_FALLOCATE:
            raise
    else:
        return
    chunk = bytes(min(ZERO_CHUNK_BYTES, size))
    os.lseek(fd, 0, os.SEEK_SET)
    written = 0
    while written < size:
        written += os.write(fd, chunk[: size - written])


def free_bytes_at(path: Path) -> int:
    """Bytes an unprivileged process may still write on the filesystem of ``path``."""
    info = os.statvfs(path)
    return info.f_bavail * info.f_frsize


class DiskMonitor:
    """The daemon's disk state (see the module docstring).

    Args:
        reserve: the reserve file.
        clock: when things happen (``monotonic`` paces the checks; ``now`` dates them).
        free_space: bytes free on the reserve's filesystem (``os.statvfs`` by default).
        check_interval: seconds between looks at the free space while not ``OK``.
    """

    def __init__(
        self,
        reserve: Reserve,
        *,
        clock: Clock = SYSTEM_CLOCK,
        free_space: Callable[[], int] | None = None,
        check_interval: float = CHECK_INTERVAL,
    ) -> None:
        self.reserve = reserve
        self._clock = clock
        self._free_space = free_space or (lambda: free_bytes_at(reserve.path.parent))
        self.check_interval = check_interval
        self.state = DiskState.OK
        self._since: float | None = None  # clock.monotonic() when the disk filled up
        self._since_ms: int | None = None  # clock.now() then, for the report
        self._next_check = 0.0
        self._failures = 0  # out-of-space errors seen, ever
        self.last_error: str | None = None

    @property
    def margin(self) -> int:
        """Free bytes wanted besides the reserve before the disk counts as usable again."""
        return max(self.reserve.size, MIN_MARGIN_BYTES)

    @property
    def accepting(self) -> bool:
        """Whether new events are taken (refused only when the reserve is spent too)."""
        return self.state is not DiskState.FULL

    # -- start -----------------------------------------------------------------------------

    async def prepare(self) -> None:
        """Make the reserve (or delete one left over when the setting is 0). No room for it
        counts as a full disk; any other problem is logged, and memq runs without it."""
        reserve = self.reserve
        if reserve.size == 0:
            freed = await anyio.to_thread.run_sync(reserve.release) if reserve.exists() else 0
            if freed:
                log.info("disk.reserve_removed", path=str(reserve.path), bytes=freed, why="size 0")
            return
        try:
            created = await anyio.to_thread.run_sync(reserve.create)
        except OSError as exc:
            self._no_reserve_at_start(exc)
            return
        log.info("disk.reserve_ready", path=str(reserve.path), bytes=reserve.size, created=created)

    def _no_reserve_at_start(self, error: OSError) -> None:
        if not is_out_of_space(error):
            log.warning("disk.reserve_unavailable", path=str(self.reserve.path), error=str(error))
            return
        self._filled(error)
        self.state = DiskState.RESERVE_RELEASED
        log.error(
            "disk.full",
            error=str(error),
            free_bytes=self._free_or_none(),
            action="no room for the reserve at start; made once there is room",
        )

    # -- events ----------------------------------------------------------------------------

    def storage_failed(self, error: BaseException) -> None:
        """A write failed (``Queue.on_storage_error``). Out of space: release the reserve, or,
        with the reserve spent, refuse new events. Other errors are not the disk's."""
        if not is_out_of_space(error):
            return
        self._failures += 1
        self.last_error = str(error)
        if self.state is DiskState.OK:
            self._filled(error)
            # Released before anything is logged: the log lives on the same disk.
            freed = self.reserve.release() if self.reserve.size else 0
            if freed:
                self.state = DiskState.RESERVE_RELEASED
                log.error("disk.full", error=str(error), action="reserve released; memq goes on")
                log.warning("disk.reserve_released", path=str(self.reserve.path), bytes=freed)
            else:
                self.state = DiskState.FULL
                log.error(
                    "disk.full",
                    error=str(error),
                    action="no reserve to release; new events are refused",
                )
        elif self.state is DiskState.RESERVE_RELEASED:
            self.state = DiskState.FULL
            log.error(
                "disk.reserve_spent",
                error=str(error),
                action="new events are refused until space is freed",
            )

    def _filled(self, error: BaseException) -> None:
        self.last_error = str(error)
        self._since = self._clock.monotonic()
        self._since_ms = int(self._clock.now())
        self._next_check = self._since + self.check_interval

    async def check(self) -> DiskState:
        """While the disk is full, and at most once per ``check_interval``: look at the free
        space, and with room enough make the reserve again (``OK``), or, from ``FULL``, take
        new events again once there is room for the margin. Returns the state."""
        now = self._clock.monotonic()
        if self.state is DiskState.OK or now < self._next_check:
            return self.state
        self._next_check = now + self.check_interval
        free = self._free_or_none()
        if free is None:
            return self.state
        if free >= self.reserve.size + self.margin:
            if await self._remake_reserve():
                self._recovered(free)
        elif self.state is DiskState.FULL and free >= self.margin:
            self.state = DiskState.RESERVE_RELEASED
            log.info(
                "disk.space_back",
                free_bytes=free,
                action="taking new events again; the reserve follows once there is room",
            )
        return self.state

    async def _remake_reserve(self) -> bool:
        """Make the reserve again; False when the room went meanwhile."""
        if self.reserve.size == 0:
            return True
        failures = self._failures
        try:
            await anyio.to_thread.run_sync(self.reserve.create)
        except OSError as exc:
            log.warning("disk.reserve_unavailable", path=str(self.reserve.path), error=str(exc))
            return not is_out_of_space(exc)  # another problem: go on without a reserve
        if self._failures != failures:
            # A write ran out of space while the reserve was made: that room is needed now.
            self.reserve.release()
            return False
        return True

    def _recovered(self, free: int) -> None:
        full_for = None if self._since is None else self._clock.monotonic() - self._since
        self.state = DiskState.OK
        self._since = self._since_ms = None
        log.info(
            "disk.recovered",
            free_bytes=free,
            reserve_bytes=self.reserve.size,
            full_for_seconds=None if full_for is None else round(full_for, 1),
        )

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Check the disk (``check``) until cancelled; start it in the daemon's task group."""
        task_status.started()
        tick = min(1.0, self.check_interval)
        while True:
            await anyio.sleep(tick)
            await self.check()

    # -- reporting -------------------------------------------------------------------------

    def _free_or_none(self) -> int | None:
        try:
            return self._free_space()
        except OSError as exc:
            log.warning("disk.statvfs_failed", error=str(exc))
            return None

    def message(self) -> str | None:
        """What to tell a person about the disk; None when all is well."""
        where = self.reserve.path.parent
        if self.state is DiskState.RESERVE_RELEASED:
            held = f"its {_size(self.reserve.size)} reserve" if self.reserve.size else "its reserve"
            return (
                f"disk full: memq released {held} and goes on taking events; "
                f"free some space on the disk of {where}"
            )
        if self.state is DiskState.FULL:
            return (
                "disk full: memq cannot store new events, its reserve spent too (the hook keeps "
                f"them in its spool); free some space on the disk of {where}"
            )
        return None

    def report(self) -> dict[str, Any]:
        """The disk part of ``/api/status`` and ``/api/health``."""
        since = self._since
        return {
            "state": self.state.value,
            "full": self.state is not DiskState.OK,
            "accepting": self.accepting,
            "message": self.message(),
            "reserve_path": str(self.reserve.path),
            "reserve_bytes": self.reserve.size,
            "reserve_present": self.reserve.exists(),
            "free_bytes": self._free_or_none(),
            "full_since_ms": self._since_ms,
            "full_for_seconds": (
                None if since is None else round(self._clock.monotonic() - since, 1)
            ),
            "last_error": self.last_error,
        }


def _size(n: int) -> str:
    """``n`` bytes for a person: "32 MiB", "1.5 GiB", "256 KiB"."""
    for unit, scale in (("GiB", 1024**3), ("MiB", MIB), ("KiB", 1024)):
        if n >= scale:
            value = n / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{n} bytes"
