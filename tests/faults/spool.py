"""Faults that leave neither the daemon nor the database able to take an event: the spool.

Each driver gets a real home ready (a real daemon ran there and stopped, so the database, the
token and the spool directory exist), breaks the database the way a laptop does, sends events
through the real ``memq hook`` command, then undoes the fault, starts a real daemon and waits
until every acknowledged event is in the queue. A hook that exits 0 has acknowledged its event
(that is all Claude Code sees). ``kept`` counts the events found exactly once afterwards.

    damaged_pages            garbage over every page after the first of memq.db
    text_file_database       a text file at the database's path
    frozen_daemon_in_write   the daemon SIGSTOPped while another process holds the write lock,
                             then continued
    frozen_daemon_killed     the same, but the frozen daemon never comes back (SIGKILL) and a
                             new one starts: what the frozen one had read from its socket is gone
    read_only_database_file  memq.db read-only (a read-only bind mount as root, else chmod)
    read_only_database_dir   MEMQ_HOME read-only but its spool (bind mounts as root, else chmod)

The hooks are kept from starting a daemon themselves (a fresh spawn stamp), so that recovery
starts exactly one, at a known moment.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults import FaultReport, FaultSkipped
from tests.faults.kit import (
    daemon_with,
    hook_log,
    keep_hooks_from_spawning,
    queue_counts,
    ran_home,
    run_hook,
    tool_call,
)
from tests.helpers.daemon import Daemon

EVENTS_PER_SCENARIO = 12
SESSION_ID = "spool-fault"
CWD = "/tmp/spool-fault-project"
# The bound for a hook's worst case; the hook's own budget is 1 s.
HOOK_WORST_CASE_SECONDS = 1.5
RECOVERY_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class SpoolFaultReport(FaultReport):
    """A ``FaultReport`` with what the spool scenarios also measure.

    Args:
        spooled: events found in the spool once the hooks had run, before recovery.
        hook_seconds: each hook's wall time, process start to exit, in order.
        hook_log: the events ``hook.log`` recorded during the fault (``hook.spooled`` ...).
    """

    spooled: int = 0
    hook_seconds: tuple[float, ...] = ()
    hook_log: tuple[str, ...] = ()

    @property
    def worst_hook_seconds(self) -> float:
        return max(self.hook_seconds, default=0.0)


# -- events and hooks ---------------------------------------------------------------------


def event(scenario: str, index: int) -> dict[str, Any]:
    """One tool call's hook payload in this module's session; its dedupe key is
    ``tool:<scenario>-<index>``."""
    return tool_call(SESSION_ID, f"{scenario}-{index}", cwd=CWD, echo=str(index))


@dataclass(frozen=True, slots=True)
class Sent:
    """A scenario's events, sent through the hook.

    Args:
        acknowledged: hooks that exited 0.
        seconds: each hook's wall time.
        keys: the events' dedupe keys.
    """

    acknowledged: int
    seconds: tuple[float, ...]
    keys: list[str]

    def report(
        self, scenario: str, *, seen: tuple[int, tuple[str, ...]], home: Path, recovery: float
    ) -> SpoolFaultReport:
        """The report, counting the events in the queue of ``home`` now; ``seen``: what
        ``in_the_fault`` found before recovery."""
        counts = stored_counts(home / "memq.db", self.keys)
        spooled, logged = seen
        return SpoolFaultReport(
            scenario=scenario,
            sent=len(self.keys),
            acknowledged=self.acknowledged,
            kept=sum(1 for key in self.keys if counts[key] == 1),
            recovery_seconds=recovery,
            spooled=spooled,
            hook_seconds=self.seconds,
            hook_log=logged,
        )


def send_events(home: Path, port: int, scenario: str) -> Sent:
    """Send the scenario's events through the hook (kept from starting a daemon)."""
    acknowledged = 0
    seconds: list[float] = []
    keys: list[str] = []
    for index in range(EVENTS_PER_SCENARIO):
        payload = event(scenario, index)
        started = time.monotonic()
        code = run_hook(home, port, payload).returncode
        seconds.append(time.monotonic() - started)
        keys.append(f"tool:{payload['tool_use_id']}")
        acknowledged += code == 0
    return Sent(acknowledged, tuple(seconds), keys)


# -- what is where ---------------------------------------------------------------------------


def spooled_keys(home: Path) -> list[str]:
    """The dedupe keys of the complete events in the spool (the header line of each file)."""
    directory = home / "spool"
    if not directory.is_dir():
        return []
    keys = []
    for path in sorted(directory.glob("*.event")):
        header = json.loads(path.read_bytes().partition(b"\n")[0])
        keys.append(header["dedupe_key"])
    return keys


