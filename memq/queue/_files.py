"""The database's files under the daemon: are they still the ones it has open, and the rescue
when they are not.

A cleanup script or a sync tool that deletes ``memq.db-wal`` (or ``memq.db``) under a running
daemon does not stop SQLite: its connections go on writing to the open, now nameless, files,
and everything they hold disappears when the process ends. So the queue records which files it
opened (device and inode of the database, its WAL and its shared-memory index, and a
descriptor of its own on the database for the link count) and compares them with what is at
those paths (``DatabaseFiles.check``). When they differ, the queue copies what its connection
sees with SQLite's backup API into a new file beside the path (``open_backup`` / ``seal``)
and puts it in place (``install``).

Why installing before the old connections close is safe: when a connection closes, SQLite
checkpoints and deletes the WAL *by its path*, which would delete the new file's WAL; but it
skips both when the database file it has open is no longer the one at its path (SQLite's
``databaseIsUnmoved`` in ``sqlite3PagerClose``), which is exactly the case once the new file
is there. ``tests/integration/test_replaced_files.py`` checks it.

A file found at the path that is not the queue's own (a hook's fallback created a fresh
database there while ``memq.db`` was missing) is never deleted or overwritten: it is renamed
``memq.db.replaced-<stamp>`` (with its ``-wal`` and ``-shm``, so that SQLite pairs them again)
and its unfinished queue rows are taken into the installed file, with the same dedupe keys.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import stat
import time
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Final, NamedTuple

from memq.file_sync import sync_directory
from memq.storage import connection
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("rescue")
WAL_SUFFIX: Final = "-wal"
SHM_SUFFIX: Final = "-shm"
RESCUE_INFIX: Final = ".rescue-"  # memq.db.rescue-<stamp>: a complete saved copy
PARTIAL_SUFFIX: Final = ".partial"  # memq.db.rescue-<stamp>.partial: a copy being written
REPLACED_INFIX: Final = ".replaced-"  # memq.db.replaced-<stamp>: a file found at the path
COPY_CHUNK: Final = 1024 * 1024
INSTALL_ATTEMPTS: Final = 5
_CLOEXEC: Final = getattr(os, "O_CLOEXEC", 0)


class FileProblem(StrEnum):
    """How the files at the database's paths differ from the ones the queue has open."""

    DATABASE_MISSING = "database file missing"
    DATABASE_REPLACED = "another file at the database's path"
    DATABASE_UNLINKED = "open database file unlinked (link count 0)"
    WAL_MISSING = "WAL file missing"
    WAL_REPLACED = "another file at the WAL's path"
    SHM_MISSING = "shared-memory file missing"
    SHM_REPLACED = "another file at the shared-memory file's path"


class FileId(NamedTuple):
    """A file's identity: device and inode."""

    dev: int
    ino: int

    @classmethod
    def of(cls, st: os.stat_result) -> FileId:
        return cls(st.st_dev, st.st_ino)


def wal_path(path: Path) -> Path:
    """Where SQLite keeps ``path``'s write-ahead log."""
    return path.with_name(path.name + WAL_SUFFIX)


def shm_path(path: Path) -> Path:
    """Where SQLite keeps ``path``'s shared-memory index."""
    return path.with_name(path.name + SHM_SUFFIX)


def _identity(path: str | Path) -> FileId | None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return None
    return FileId(st.st_dev, st.st_ino)


