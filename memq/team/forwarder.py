"""The daemon's task that forwards the outbox (``memq.team.outbox``) to the team server.

Each round (``step``) takes the first waiting rows in id order, so each session's events go
in the order they happened, and sends them as one batch of at most ``batch_events`` events
or ``batch_bytes`` of payload. An event's project is the repository identity of its
payload's ``cwd`` (``memq.team.identity``, cached per directory; an event without a cwd
takes its session's); none means the event stays on this machine (``local_only``).

What the server answers:

- per event ``accepted`` or ``duplicate``: the row is deleted. A batch sent again because
  its answer was lost is a duplicate server-side (its dedupe key is the key's, the
  machine's and the event's local id), so each event counts once there.
- per event ``refused`` (403 out of scope, 422 bad event): that row is ``refused`` with its
  error; the rest go on, the later events of its session too (``memq upstream retry``
  sends it again, after them: ``memq.team.outbox_admin`` states the order).
- 401: forwarding pauses ("key refused" in the status) and tries again every
  ``key_retry`` seconds; a missing or unsafe key file pauses it the same way.
- no answer, 5xx, 429: the batch's rows wait ``backoff_delay`` (exponential from
  ``first_delay`` to ``max_delay`` seconds, with jitter; a 429's Retry-After instead). The
  time is stored on the rows (``next_attempt_at``) and the head row's is honoured before
  anything is sent, so a restarted daemon does not try again early.
- the request refused as a whole (413, 422): the same rows are sent one at a time, and the
  one the server still refuses alone is marked ``refused``.

Woken when work arrives (``wake``: the session manager's notifications of enqueues, and
another process's rows); waits without waking during a backoff or a pause. Nothing on the
hook's path waits for it.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import anyio
import structlog
from anyio.abc import TaskStatus

from memq.exceptions import (
    QueueClosedError,
    StorageError,
    UnsafeFileError,
    UpstreamAuthError,
    UpstreamRefusedError,
    UpstreamUnavailableError,
)
from memq.queue import Clock, EpochMs, later, span
from memq.team.identity import repository_identity
from memq.team.outbox import Outbox, OutboxRow, Settlement
from memq.team.upstream_client import UpstreamClient, read_key

log = structlog.get_logger("memq.upstream")

MAX_CACHED_DIRECTORIES: Final = 10_000
ERROR_PAUSE: Final = 5.0  # seconds after an unexpected error (a failed read) before trying again


@dataclass(frozen=True, slots=True)
class ForwardSettings:
    """How the forwarder sends and waits (seconds, bytes)."""

    key_file: Path
    batch_events: int = 100
    batch_bytes: int = 1024 * 1024
    first_delay: float = 1.0  # the backoff after a first failure ...
    max_delay: float = 300.0  # ... doubling up to this
    key_retry: float = 300.0  # a refused or missing key: looked at again after this
    idle_check: float = 60.0  # nothing announced: look anyway after this


def backoff_delay(attempt: int, settings: ForwardSettings, jitter: float) -> float:
    """Seconds to wait after failed attempt number ``attempt`` (1-based): ``first_delay``
    doubled per attempt up to ``max_delay``, then jittered down by up to half (``jitter``
    in [0, 1)), never under ``first_delay``. Daemons that lost the server at the same
    moment do not come back at the same moment."""
    base = min(settings.max_delay, settings.first_delay * 2.0 ** min(max(attempt, 1) - 1, 30))
    return max(settings.first_delay, base * (0.5 + 0.5 * jitter))


@dataclass(slots=True)
class _Item:
    row: OutboxRow
    project: str
    payload: Any


class Forwarder:
    """Sends the outbox upstream; see the module docstring.

    Args:
        outbox: the outbox table.
        client: the team server's intake.
        settings: batch sizes and waits.
        clock: the queue's clock (stored times and the backoff are read on it).
        machine: this machine's name (MEMQ_MACHINE_NAME), stored in the database; a new
            one is taken only while no event waits (``Outbox.machine``).
        identity: a directory's project identity (``repository_identity``).
        jitter: a number in [0, 1) per backoff (``random.random``).
    """

    def __init__(
        self,
        outbox: Outbox,
        client: UpstreamClient,
        settings: ForwardSettings,
        *,
        clock: Clock,
        machine: str,
        identity: Callable[[str], str | None] = repository_identity,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self._outbox = outbox
        self._client = client
        self.settings = settings
        self._clock = clock
        self._machine_name = machine
        self._machine: str | None = None
        self._identity = identity
        self._jitter = jitter
        self._wakeup = anyio.Event()
        self._projects: dict[str, str | None] = {}  # cwd -> identity
        self._session_projects: dict[str, str] = {}  # for events without a cwd
        # One at a time up to this id: a batch the server refused as a whole is searched.
        self._single_until = 0
        # What the status shows.
        self.reachable: bool | None = None  # the last attempt reached the server
        self.last_error: str | None = None
        self.last_error_at: EpochMs | None = None
        self.paused_reason: str | None = None
        self.retry_at: EpochMs | None = None  # no attempt before (a backoff or a pause)
        self.forwarded = 0  # events the server took since the daemon started

    @property
    def url(self) -> str:
        return self._client.url

    def wake(self, *_: object) -> None:
        """Work may have arrived."""
        self._wakeup.set()

    # -- one round -------------------------------------------------------------------------

    async def step(self) -> float | None:
        """One round: send the next batch if it is due. Returns the seconds to wait before
        the next round (0: go on at once), or None when nothing waits (until woken)."""
        now = self._clock.now()
        if self.paused_reason is not None and self.retry_at is not None and now < self.retry_at:
            return _seconds(self.retry_at, now)
        rows = await self._outbox.waiting(self.settings.batch_events)
        if not rows:
            if self._machine != self._machine_name:
                # Nothing waits, so nothing is in flight: a new MEMQ_MACHINE_NAME holds now.
                before = self._machine or await self._outbox.stored_machine()
                self._machine = await self._outbox.machine(self._machine_name)
                if before is not None and before != self._machine:
                    log.info("upstream.machine_renamed", before=before, machine=self._machine)
            return None
        head = rows[0]
        if head.next_attempt_at > now:
            self.retry_at = head.next_attempt_at
            return _seconds(head.next_attempt_at, now)
        return await self._send(rows, now)

    async def _send(self, rows: list[OutboxRow], now: EpochMs) -> float:
        """Send the batch at the head of ``rows``, and settle what became of it."""
        batch, local = self._batch(rows)
        if local:
            await self._outbox.settle(Settlement(local_only=local))
            log.info("upstream.local_only", events=len(local))
        if not batch:
            return 0.0
        key = self._key()
        if key is None:
            return self._pause(now)
        if self._machine is None:
            self._machine = await self._outbox.machine(self._machine_name)
        try:
            results = await self._client.send(key, self._machine, [_event(i) for i in batch])
        except UpstreamAuthError as exc:
            self.reachable = True
            return self._pause(now, f"key refused: {exc}")
        except UpstreamUnavailableError as exc:
            return await self._defer(batch, now, str(exc), exc.retry_after)
        except UpstreamRefusedError as exc:
            return await self._refused_batch(batch, exc)
        return await self._settle(batch, results, now)

    def _batch(self, rows: list[OutboxRow]) -> tuple[list[_Item], list[tuple[int, str]]]:
        """The rows to send now (in order, within the limits), and those that stay local."""
        limit = 1 if rows[0].message_id <= self._single_until else self.settings.batch_events
        batch: list[_Item] = []
        local: list[tuple[int, str]] = []
        size = 0
        for row in rows:
            payload = row.payload_value()
            project, reason = self._project(row, payload)
            if project is None:
                local.append((row.message_id, reason))
                continue
            if batch and (len(batch) >= limit or size + row.size > self.settings.batch_bytes):
                break
            batch.append(_Item(row, project, payload))
            size += row.size
        return batch, local

    def _project(self, row: OutboxRow, payload: Any) -> tuple[str | None, str]:
        """The event's project, or None and why it has none."""
        cwd = payload.get("cwd") if isinstance(payload, dict) else None
        if not isinstance(cwd, str) or not cwd:
            known = self._session_projects.get(row.session_id)
            return known, "the event names no directory and its session none yet"
        if cwd not in self._projects:
            if len(self._projects) >= MAX_CACHED_DIRECTORIES:
                self._projects.clear()
            self._projects[cwd] = self._identity(cwd)
        project = self._projects[cwd]
        if project is None:
            return None, f"{cwd} is in no git repository with a remote: not shared"
        self._session_projects[row.session_id] = project
        return project, ""

    def _key(self) -> str | None:
        path = self.settings.key_file
        try:
            return read_key(path)
        except FileNotFoundError:
            self.paused_reason = f"no API key: put the key memq keys create printed in {path}"
        except UnsafeFileError as exc:
            self.paused_reason = f"the API key file cannot be used: {exc}"
        return None

    def _pause(self, now: EpochMs, reason: str | None = None) -> float:
        """Stop sending until ``key_retry`` seconds from now (a refused or missing key)."""
        if reason is not None:
            self.paused_reason = reason
        self._error(self.paused_reason or "paused", now)
        self.retry_at = later(now, span(self.settings.key_retry))
        log.error("upstream.paused", reason=self.paused_reason, retry_in=self.settings.key_retry)
        return self.settings.key_retry

    async def _defer(
        self, batch: list[_Item], now: EpochMs, error: str, retry_after: float | None
    ) -> float:
        """The server was not reached, or failed: the batch waits, stored on its rows."""
        settings = self.settings
        if retry_after is not None:
            delay = min(max(retry_after, settings.first_delay), settings.max_delay)
        else:
            delay = backoff_delay(batch[0].row.attempts + 1, settings, self._jitter())
        delay = span(delay) / 1000  # as stored: whole milliseconds
        self.retry_at = later(now, span(delay))
        await self._outbox.settle(
            Settlement(
                deferred=[item.row.message_id for item in batch],
                next_attempt_at=self.retry_at,
                error=error,
            )
        )
        self.reachable = False
        self._error(error, now)
        log.warning(
            "upstream.unavailable",
            error=error,
            events=len(batch),
            attempt=batch[0].row.attempts + 1,
            retry_in=round(delay, 3),
        )
        return delay

    async def _refused_batch(self, batch: list[_Item], exc: UpstreamRefusedError) -> float:
        """The request was refused as a whole: one event alone is that event's fault."""
        self.reachable = True
        self._error(str(exc), self._clock.now())
        if len(batch) > 1:
            self._single_until = batch[-1].row.message_id
            log.warning("upstream.batch_refused", error=str(exc), events=len(batch))
            return 0.0
        await self._outbox.settle(Settlement(refused=[(batch[0].row.message_id, str(exc))]))
        log.warning("upstream.refused", message_id=batch[0].row.message_id, error=str(exc))
        return 0.0

    async def _settle(self, batch: list[_Item], results: list[Any], now: EpochMs) -> float:
        by_id = {result.local_id: result for result in results}
        sent: list[int] = []
        refused: list[tuple[int, str]] = []
        unanswered: list[int] = []
        for item in batch:
            result = by_id.get(item.row.message_id)
            if result is None:
                unanswered.append(item.row.message_id)
            elif result.status == "refused":
                refused.append((item.row.message_id, result.error or "refused by the server"))
            else:
                sent.append(item.row.message_id)
        delay = 0.0
        settlement = Settlement(sent=sent, refused=refused)
        if unanswered:
            # The server's fault: those events wait as for a failed request.
            delay = backoff_delay(batch[0].row.attempts + 1, self.settings, self._jitter())
            error = f"{self.url} answered nothing for {len(unanswered)} event(s)"
            settlement = Settlement(
                sent=sent,
                refused=refused,
                deferred=unanswered,
                next_attempt_at=later(now, span(delay)),
                error=error,
            )
            self._error(error, now)
        await self._outbox.settle(settlement)
        self.reachable = True
        self.paused_reason = None
        self.retry_at = None
        self.forwarded += len(sent)
        if refused:
            self._error(refused[-1][1], now)
            log.warning("upstream.refused", message_ids=[i for i, _ in refused])
        log.debug("upstream.sent", events=len(sent), refused=len(refused))
        return delay

    def _error(self, error: str, now: EpochMs) -> None:
        self.last_error = error
        self.last_error_at = now

    # -- running ---------------------------------------------------------------------------

    async def run(
        self,
        *,
        foreign_rows: Callable[[], Awaitable[None]] | None = None,
        task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Forward until cancelled (the daemon's task group owns it). ``foreign_rows``
        returns when another process wrote rows (``Queue.wait_for_foreign_rows``)."""
        task_status.started()
        async with anyio.create_task_group() as tg:
            if foreign_rows is not None:
                tg.start_soon(self._watch_foreign_rows, foreign_rows)
            while True:
                try:
                    delay = await self.step()
                except QueueClosedError:
                    break
                except StorageError as exc:
                    log.warning("upstream.read_failed", error=str(exc))
                    delay = ERROR_PAUSE
                if delay is None:
                    await self._wait_for_work(self.settings.idle_check)
                elif delay > 0:
                    # A backoff or a pause: new events do not shorten it.
                    await anyio.sleep(delay)
                else:
                    await anyio.lowlevel.checkpoint()
            tg.cancel_scope.cancel()

    async def _wait_for_work(self, at_most: float) -> None:
        with anyio.move_on_after(at_most):
            await self._wakeup.wait()
        self._wakeup = anyio.Event()

    async def _watch_foreign_rows(self, foreign_rows: Callable[[], Awaitable[None]]) -> None:
        while True:
            try:
                await foreign_rows()
            except QueueClosedError:
                return
            except StorageError:
                await anyio.sleep(ERROR_PAUSE)
            self.wake()

    # -- status ----------------------------------------------------------------------------

    async def status(self) -> dict[str, Any]:
        """The ``upstream`` part of the daemon's status."""
        counts = await self._outbox.counts()
        now = self._clock.now()
        oldest = counts.oldest_waiting_at
        return {
            "url": self.url,
            "mode": "forward" if self._outbox.forward_only else "both",
            "machine": self._machine,
            "machine_setting": self._machine_name,  # differs until nothing waits
            "reachable": self.reachable,
            "waiting": counts.waiting,
            "oldest_waiting_seconds": None if oldest is None else max(_seconds(now, oldest), 0),
            "refused": counts.refused,
            "local_only": counts.local_only,
            "forwarded": self.forwarded,
            "last_error": self.last_error,
            "last_error_seconds_ago": None
            if self.last_error_at is None
            else max(_seconds(now, self.last_error_at), 0),
            "paused": self.paused_reason is not None,
            "paused_reason": self.paused_reason,
            "retry_in_seconds": None
            if self.retry_at is None or self.retry_at <= now
            else _seconds(self.retry_at, now),
        }


def _event(item: _Item) -> dict[str, Any]:
    row = item.row
    return {
        "local_id": row.message_id,
        "session_id": row.session_id,
        "kind": row.kind,
        "dedupe_key": row.dedupe_key,
        "project": item.project,
        "created_at": int(row.created_at),
        "payload": item.payload,
    }


def _seconds(until: EpochMs, since: EpochMs) -> float:
    return round((until - since) / 1000, 3)
