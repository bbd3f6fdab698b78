"""The database's files deleted under a running daemon, as cleanup scripts and sync tools do.

    wal_deleted_then_killed        rm memq.db-wal memq.db-shm, more events, SIGKILL
    database_deleted_then_killed   rm memq.db, more events, SIGKILL
    wal_deleted_then_stopped       rm memq.db-wal memq.db-shm, more events, a graceful stop
    database_deleted_then_stopped  rm memq.db, more events, a graceful stop
    wal_deleted_while_idle         rm memq.db-wal memq.db-shm, no event: the periodic check
                                   alone must save what the daemon held, then SIGKILL
    fresh_database_at_the_path     rm all three, a hook finds no daemon and creates a fresh
                                   memq.db with its event, more events, SIGKILL

Before the fix the daemon went on writing to the files it had open, which no longer had a name:
everything since the last checkpoint (every event here: the WAL is checkpointed only past
16 MiB) vanished with the process, and nothing was logged.

The daemon runs as a real process; events go through the real ``memq hook`` command, one
process each, while the daemon is up (a hook whose event the daemon did not take stores it
itself or spools it, and says so in ``hook.log``). An event counts as acknowledged unless its
hook logged ``hook.lost``. After the daemon is killed (or stopped) and started again, ``kept``
counts the acknowledged events found exactly once in the queue, processed. The files are
deleted with ``os.unlink``, as ``rm`` does; nothing reads the database while they are gone
(a reader would create a WAL of its own and become part of the fault).
"""

from __future__ import annotations

import os
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from tests.faults import FaultReport
from tests.faults.kit import daemon_log, hook_log, queue_statuses, run_hook, tool_call
from tests.helpers.daemon import Daemon, free_port

SESSION_ID = "deleted-files"
EVENTS_BEFORE = 5
EVENTS_AFTER = 8
WAL_AND_SHM: Final = ("memq.db-wal", "memq.db-shm")
DATABASE: Final = ("memq.db",)
ALL_THREE: Final = ("memq.db", "memq.db-wal", "memq.db-shm")
# The daemon checks its files every 2 s (QueueSettings.file_check_interval): generous.
DETECTION_TIMEOUT_SECONDS = 15.0

Ending = Literal["kill", "stop"]


@dataclass(frozen=True, slots=True)
class DeletedFilesReport(FaultReport):
    """A ``FaultReport`` with what this scenario also saw.

    Args:
        replaced_logged: the daemon's log has an error ``database.replaced`` line.
        replaced_lines: those lines, as JSON objects.
        kept_aside: ``memq.db.replaced-*`` files in the home afterwards.
        via_fallback: acknowledged events a hook stored itself or spooled.
        duplicates: acknowledged events found more than once.
    """

    replaced_logged: bool = False
    replaced_lines: tuple[dict[str, Any], ...] = ()
    kept_aside: tuple[str, ...] = ()
    via_fallback: int = 0
    duplicates: int = 0


def event(name: str) -> dict[str, Any]:
    """One tool call's hook payload; its dedupe key is ``tool:<name>``."""
    return tool_call(SESSION_ID, name, cwd="/tmp/deleted-files-project", echo=name)


class _Scenario:
    def __init__(self, scratch: Path) -> None:
        self.home = scratch / "home"
        self.daemon = Daemon(self.home)
        self.sent: list[str] = []

    def hook(self, name: str, *, port: int | None = None) -> None:
        """Send one event through ``memq hook`` (to ``port``, the daemon's by default)."""
        # Kept from spawning: a hook that falls back must not start a second daemon beside
        # the running one.
        result = run_hook(self.home, port or self.daemon.port, event(name))
        assert result.returncode == 0, f"memq hook exited {result.returncode}"
        self.sent.append(f"tool:{name}")

    def replaced_lines(self) -> list[dict[str, Any]]:
        return [
            line
            for line in daemon_log(self.home)
            if line.get("event") == "database.replaced" and line.get("level") == "error"
        ]

    def wait_for_replacement(self) -> None:
        deadline = time.monotonic() + DETECTION_TIMEOUT_SECONDS
        while not self.replaced_lines():
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no database.replaced in the daemon's log {DETECTION_TIMEOUT_SECONDS} s "
                    "after the files were deleted"
                )
            time.sleep(0.1)

    def delete(self, names: tuple[str, ...]) -> None:
        for name in names:
            os.unlink(self.home / name)

    def counts(self) -> tuple[Counter[str], set[str]]:
        """Rows per dedupe key of this session, and the statuses seen."""
        found = queue_statuses(self.home / "memq.db", SESSION_ID)
        counts = Counter({key: len(statuses) for key, statuses in found.items()})
        return counts, {status for statuses in found.values() for status in statuses}


