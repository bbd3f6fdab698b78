"""A real, small filesystem to fill up: a tmpfs mounted for one test (root only)."""

from __future__ import annotations

import contextlib
import errno
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

MIB = 1024 * 1024


class TmpfsUnavailable(Exception):
    """No tmpfs can be mounted here; the message says why."""


@contextlib.contextmanager
def mounted_tmpfs(directory: Path, size_bytes: int) -> Iterator[Path]:
    """Mount a tmpfs of ``size_bytes`` on ``directory`` (created), yield it, and unmount it
    whatever happens. Raises ``TmpfsUnavailable`` when not root or the mount fails."""
    if os.geteuid() != 0:
        raise TmpfsUnavailable("mounting a tmpfs needs root")
    directory.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_bytes},mode=0755", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        raise TmpfsUnavailable(f"mount -t tmpfs failed: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        # Lazy: a daemon killed a moment ago may still hold a file open in it.
        subprocess.run(["umount", "-l", str(directory)], capture_output=True, check=False)


def free_bytes(directory: Path) -> int:
    info = os.statvfs(directory)
    return info.f_bavail * info.f_frsize


def fill_disk(path: Path) -> int:
    """Grow the file at ``path`` until its filesystem has no room left; returns the bytes
    it holds. Unbuffered writes, in chunks that shrink down to one byte, so that not one
    block stays free."""
    chunk = 1 * MIB
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        while chunk >= 1:
            try:
                os.write(fd, b"\xff" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                chunk //= 4
        os.fsync(fd)
    finally:
        os.close(fd)
    return path.stat().st_size
