"""The daemon's composition root: every service it runs, built from ``Settings`` and wired.

What is built here and how the parts hold each other; when they start, in what order, and how
they stop belongs to the daemon (``memq.worker.daemon``), which calls these in its start-up
order:

- ``disk_monitor``, ``processor_pool`` and ``queue_settings``: once per daemon, before the
  queue's lock is taken (a bad default processor fails the start without touching the
  database).
- ``open_services``: once per round of serving, on the open queue. It opens the memory readers
  on the queue's database and closes them, shielded, when the round ends (a database whose
  files were replaced is served again on new connections), and wires the session manager, its
  claim handler, session settings and pauses, the fork linker, the activity tracker and the
  spool intake into the ``Services`` the routes work with.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import anyio

from memq import redact
from memq.config import Settings, settings_report
from memq.memory.archive import SessionExporter
from memq.memory.backend import MemoryBackend
from memq.memory.context import ContextBuilder
from memq.memory.feed import Feed, FeedReader
from memq.memory.lookup import RecordLookup
from memq.memory.model_usage import ModelUsageReader
from memq.memory.reader import ReadsMemory
from memq.memory.recall import RecallSettings
from memq.memory.search import MemorySearch
from memq.memory.store import MemoryStore
from memq.memory.usage import UsageRecorder
from memq.memory.usage_figures import UsageFigures
from memq.processors.base import Processor
from memq.processors.budget import Budgeted, TokenBudget
from memq.processors.pool import ProcessorPool
from memq.queue import Queue, QueueSettings, Synchronous
from memq.worker.activity import ActivityTracker
from memq.worker.disk import DiskMonitor, Reserve
from memq.worker.forks import ForkLinker
from memq.worker.processing import ClaimHandler
from memq.worker.services import Services
from memq.worker.session_config import SessionConfigs
from memq.worker.session_pauses import SessionPauses
from memq.worker.sessions import SessionManager
from memq.worker.spool_intake import QueueTarget, SpoolIntake

R = TypeVar("R", bound=ReadsMemory)


@dataclass(frozen=True, slots=True)
class Built:
    """One round's services, and the spool intake the daemon runs (``services.spool`` too,
    where it is optional for routes built without a home)."""

    services: Services
    spool: SpoolIntake


def disk_monitor(settings: Settings) -> DiskMonitor:
    """The disk monitor and its reserve file under the home."""
    # An ephemeral daemon's database is not on the home's disk: it keeps no reserve there.
    reserve_size = 0 if settings.ephemeral else settings.reserve_bytes
    return DiskMonitor(Reserve(settings.paths.reserve, reserve_size))


def processor_pool(settings: Settings) -> ProcessorPool:
    """The processors sessions may use; raises when the default one cannot be configured."""
    # The model-based processors read their keys from the same environment and file.
    return ProcessorPool(settings.processor, env=settings.environment)


def queue_settings(settings: Settings) -> QueueSettings:
    """How the daemon's queue retries, leases and syncs."""
    return QueueSettings(
        max_attempts=settings.max_attempts,
        lease=settings.lease,
        synchronous=Synchronous(settings.synchronous),
    )


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    queue: Queue,
    *,
    processors: ProcessorPool,
    disk: DiskMonitor,
    state: Callable[[], str],
    port: int,
    started_at: float,
) -> AsyncIterator[Built]:
    """The services for one round of serving on ``queue``'s database (``state``, ``port`` and
    ``started_at`` are the daemon's, for the status route); the memory readers close when
    the round ends."""
    database = settings.database_path
    async with contextlib.AsyncExitStack() as readers:
        store = await _open_reader(readers, MemoryStore, database)
        context = await _open_reader(readers, ContextBuilder, database)
        search = await _open_reader(readers, MemorySearch, database)
        lookup = await _open_reader(readers, RecordLookup, database)
        exporter = await _open_reader(readers, SessionExporter, database)
        usage_figures = await _open_reader(readers, UsageFigures, database)
        usage_figures.prices = settings.model_prices  # the cost estimate of memq stats
        feed = Feed(await _open_reader(readers, FeedReader, database), queue, clock=queue.clock)
        budget = await _token_budget(readers, settings, queue)
        configs = await SessionConfigs.load(queue)
        sessions = _session_manager(
            settings, queue, store, configs, processors, budget=budget, on_stored=feed.notify
        )
        forks = ForkLinker(queue)
        activity = _activity_tracker(settings, queue)
        activity.on_expire(sessions.expire)
        activity.on_expire(forks.forget)
        redactor = redact.redactor(settings.redact, settings.redact_patterns)
        if redactor is not None:
            redactor.warm()  # now, not on the first event with a secret
        spool = _spool_intake(settings, QueueTarget(queue, forks, sessions.notify), redactor)
        services = Services(
            queue=queue,
            store=store,
            sessions=sessions,
            state=state,
            port=port,
            started_at=started_at,
            pid=os.getpid(),
            context=context,
            search=search,
            lookup=lookup,
            exporter=exporter,
            configs=configs,
            processors=processors,
            forks=forks,
            activity=activity,
            usage=UsageRecorder(queue, clock=queue.clock),
            usage_figures=usage_figures,
            disk=disk,
            skip_tools=settings.skip_tools,
            redactor=redactor,
            recall=RecallSettings(
                enabled=settings.recall_on_prompt,
                min_score=settings.recall_min_score,
                budget_tokens=settings.recall_budget,
            ),
            ephemeral=settings.ephemeral,
            settings_report=settings_report(settings.environment or os.environ),
            spool=spool,
            feed=feed,
        )
        yield Built(services, spool)