def _run(
    scratch: Path,
    scenario: str,
    *,
    delete: tuple[str, ...],
    ending: Ending,
    events_after: int = EVENTS_AFTER,
    wait_for_check: bool = False,
    fresh_database: bool = False,
) -> DeletedFilesReport:
    run = _Scenario(scratch)
    daemon = run.daemon
    daemon.start()
    try:
        for i in range(EVENTS_BEFORE):
            run.hook(f"before-{i}")
        daemon.wait_idle()  # processed, in the WAL only: nothing checkpoints it this small
        run.delete(delete)
        if fresh_database:
            # No daemon answers this hook: it creates memq.db afresh and stores its event there.
            run.hook("fallback-0", port=free_port())
        for i in range(events_after):
            run.hook(f"after-{i}")
        if wait_for_check:
            run.wait_for_replacement()
        if ending == "kill":
            daemon.kill()
        else:
            assert daemon.stop() == 0, f"memq serve did not stop cleanly: {daemon.stderr()}"
        restarted = time.monotonic()
        daemon.start()
        daemon.wait_idle()
        recovery = time.monotonic() - restarted
        counts, statuses = run.counts()
    finally:
        daemon.kill()
    hook_lines = hook_log(run.home)
    lost = sum(1 for line in hook_lines if line.get("event") == "hook.lost")
    via_fallback = sum(
        1 for line in hook_lines if line.get("event") in ("hook.fallback", "hook.spooled")
    )
    acknowledged = len(run.sent) - lost
    assert statuses <= {"processed"}, f"not all processed after recovery: {statuses}"
    replaced = run.replaced_lines()
    return DeletedFilesReport(
        scenario=scenario,
        sent=len(run.sent),
        acknowledged=acknowledged,
        kept=sum(1 for key in run.sent if counts[key] == 1),
        recovery_seconds=recovery,
        replaced_logged=bool(replaced),
        replaced_lines=tuple(replaced),
        kept_aside=tuple(sorted(p.name for p in run.home.glob("memq.db.replaced-*"))),
        via_fallback=via_fallback,
        duplicates=sum(1 for key in run.sent if counts[key] > 1),
    )


def wal_deleted_then_killed(scratch: Path) -> DeletedFilesReport:
    """rm memq.db-wal memq.db-shm, more events, SIGKILL."""
    return _run(scratch, "WAL and SHM deleted, events, SIGKILL", delete=WAL_AND_SHM, ending="kill")


def database_deleted_then_killed(scratch: Path) -> DeletedFilesReport:
    """rm memq.db, more events, SIGKILL."""
    return _run(scratch, "memq.db deleted, events, SIGKILL", delete=DATABASE, ending="kill")


def wal_deleted_then_stopped(scratch: Path) -> DeletedFilesReport:
    """rm memq.db-wal memq.db-shm, more events, a graceful stop."""
    return _run(scratch, "WAL and SHM deleted, events, stop", delete=WAL_AND_SHM, ending="stop")


def database_deleted_then_stopped(scratch: Path) -> DeletedFilesReport:
    """rm memq.db, more events, a graceful stop."""
    return _run(scratch, "memq.db deleted, events, stop", delete=DATABASE, ending="stop")


def wal_deleted_while_idle(scratch: Path) -> DeletedFilesReport:
    """rm memq.db-wal memq.db-shm with no event after: the periodic check saves what the
    daemon held; then SIGKILL."""
    return _run(
        scratch,
        "WAL and SHM deleted, idle, SIGKILL",
        delete=WAL_AND_SHM,
        ending="kill",
        events_after=0,
        wait_for_check=True,
    )


def fresh_database_at_the_path(scratch: Path) -> DeletedFilesReport:
    """rm all three; a hook that finds no daemon creates memq.db afresh with its event; more
    events; SIGKILL. The fresh file is kept aside and its event taken in."""
    return _run(
        scratch,
        "all deleted, a hook makes a fresh memq.db, SIGKILL",
        delete=ALL_THREE,
        ending="kill",
        wait_for_check=True,
        fresh_database=True,
    )


SCENARIOS = (
    wal_deleted_then_killed,
    database_deleted_then_killed,
    wal_deleted_then_stopped,
    database_deleted_then_stopped,
    wal_deleted_while_idle,
    fresh_database_at_the_path,
)
