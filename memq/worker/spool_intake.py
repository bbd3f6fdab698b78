"""Taking in the spool: the events hooks left in ``MEMQ_HOME/spool`` when neither the daemon
nor the database took them (``memq.hooks.spool``).

The daemon takes the spool in once at start, before it serves, and then every second while it
runs (an empty spool costs one directory scan). Files are taken oldest name first. Each event
is linked as a fork's first event and enqueued exactly as ``POST /api/events`` would (same
session key, kind and dedupe key), and its file is deleted only after the enqueue committed:
an event that reached both the database and the spool ends up once, and a crash between the
commit and the delete only makes the next pass find a duplicate.

A file that is not a complete spooled event is moved to ``spool/rejected/`` and logged
(``spool.rejected``), never deleted. A hook's temporary file (``.NAME.tmp``) is left alone
while its hook may still be writing it; once that hook is gone and the file is a minute old,
it is taken in if complete (the hook died between its fsync and its rename) or rejected.
When the queue cannot store (a full disk, a lock held too long), files stay where they are and
the next pass tries again.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.events import drop_origin, parse_event_body, route_event
from memq.exceptions import (
    EventError,
    InvalidMessageError,
    QueueClosedError,
    SpoolFileError,
    StorageError,
)
from memq.hooks import spool
from memq.hooks.spool import SpooledEvent
from memq.privacy import strip_private
from memq.queue import Queue, QueueBase
from memq.redact import BUILT_IN, Redactor
from memq.worker.forks import ForkLinker
from memq.worker.status_report import spool_counts

log = structlog.get_logger("memq.spool")

SCAN_INTERVAL_SECONDS: Final = 1.0
# A hook lives well under two seconds: a temporary file this old whose hook is gone will not
# be renamed any more.
STALE_TEMPORARY_SECONDS: Final = 60.0

# Spooled events are read and enqueued this many at a time: one group commit for the lot
# (the queue's writer takes up to 256 operations a batch), not one fsync per event.
CHUNK: Final = 256


class IntakeTarget(Protocol):
    """Where the intake puts events: the daemon's queue (``QueueTarget``)."""

    async def link(self, event: SpooledEvent, payload: dict[str, Any]) -> None:
        """Before an event is stored: link its session if it is a fork's first event."""

    async def store(self, event: SpooledEvent, payload: dict[str, Any]) -> bool:
        """Store one event; True when it was new, False for a duplicate. Raises what the
        queue raises."""


class QueueTarget:
    """What ``POST /api/events`` does with an accepted event, for a spooled one: link a fork's
    first event, enqueue it, and wake its session's consumer."""

    def __init__(self, queue: QueueBase, forks: ForkLinker, notify: Callable[[str], None]) -> None:
        self._queue = queue
        self._forks = forks
        self._notify = notify

    async def link(self, event: SpooledEvent, payload: dict[str, Any]) -> None:
        await self._forks.before_enqueue(event.session_key, event.event, payload)

    async def store(self, event: SpooledEvent, payload: dict[str, Any]) -> bool:
        queue = self._queue
        enqueued = await queue.enqueue(event.session_key, event.kind, payload, event.dedupe_key)
        if enqueued.created:
            self._notify(event.session_key)
        return enqueued.created


class IntakeReport:
    """What one pass over the spool did."""

    __slots__ = ("duplicates", "rejected", "taken", "waiting")

    def __init__(self) -> None:
        self.taken = 0  # new events enqueued
        self.duplicates = 0  # events the queue already held (their files are gone too)
        self.rejected = 0  # files moved to spool/rejected
        self.waiting = 0  # events left in the spool after the pass

    def __repr__(self) -> str:
        return (
            f"IntakeReport(taken={self.taken}, duplicates={self.duplicates}, "
            f"rejected={self.rejected}, waiting={self.waiting})"
        )