def stored_counts(database: Path, keys: list[str]) -> dict[str, int]:
    """How many queue rows each dedupe key of the session has (read-only)."""
    return queue_counts(database, SESSION_ID, keys)


def in_the_fault(home: Path, sent: Sent) -> tuple[int, tuple[str, ...]]:
    """How many of the events are in the spool, and what ``hook.log`` says, before recovery."""
    spooled = sum(1 for key in spooled_keys(home) if key in sent.keys)
    return spooled, tuple(line["event"] for line in hook_log(home))


def wait_until_taken_in(daemon: Daemon, keys: list[str]) -> float:
    """Seconds until the spool is empty and every key is in the queue (or the timeout)."""
    started = time.monotonic()
    deadline = started + RECOVERY_TIMEOUT_SECONDS
    database = daemon.home / "memq.db"
    while time.monotonic() < deadline:
        if not spooled_keys(daemon.home) and all(stored_counts(database, keys).values()):
            break
        time.sleep(0.05)
    return time.monotonic() - started


# -- a home to break ------------------------------------------------------------------------


def ready_home(scratch: Path) -> tuple[Path, int]:
    """A home a real daemon ran in and stopped in (database, token, spool directory), the
    hooks kept from starting another."""
    daemon = ran_home(scratch, [event("before", 0)])
    # Now, while the home can be written: a fault may leave the hooks unable to write it.
    keep_hooks_from_spawning(daemon.home)
    return daemon.home, daemon.port


def recover(
    scenario: str, home: Path, port: int, sent: Sent, *, undo: Callable[[], None]
) -> SpoolFaultReport:
    """Undo the fault, start a real daemon, and count what it took in."""
    seen = in_the_fault(home, sent)
    undo()
    daemon = Daemon(home, port=port)
    started = time.monotonic()
    daemon.start()
    try:
        wait_until_taken_in(daemon, sent.keys)
        recovery = time.monotonic() - started
        return sent.report(scenario, seen=seen, home=home, recovery=recovery)
    finally:
        daemon.stop()


def set_database_aside(home: Path) -> None:
    """What ``memq repair`` does first: the damaged file is renamed, never deleted."""
    for suffix in ("", "-wal", "-shm"):
        path = home / f"memq.db{suffix}"
        if path.exists():
            path.rename(path.with_name(f"{path.name}.damaged"))


# -- read-only files and directories --------------------------------------------------------


def _mount(*args: str) -> None:
    result = subprocess.run(["mount", *args], capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise FaultSkipped(f"mount {' '.join(args)} failed: {result.stderr.strip()}")


def _umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=False)


@contextmanager
def _mode(path: Path, mode: int) -> Iterator[None]:
    """``path`` in ``mode`` for a while, then in its mode before."""
    before = path.stat().st_mode
    path.chmod(mode)
    try:
        yield
    finally:
        path.chmod(before)


@contextmanager
def read_only_file(path: Path) -> Iterator[None]:
    """``path`` read-only even for root: a read-only bind mount over it (as root), else its
    mode 0444."""
    if os.geteuid() != 0:
        with _mode(path, 0o444):
            yield
        return
    _mount("--bind", str(path), str(path))
    try:
        _mount("-o", "remount,ro,bind", str(path))
        yield
    finally:
        _umount(path)


@contextmanager
def read_only_home(home: Path, writable: Path, side: Path) -> Iterator[None]:
    """``home`` read-only but its subdirectory ``writable``: as root, ``writable`` is
    bind-mounted at ``side`` first, then ``home`` is made a read-only bind mount and ``side``
    mounted back over ``writable``; otherwise modes (home 0555)."""
    if os.geteuid() != 0:
        with _mode(home, 0o555):
            yield
        return
    side.mkdir()
    mounted: list[Path] = []
    try:
        _mount("--bind", str(writable), str(side))
        mounted.append(side)
        _mount("--bind", str(home), str(home))
        mounted.append(home)
        _mount("-o", "remount,ro,bind", str(home))
        _mount("--bind", str(side), str(writable))
        mounted.append(writable)
        yield
    finally:
        for path in reversed(mounted):
            _umount(path)


# -- the scenarios ----------------------------------------------------------------------------