class DatabaseFiles:
    """The identity of the database files a queue has open, and a read-only descriptor on
    the database that makes its link count observable.

    Close it only after every SQLite connection to the file is closed: POSIX advisory locks
    belong to a process and an inode, so closing *any* descriptor of the file drops the
    locks SQLite holds on it. The descriptor is never written through.
    """

    def __init__(
        self, path: Path, fd: int, database: FileId, wal: FileId | None, shm: FileId | None
    ) -> None:
        self.path = path
        self._fd: int | None = fd
        self.database = database
        self.wal = wal
        self.shm = shm
        # As text, once: the check runs after every commit that accepts events.
        self._paths = (str(path), str(wal_path(path)), str(shm_path(path)))

    @classmethod
    def open(cls, path: Path) -> DatabaseFiles:
        """Record the files now at ``path`` (open the queue's connections, and read once so
        that the WAL exists, first)."""
        fd = os.open(path, os.O_RDONLY | _CLOEXEC)
        try:
            database = FileId.of(os.fstat(fd))
        except BaseException:
            os.close(fd)
            raise
        return cls(path, fd, database, _identity(wal_path(path)), _identity(shm_path(path)))

    @property
    def fd(self) -> int:
        """The descriptor on the database file (``ValueError`` once closed)."""
        if self._fd is None:
            raise ValueError(f"{self.path}: the identity descriptor is closed")
        return self._fd

    def check(self) -> tuple[FileProblem, ...]:
        """What differs between the files at the paths and the ones recorded; empty when
        they are the same. Three ``stat`` calls and an ``fstat``."""
        database, wal, shm = self._paths
        problems: list[FileProblem] = []
        if self._fd is not None and os.fstat(self._fd).st_nlink == 0:
            problems.append(FileProblem.DATABASE_UNLINKED)
        problems += _compare(
            self.database,
            _identity(database),
            FileProblem.DATABASE_MISSING,
            FileProblem.DATABASE_REPLACED,
        )
        if self.wal is None:
            # SQLite had not created it yet when the queue opened: the first one is its own.
            self.wal = _identity(wal)
        else:
            problems += _compare(
                self.wal, _identity(wal), FileProblem.WAL_MISSING, FileProblem.WAL_REPLACED
            )
        if self.shm is None:
            self.shm = _identity(shm)
        else:
            problems += _compare(
                self.shm, _identity(shm), FileProblem.SHM_MISSING, FileProblem.SHM_REPLACED
            )
        return tuple(problems)

    def close(self) -> None:
        """Close the descriptor (after SQLite's connections to the file). Safe twice."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _compare(
    recorded: FileId, found: FileId | None, missing: FileProblem, replaced: FileProblem
) -> list[FileProblem]:
    if found is None:
        return [missing]
    return [] if found == recorded else [replaced]


# -- saving a copy --------------------------------------------------------------------------


def new_stamp() -> str:
    """A UTC time stamp for file names, to the microsecond."""
    now = time.time()
    micros = int(now * 1_000_000) % 1_000_000
    return time.strftime("%Y%m%dT%H%M%S", time.gmtime(now)) + f".{micros:06d}Z"


def rescue_path(path: Path, stamp: str) -> Path:
    """Where the complete saved copy of ``path`` goes until it is installed."""
    return path.with_name(path.name + RESCUE_INFIX + stamp)


def open_backup(path: Path, stamp: str) -> tuple[sqlite3.Connection, Path]:
    """A new, empty, private (0600) database beside ``path`` for SQLite's backup API to
    write into, and its name. The connection may be used from another thread."""
    partial = rescue_path(path, stamp).with_name(rescue_path(path, stamp).name + PARTIAL_SUFFIX)
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600))
    try:
        target = sqlite3.connect(partial, isolation_level=None, check_same_thread=False)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target, partial


def seal(partial: Path, path: Path, stamp: str) -> Path:
    """Make the finished backup ``partial`` durable and give it its complete name (a file
    with that name is a whole copy, which ``install_leftover`` may install after a crash)."""
    fd = os.open(partial, os.O_RDONLY | _CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    final = rescue_path(path, stamp)
    os.rename(partial, final)
    sync_directory(final.parent)
    return final


# -- putting it in place --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Installed:
    """What ``install`` did.

    Args:
        path: where the saved copy now is (the database's path).
        kept_aside: files found at the paths that were not the queue's own, renamed.
        taken_in: queue rows taken in from those files.
        unreadable: files kept aside whose rows could not be read, with the reason.
    """

    path: Path
    kept_aside: tuple[Path, ...]
    taken_in: int
    unreadable: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Replacement:
    """What a queue found at its database's paths, and what it did: saved what it held and
    put it at the path (``installed``)."""

    problems: tuple[FileProblem, ...]
    installed: Installed


def install(path: Path, saved: Path, *, files: DatabaseFiles | None, stamp: str) -> Installed:
    """Put the saved copy ``saved`` at ``path``.

    What is at the database's three paths first makes room: the queue's own files
    (``files``; None means none is the queue's own) are unlinked, their content is in the
    copy; anything else is renamed aside, never overwritten or deleted, and its unfinished
    queue rows are then taken into the installed file. A file that appears at the path while
    this runs is moved aside too (the copy goes in by ``link``, which never replaces).
    """
    if _lidentity(path) == FileId.of(os.lstat(saved)):
        # Linked in before a crash, the copy's own name not yet removed: nothing to move.
        os.unlink(saved)
        sync_directory(path.parent)
        return Installed(path, (), 0, ())
    kept: list[Path] = []
    databases: list[Path] = []
    for _ in range(INSTALL_ATTEMPTS):
        aside, aside_database = _make_room(path, files, stamp, len(kept))
        kept += aside
        if aside_database is not None:
            databases.append(aside_database)
        try:
            os.link(saved, path)
        except FileExistsError:
            continue  # created at the path just now: moved aside on the next round
        break
    else:
        raise FileExistsError(f"{path}: another file kept appearing at the database's path")
    os.unlink(saved)
    sync_directory(path.parent)
    taken, unreadable = 0, []
    for database in databases:
        try:
            taken += take_in(path, database)
        except (sqlite3.Error, OSError) as exc:
            unreadable.append(f"{database.name}: {exc}")
    return Installed(path, tuple(kept), taken, tuple(unreadable))


def _make_room(
    path: Path, files: DatabaseFiles | None, stamp: str, round_: int
) -> tuple[list[Path], Path | None]:
    """Clear the three paths; returns what was renamed aside and the database among it."""
    wal, shm = wal_path(path), shm_path(path)
    found = {p: _lidentity(p) for p in (path, wal, shm)}
    own = {path: files.database, wal: files.wal, shm: files.shm} if files else {}

    def ours(p: Path) -> bool:
        return found[p] is not None and found[p] == own.get(p)

    foreign_wal = found[wal] is not None and not ours(wal)
    aside = _aside_name(path, stamp if round_ == 0 else f"{stamp}-{round_}")
    kept: list[Path] = []
    database: Path | None = None
    if found[path] is not None:
        if ours(path):
            if foreign_wal and files is not None:
                # Another process wrote a WAL against the queue's own file: keep that pair
                # aside, as a copy of the file (opening the original here would share the
                # old connections' locks and index) and the WAL renamed beside it.
                _copy_from_fd(files.fd, aside)
                kept.append(aside)
                database = aside
            os.unlink(path)
        else:
            os.rename(path, aside)
            kept.append(aside)
            database = aside
    for p, suffix in ((wal, WAL_SUFFIX), (shm, SHM_SUFFIX)):
        if found[p] is None:
            continue
        if ours(p):
            os.unlink(p)
        else:
            target = aside.with_name(aside.name + suffix)
            os.rename(p, target)
            kept.append(target)
    return kept, database


def _lidentity(path: Path) -> FileId | None:
    try:
        return FileId.of(os.lstat(path))
    except FileNotFoundError:
        return None


def _aside_name(path: Path, stamp: str) -> Path:
    base = path.with_name(path.name + REPLACED_INFIX + stamp)
    candidate, n = base, 1
    while any(os.path.lexists(str(candidate) + s) for s in ("", WAL_SUFFIX, SHM_SUFFIX)):
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _copy_from_fd(fd: int, target: Path) -> None:
    """Copy the file open as ``fd`` to a new private file ``target``, through ``fd``: opening
    the source again and closing it would drop the locks SQLite holds on it."""
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _CLOEXEC, 0o600)
    try:
        offset = 0
        while chunk := os.pread(fd, COPY_CHUNK, offset):
            view = memoryview(chunk)
            while view:
                view = view[os.write(out, view) :]
            offset += len(chunk)
        os.fsync(out)
    finally:
        os.close(out)


def take_in(path: Path, aside: Path) -> int:
    """Copy ``aside``'s unfinished queue rows into the database at ``path`` as pending rows;
    an event already there (same dedupe key) is not copied. Returns how many were. A file
    that is not a memq database raises ``sqlite3.Error``; one without a queue gives 0."""
    if not stat.S_ISREG(os.lstat(aside).st_mode):
        raise OSError(f"{aside} is not a regular file")
    conn = connection.connect(path, synchronous=connection.Synchronous.FULL)
    try:
        conn.execute("ATTACH DATABASE ? AS aside", (str(aside),))
        try:
            (has_queue,) = conn.execute(QUERIES["aside_has_queue"]).fetchone()
            if not has_queue:
                return 0
            conn.execute("BEGIN IMMEDIATE")
            try:
                now = time.time_ns() // 1_000_000
                taken = conn.execute(QUERIES["take_in_pending"], {"now": now}).rowcount
                conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
                raise
            return max(0, int(taken))
        finally:
            conn.execute("DETACH DATABASE aside")
    finally:
        conn.close()


# -- after a crash --------------------------------------------------------------------------


def leftover_copies(path: Path) -> list[Path]:
    """Complete saved copies of ``path`` that were never installed (the daemon died between
    saving one and putting it in place), oldest first."""
    prefix = path.name + RESCUE_INFIX
    found = [
        p
        for p in path.parent.iterdir()
        if p.name.startswith(prefix)
        and not p.name.endswith(PARTIAL_SUFFIX)
        # SQLite's own companions of a copy are not copies.
        and not p.name.endswith((WAL_SUFFIX, SHM_SUFFIX, "-journal"))
    ]
    return sorted(found)


def install_leftover(path: Path) -> Installed | None:
    """Install the newest saved copy left by a daemon that died before installing it, with
    nothing at the path counted as the queue's own (whatever is there was written after the
    copy, or is the stale file the copy replaces: kept aside, its rows taken in). Older
    copies are kept aside and their rows taken in too. None when there is no copy."""
    copies = leftover_copies(path)
    if not copies:
        return None
    newest, older = copies[-1], copies[:-1]
    stamp = newest.name[len(path.name + RESCUE_INFIX) :]
    installed = install(path, newest, files=None, stamp=stamp)
    kept, taken = list(installed.kept_aside), installed.taken_in
    unreadable = list(installed.unreadable)
    for copy in older:
        aside = _aside_name(path, copy.name[len(path.name + RESCUE_INFIX) :])
        os.rename(copy, aside)
        kept.append(aside)
        try:
            taken += take_in(path, aside)
        except (sqlite3.Error, OSError) as exc:
            unreadable.append(f"{aside.name}: {exc}")
    return Installed(path, tuple(kept), taken, tuple(unreadable))