class SpoolIntake:
    """Takes the spool of ``home`` in through ``target``; see the module docstring.

    Args:
        home: MEMQ_HOME.
        target: links and stores each event (``QueueTarget`` in the daemon).
        max_body_bytes: the largest body taken (the daemon's body limit, as over HTTP).
        interval: seconds between passes while ``run`` runs.
        redactor: takes secrets out of each event before it is stored (a hook with other
            settings may have spooled it); None: none are.
    """

    def __init__(
        self,
        home: Path,
        target: IntakeTarget,
        *,
        max_body_bytes: int,
        interval: float = SCAN_INTERVAL_SECONDS,
        redactor: Redactor | None = BUILT_IN,
    ) -> None:
        self.home = str(home)
        self._redactor = redactor
        self.directory = spool.spool_dir(self.home)
        self._target = target
        self._max_body_bytes = max_body_bytes
        self._interval = interval
        self._failing = False  # the queue refused the last event: log again only on a change
        self._unreadable: set[str] = set()  # files already logged as unreadable

    def prepare(self) -> None:
        """Create the spool directory (0700), so that hooks find it even in a home they
        cannot create files in. Logs, and does not raise, when it cannot."""
        problem = _attempt(lambda: spool.make_private_dir(self.directory))
        if problem is not None:
            log.error("spool.unusable", path=self.directory, error=problem)

    def counts(self) -> dict[str, int]:
        """``{"waiting": N, "rejected": M}`` as ``memq status`` shows them."""
        return spool_counts(self.home)

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Take the spool in every ``interval`` seconds until cancelled or the queue closes."""
        task_status.started()
        while True:
            await anyio.sleep(self._interval)
            try:
                await self.take_in_safely()
            except QueueClosedError:
                return

    async def take_in_safely(self) -> IntakeReport | None:
        """``take_in``, logging (not raising) anything unexpected: the spool must never stop
        the daemon. Still raises ``QueueClosedError``."""
        try:
            return await self.take_in()
        except QueueClosedError:
            raise
        except Exception:
            log.exception("spool.intake_crashed", path=self.directory)
            return None

    async def take_in(self) -> IntakeReport:
        """One pass: every complete event in the spool, oldest first. Raises
        ``QueueClosedError`` when the queue closed under it."""
        report = IntakeReport()
        names = self._scan()
        for start in range(0, len(names), CHUNK):
            left = await self._take_chunk(names[start : start + CHUNK], report)
            if left:
                report.waiting = left + max(0, len(names) - start - CHUNK)
                break
        if report.taken or report.duplicates:
            log.info(
                "spool.taken_in",
                count=report.taken,
                duplicates=report.duplicates,
                waiting=report.waiting,
            )
        return report

    async def _take_chunk(self, names: list[str], report: IntakeReport) -> int:
        """Take in ``names`` (in order); how many stay because the queue could not store
        them now (then the pass stops)."""
        read = await anyio.to_thread.run_sync(self._read_all, names)
        ready: list[tuple[str, SpooledEvent, dict[str, Any]]] = []
        for name, loaded in read:
            if isinstance(loaded, tuple):
                ready.append((name, *loaded))
            elif isinstance(loaded, OSError):
                if not isinstance(loaded, FileNotFoundError):  # gone: taken by ``memq repair``
                    error = loaded.strerror or str(loaded)
                    self._log_once(name, "spool.unreadable", file=name, error=error)
            else:
                self._reject(name, str(loaded), report)
        # Every fork link of the chunk first (each before its session's events), then every
        # enqueue at once: tasks start in order and each hands its operation to the writer
        # before it first waits, so the writer queues them in file order, in one or two
        # group commits.
        for _name, event, payload in ready:
            await self._target.link(event, payload)
        outcomes: list[bool | Exception] = [False] * len(ready)

        async def store(index: int, event: SpooledEvent, payload: dict[str, Any]) -> None:
            try:
                outcomes[index] = await self._target.store(event, payload)
            except Exception as exc:
                outcomes[index] = exc

        async with anyio.create_task_group() as tg:
            for index, (_name, event, payload) in enumerate(ready):
                tg.start_soon(store, index, event, payload)
        return self._settle([name for name, _, _ in ready], outcomes, report)

    def _settle(
        self, names: list[str], outcomes: list[bool | Exception], report: IntakeReport
    ) -> int:
        """Delete what was stored, set aside what the queue refused as invalid; how many
        stay because the queue could not store them now."""
        left = 0
        closed: QueueClosedError | None = None
        for name, outcome in zip(names, outcomes, strict=True):
            path = os.path.join(self.directory, name)
            if isinstance(outcome, InvalidMessageError):
                self._reject(name, str(outcome), report)
            elif isinstance(outcome, QueueClosedError):
                closed = outcome
            elif isinstance(outcome, StorageError):
                left += 1
                if not self._failing:
                    self._failing = True
                    log.warning("spool.intake_failed", error=str(outcome), file=name)
            elif isinstance(outcome, Exception):
                left += 1
                self._log_once(name, "spool.intake_error", file=name, error=repr(outcome))
            else:
                report.taken += outcome
                report.duplicates += not outcome
                self._delete(path)
        if closed is not None:
            raise closed
        if self._failing and not left:
            self._failing = False
            log.info("spool.intake_resumed")
        return left

    def _scan(self) -> list[str]:
        """The names to take in, in order: complete events, then stale temporary files."""
        try:
            with os.scandir(self.directory) as entries:
                names = [entry.name for entry in entries if not entry.is_dir(follow_symlinks=False)]
        except (FileNotFoundError, NotADirectoryError):
            return []
        events = sorted(name for name in names if spool.is_event_name(name))
        stale = sorted(name for name in names if self._is_abandoned(name))
        return events + stale

    def _is_abandoned(self, name: str) -> bool:
        """A temporary file that its hook will not rename any more."""
        if not spool.is_temporary_name(name):
            return False
        try:
            age = time.time() - os.stat(os.path.join(self.directory, name)).st_mtime
        except OSError:
            return False
        # Its writer's pid is in its name: a hook that still runs may still rename it (a
        # clock stepped forward must not make a file being written look abandoned).
        return age >= STALE_TEMPORARY_SECONDS and not _is_alive(_writer_pid(name))

    def _read_all(
        self, names: list[str]
    ) -> list[tuple[str, tuple[SpooledEvent, dict[str, Any]] | Exception]]:
        """Each file's event and payload, or why it has none (in a worker thread)."""
        read: list[tuple[str, tuple[SpooledEvent, dict[str, Any]] | Exception]] = []
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                event = spool.read_event(path, max_body_bytes=self._max_body_bytes)
                payload = parse_event_body(event.body)
                drop_origin(payload)  # a file written by anything but the hook: no forgery
                # The hook strips <private> parts and redacts before it spools; a file that
                # did not (another writer, a hook with other rules) is cleaned here, and
                # routed again from what is left, as ``POST /api/events`` routes: its
                # header's session key and dedupe key came from the ids before.
                # (The spool is the rare path: a walk more per event costs nothing there.)
                cleaned = strip_private(payload)
                changed = cleaned != payload
                if self._redactor is not None and not self._redactor.applied_to(cleaned):
                    cleaned, found = self._redactor.redact_value(cleaned)
                    changed = changed or found > 0
                if changed:
                    _route_again(event, cleaned)
                read.append((name, (event, cleaned)))
            except (OSError, SpoolFileError, EventError) as exc:
                read.append((name, exc))
        return read

    def _delete(self, path: str) -> None:
        problem = _attempt(lambda: os.unlink(path), missing_ok=True)
        if problem is not None:
            # Taken in, but still here: the next pass finds it a duplicate and tries again.
            self._log_once(path, "spool.not_deleted", file=path, error=problem)

    def _log_once(self, key: str, event: str, **fields: Any) -> None:
        """Log a problem with one file once, not on every pass."""
        if key not in self._unreadable:
            self._unreadable.add(key)
            log.error(event, **fields)

    def _reject(self, name: str, reason: str, report: IntakeReport) -> None:
        """Move ``name`` to ``spool/rejected`` (never delete it: it may be someone's event)."""
        rejected = spool.rejected_dir(self.home)
        target = os.path.join(rejected, _rejected_name(name))

        def move() -> None:
            nonlocal target
            spool.make_private_dir(rejected)
            while os.path.lexists(target):
                target = os.path.join(rejected, f"{os.urandom(2).hex()}-{_rejected_name(name)}")
            os.rename(os.path.join(self.directory, name), target)

        problem = _attempt(move)
        if problem is not None:
            self._log_once(name, "spool.reject_failed", file=name, reason=reason, error=problem)
            return
        report.rejected += 1
        log.error("spool.rejected", file=name, moved_to=target, reason=reason)


