"""The queue's part of ``memq status``, in one shape whether the daemon answers it
(``GET /api/status``) or the database file is read because none does
(``memq.worker.control.offline_status``), and the lines that show the settings and where
they came from. Standard library only: the CLI imports it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from memq.env import RESERVE_FILE
from memq.storage import integrity
from memq.worker import startup_error

# ``memq status`` checks the database file itself, read-only, for at most this long: that is
# about 1.5 GB read from the page cache, 200 MB from a cold disk (``memq.storage.integrity``);
# a larger file is checked in part, and the daemon checks all of it when it starts.
STATUS_CHECK_SECONDS = 1.0


def queue_status(
    counts: Mapping[str, int], sessions: Mapping[str, Mapping[str, int]]
) -> dict[str, Any]:
    """The status keys that follow from the counts by status, overall and per session."""
    return {
        "counts": dict(counts),
        "failed": counts["failed"],
        # The anchor's session manager reported these; tools built for it read them.
        "has_pending_work": counts["pending"] > 0,
        "queue_depth": counts["pending"],
        "active_work": counts["pending"] + counts["processing"],
        "sessions": [
            {"session_id": key, "counts": dict(per_status)} for key, per_status in sessions.items()
        ],
    }


def spool_counts(home: str | None) -> dict[str, int]:
    """The ``spool`` key of ``memq status``: events waiting in ``MEMQ_HOME/spool`` and files
    put aside in ``spool/rejected`` (none without a home). One directory scan each."""
    if home is None:
        return {"waiting": 0, "rejected": 0}
    from memq.hooks import spool  # noqa: PLC0415 - only the status commands need it

    return {"waiting": spool.count_waiting(home), "rejected": spool.count_rejected(home)}


def spool_lines(status: Mapping[str, Any], home: str) -> list[str]:
    """What ``memq status`` says about the spool: nothing when it is empty."""
    counts = status.get("spool") or {}
    waiting, rejected = counts.get("waiting", 0), counts.get("rejected", 0)
    lines = []
    if waiting:
        head = f"{_events(waiting)} waiting in {home}/spool"
        state = status.get("state")
        if state == "running":
            lines.append(f"spool     {head}; the daemon takes them in")
        elif state == "starting":
            lines.append(
                f"SPOOL     {head}: the daemon does not answer; it takes them in once it does"
            )
        else:
            lines.append(f"SPOOL     {head}: memq start takes them in")
    if rejected:
        lines.append(
            f"spool     {rejected} file(s) could not be taken in; kept in {home}/spool/rejected "
            "(the daemon log says why: spool.rejected)"
        )
    return lines


def database_check(
    database: str, home: str, *, budget_seconds: float = STATUS_CHECK_SECONDS
) -> dict[str, Any]:
    """The ``database_check`` key of ``memq status``: the file checked read-only within
    ``budget_seconds``; a part it had no time for counts as damaged when the daemon's own
    check of this very file found damage at its last start."""
    found = integrity.check(database, budget_seconds=budget_seconds)
    entry = found.as_dict()
    if found.verdict == integrity.Verdict.UNCHECKED:
        recorded = startup_error.read(home)
        if startup_error.says_damaged(recorded, database):
            assert recorded is not None
            entry["state"] = integrity.Verdict.DAMAGED
            entry["detail"] = f"the daemon found it damaged at {recorded.get('time')}"
    return entry


def startup_failure(home: str, state: object) -> dict[str, Any] | None:
    """The ``startup_error`` key of ``memq status``: why the last daemon could not start
    (or stopped on an error), while none runs. A damaged database is told by
    ``database_check`` instead."""
    if state != "stopped":
        return None
    entry = startup_error.read(home)
    if entry is None or entry.get("kind") == startup_error.Kind.DATABASE_DAMAGED:
        return None
    return entry


def problem_lines(status: Mapping[str, Any]) -> list[str]:
    """What ``memq status`` says about a damaged database, a daemon that could not start
    and a home memq cannot write in: nothing when all is well."""
    lines = []
    check = status.get("database_check") or {}
    if check.get("state") == integrity.Verdict.DAMAGED:
        lines.append(
            f"DAMAGED   {integrity.damage_message(check['path'], check.get('detail') or '')}"
        )
    elif check.get("state") == integrity.Verdict.UNCHECKED:
        lines.append(f"database  {check.get('detail')} (the daemon checks all of it at start)")
    failure = status.get("startup_error")
    if failure:
        lines.append(f"FAILED    {_failure_text(failure)}")
    if status.get("home_problem"):
        lines.append(f"HOME      {status['home_problem']}")
    return lines


def _failure_text(failure: Mapping[str, Any]) -> str:
    what = "stopped on an error" if failure.get("phase") == "run" else "could not start"
    return f"the daemon {what} at {failure.get('time')}: {failure.get('reason')}"


def status_problems(status: Mapping[str, Any]) -> list[str]:
    """What is wrong, by the status: ``memq status`` exits 0 only when this is empty."""
    problems = []
    check = status.get("database_check") or {}
    if check.get("state") == integrity.Verdict.DAMAGED:
        problems.append(integrity.damage_message(check["path"], check.get("detail") or ""))
    failure = status.get("startup_error")
    if failure:
        problems.append(_failure_text(failure))
    if status.get("home_problem"):
        problems.append(str(status["home_problem"]))
    waiting = (status.get("spool") or {}).get("waiting", 0)
    if waiting and status.get("state") != "running":
        problems.append(f"{_events(waiting)} waiting in the spool with no daemon to take them in")
    disk = status.get("disk") or {}
    if disk.get("full"):
        problems.append(str(disk.get("message") or "disk full"))
    return problems


# With no daemon to say how its writes fare, less than this free counts as a full disk.
OFFLINE_FULL_BELOW_BYTES = 1024 * 1024


def offline_disk(home: str, reserve_bytes: int) -> dict[str, Any]:
    """The ``disk`` key of ``memq status`` when no daemon answers (the shape of
    ``memq.worker.disk.DiskMonitor.report``): what the files and ``os.statvfs`` say."""
    reserve = os.path.join(home, RESERVE_FILE)
    try:
        info = os.statvfs(home)
        free: int | None = info.f_bavail * info.f_frsize
    except OSError:
        free = None
    full = free is not None and free < OFFLINE_FULL_BELOW_BYTES
    message = (
        f"disk full: {free // 1024} KiB free on the disk of {home}; memq cannot store events "
        "there until some space is freed"
        if full and free is not None
        else None
    )
    return {
        "state": "full" if full else "ok",
        "full": full,
        "accepting": not full,
        "message": message,
        "reserve_path": reserve,
        "reserve_bytes": reserve_bytes,
        "reserve_present": os.path.isfile(reserve) and not os.path.islink(reserve),
        "free_bytes": free,
        "full_since_ms": None,
        "full_for_seconds": None,
        "last_error": None,
    }


def disk_lines(status: Mapping[str, Any]) -> list[str]:
    """What ``memq status`` says about a full disk (``memq.worker.disk``, or ``offline_disk``
    with no daemon): nothing when the disk is fine."""
    disk = status.get("disk") or {}
    if not disk.get("full"):
        return []
    lines = [f"DISK      {disk.get('message') or 'disk full'}"]
    free = disk.get("free_bytes")
    if isinstance(free, int):
        reserve = "in place" if disk.get("reserve_present") else "released"
        lines.append(f"          {free // 1024} KiB free; the reserve is {reserve}")
    return lines


def _events(n: int) -> str:
    return f"{n} event{'' if n == 1 else 's'}"


def settings_lines(
    report: Mapping[str, Mapping[str, Any]], file: str, *, every: bool = False, note: str = ""
) -> list[str]:
    """The settings part of ``memq status`` (``memq.config.settings_report``): each setting
    someone set, or that is wrong, with where it came from; ``every`` lists defaults too.
    ``note`` follows the file's name on the first line."""
    shown = {
        key: entry
        for key, entry in report.items()
        if every or entry["source"] != "default" or "error" in entry
    }
    lines = [f"settings  {file}{f'  ({note})' if note else ''}"]
    width = max((len(key) for key in shown), default=0)
    for key, entry in shown.items():
        source = entry["source"]
        if source == "environment":
            source = f"environment ({entry['variable']})"
        lines.append(f"  {key:<{width}}  {setting_text(entry['value']):<24}  {source}")
        if "error" in entry:
            lines.append(f"  {'':<{width}}  not usable: {entry['error']}")
    hidden = len(report) - len(shown)
    if hidden:
        lines.append(f"  ({hidden} more at their defaults: memq config --global lists them)")
    return lines


def setting_text(value: Any) -> str:
    """A setting's value (as ``memq status --json`` has it) for a person to read."""
    if value is None:
        return "(the processor's own)"
    if isinstance(value, list):
        return ",".join(str(item) for item in value) if value else "(none)"
    return str(value)