def damaged_pages(scratch: Path) -> SpoolFaultReport:
    """Garbage over every page of memq.db but the first (its header and schema page): reads
    and writes fail with "database disk image is malformed"."""
    home, port = ready_home(scratch)
    database = home / "memq.db"
    with sqlite3.connect(database) as conn:
        (page_size,) = conn.execute("PRAGMA page_size").fetchone()
    conn.close()
    size = database.stat().st_size
    with database.open("r+b") as handle:
        handle.seek(page_size)
        handle.write(os.urandom(size - page_size))
        handle.flush()
        os.fsync(handle.fileno())
    sent = send_events(home, port, "damaged")
    return recover(
        "damaged pages in memq.db", home, port, sent, undo=lambda: set_database_aside(home)
    )


def text_file_database(scratch: Path) -> SpoolFaultReport:
    """A text file where memq.db belongs ("file is not a database")."""
    home, port = ready_home(scratch)
    (home / "memq.db").write_text("notes I meant to keep somewhere else\n" * 40)
    sent = send_events(home, port, "text")
    return recover(
        "a text file at memq.db", home, port, sent, undo=lambda: set_database_aside(home)
    )


def frozen_daemon_in_write(scratch: Path) -> SpoolFaultReport:
    """The daemon frozen (SIGSTOP) while the database's write lock is held (here by another
    process's ``BEGIN IMMEDIATE``): the HTTP request times out, the direct write waits for the
    lock, and neither may hold the hook past its budget. Then the lock is released and the
    daemon continued."""
    return _frozen_daemon(scratch, killed=False)


def frozen_daemon_killed(scratch: Path) -> SpoolFaultReport:
    """As ``frozen_daemon_in_write``, but the frozen daemon is killed and a new one started.
    (A continued daemon still reads the requests the kernel queued for it while it was
    frozen; a killed one never does, so only the spool keeps those events.)"""
    return _frozen_daemon(scratch, killed=True)


def _frozen_daemon(scratch: Path, *, killed: bool) -> SpoolFaultReport:
    home = scratch / "home"
    daemon = daemon_with(home, [event("before", 0)])
    holder: subprocess.Popen[str] | None = None
    frozen = False
    try:
        holder = hold_write_lock(home / "memq.db")
        assert daemon.process is not None
        daemon.process.send_signal(signal.SIGSTOP)
        frozen = True
        sent = send_events(home, daemon.port, "frozen")
        seen = in_the_fault(home, sent)
        started = time.monotonic()
        if killed:
            daemon.kill()
        release(holder)
        holder = None
        if killed:
            daemon.start()
        else:
            daemon.process.send_signal(signal.SIGCONT)
        frozen = False
        wait_until_taken_in(daemon, sent.keys)
        recovery = time.monotonic() - started
        return sent.report(
            f"daemon frozen in a write, then {'killed' if killed else 'continued'}",
            seen=seen,
            home=home,
            recovery=recovery,
        )
    finally:
        if holder is not None:
            release(holder)
        if frozen and daemon.process is not None:
            daemon.process.send_signal(signal.SIGCONT)
        daemon.kill()


HOLD_LOCK = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.read()
conn.execute("ROLLBACK")
"""


def hold_write_lock(database: Path) -> subprocess.Popen[str]:
    """Another process holding ``BEGIN IMMEDIATE`` on ``database`` until ``release``."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(database)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert holder.stdout is not None
    if holder.stdout.readline().strip() != "locked":
        holder.kill()
        raise RuntimeError("the lock holder did not take the lock")
    return holder


def release(holder: subprocess.Popen[str]) -> None:
    assert holder.stdin is not None
    holder.stdin.close()
    holder.wait(timeout=10)
    if holder.stdout is not None:
        holder.stdout.close()


def read_only_database_file(scratch: Path) -> SpoolFaultReport:
    """memq.db read-only ("attempt to write a readonly database")."""
    home, port = ready_home(scratch)
    with read_only_file(home / "memq.db"):
        sent = send_events(home, port, "ro-file")
    return recover("memq.db read-only", home, port, sent, undo=lambda: None)


def read_only_database_dir(scratch: Path) -> SpoolFaultReport:
    """The database's directory read-only (SQLite cannot create the WAL), the spool
    directory the daemon made at its start still writable."""
    home, port = ready_home(scratch)
    (home / "spool").mkdir(mode=0o700, exist_ok=True)  # as the daemon makes it at its start
    with read_only_home(home, home / "spool", scratch / "spool-side"):
        sent = send_events(home, port, "ro-dir")
    return recover("MEMQ_HOME read-only but its spool", home, port, sent, undo=lambda: None)


SCENARIOS = (
    damaged_pages,
    text_file_database,
    frozen_daemon_in_write,
    frozen_daemon_killed,
    read_only_database_file,
    read_only_database_dir,
)