def _session_manager(
    settings: Settings,
    queue: Queue,
    store: MemoryBackend,
    configs: SessionConfigs,
    processors: ProcessorPool,
    *,
    budget: Budgeted | None = None,
    on_stored: Callable[[], None] | None = None,
) -> SessionManager:
    """The session manager, with the claim handler that turns a claimed message into memory
    by the processor the session's settings name (``extract`` once ``budget`` is spent)."""

    def pause(reason: str) -> None:
        sessions.pause(reason)  # bound late: the manager needs the handler first

    def processor_for(session_key: str) -> Processor:
        config = configs.get(session_key)
        return processors.get(config.processor, config.model)

    handler = ClaimHandler(processor_for, store, pause=pause, budget=budget, on_stored=on_stored)
    sessions = SessionManager(
        queue,
        handler,
        capacity=settings.capacity,
        linger=settings.linger,
        is_paused=SessionPauses(configs, processors).is_paused,
    )
    configs.on_change(sessions.setting_changed)
    return sessions


async def _token_budget(
    readers: contextlib.AsyncExitStack, settings: Settings, queue: Queue
) -> Budgeted | None:
    """The daily token budget, reading the day's spend on a connection of its own; None
    when no budget is set."""
    if not settings.daily_tokens:
        return None
    spend = await _open_reader(readers, ModelUsageReader, settings.database_path)
    return Budgeted(TokenBudget(settings.daily_tokens, spend.tokens_since, clock=queue.clock))


def _activity_tracker(settings: Settings, queue: Queue) -> ActivityTracker:
    """Which sessions are active, and when one goes idle long enough to expire."""
    return ActivityTracker(
        queue,
        ttl=settings.session_ttl,
        flush_every_events=settings.activity_flush_events,
        flush_interval=settings.activity_flush_interval,
        clock=queue.clock,
    )


def _spool_intake(
    settings: Settings, target: QueueTarget, redactor: redact.Redactor | None
) -> SpoolIntake:
    """Takes in the events hooks spooled when neither this daemon nor the database took
    them; its directory is made now, so hooks find it."""
    spool = SpoolIntake(
        settings.paths.home, target, max_body_bytes=settings.body_limit, redactor=redactor
    )
    spool.prepare()
    return spool


async def _open_reader(readers: contextlib.AsyncExitStack, kind: type[R], database: Path) -> R:
    """A memory reader of ``kind`` on ``database``, closed (shielded) with ``readers``."""
    reader = await kind.open(database)
    readers.push_async_callback(shielded, reader.close)
    return reader


async def shielded(close: Callable[[], Awaitable[None]]) -> None:
    """Run ``close`` shielded from cancellation: a shutdown by cancellation still closes the
    database cleanly and hands back unsettled claims."""
    with anyio.CancelScope(shield=True):
        await close()