async def take_in_to(database: Path, home: Path, *, max_body_bytes: int) -> IntakeReport:
    """One pass over ``home``'s spool into the queue of ``database``, with no daemon running
    (``memq repair``, after it built a new database)."""
    async with await Queue.open(database) as queue:
        intake = SpoolIntake(
            home,
            QueueTarget(queue, ForkLinker(queue), lambda _session: None),
            max_body_bytes=max_body_bytes,
        )
        return await intake.take_in()


def _route_again(event: SpooledEvent, payload: dict[str, Any]) -> None:
    """Set ``event``'s session key, kind and dedupe key from ``payload`` (``route_event``:
    ``InvalidEventError`` when it no longer names a session)."""
    route = route_event(payload)
    event.session_key = route.session_key
    event.kind = route.kind
    event.dedupe_key = route.dedupe_key
    event.event = route.event


def _attempt(action: Callable[[], None], *, missing_ok: bool = False) -> str | None:
    """Run a file operation; what went wrong, or None."""
    try:
        action()
    except FileNotFoundError as exc:
        return None if missing_ok else (exc.strerror or str(exc))
    except OSError as exc:
        return exc.strerror or str(exc)
    except SpoolFileError as exc:
        return str(exc)
    return None


def _rejected_name(name: str) -> str:
    # Without the leading dot: a rejected file is shown, not hidden.
    return name.lstrip(spool.TEMP_PREFIX) or "unnamed"


def _writer_pid(name: str) -> int:
    """The pid in a spool file's name (``.MS-PID-RANDOM.event.tmp``), or 0."""
    parts = name.lstrip(spool.TEMP_PREFIX).split("-")
    return int(parts[1]) if len(parts) >= 3 and parts[1].isdigit() else 0


def _is_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    return True
