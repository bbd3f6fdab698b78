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

``settings.upstream`` (MEMQ_UPSTREAM) adds the forwarder to the team server
(``open_forwarder``, ``memq.team.forwarder``), woken by the session manager's notifications;
the outbox it reads (``memq.team.outbox``) is switched on or off at every start by the daemon.
``forward_only`` (MEMQ_UPSTREAM_MODE=forward) keeps every session from being processed here.

``settings.database_url`` chooses PostgreSQL (``on_postgres``; ``--ephemeral`` still keeps
everything in memory): the daemon opens a ``PgQueue`` (``open_pg_queue``)
(which migrates the schema and registers the daemon with its host, pid and port) and the
memory readers share one pool of their own (``MemorySource``); search runs in PostgreSQL's
dialect. What is about a SQLite file is not done there: no integrity check or instance lock
(daemons share the database), no disk reserve (the database's disk is the server's), no file
watch or WAL; ``memq status`` shows the database's size (``pg_database_size``) and the live
daemons instead.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar, cast

import anyio
import structlog

from memq import redact
from memq.config import UPSTREAM_FORWARD, Settings, settings_report
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
from memq.queue import Clock, QueueBase, QueueSettings, Synchronous
from memq.storage.postgres.url import shown_url
from memq.storage.sqlfile import POSTGRES
from memq.team.context_share import team_share
from memq.team.outbox import Outbox
from memq.team.warm_start import recent_projects
from memq.worker.activity import ActivityTracker
from memq.worker.disk import DiskMonitor, Reserve
from memq.worker.forks import ForkLinker
from memq.worker.processing import ClaimHandler
from memq.worker.services import Services, SharedDatabase
from memq.worker.session_config import SessionConfigs
from memq.worker.session_pauses import SessionPauses
from memq.worker.sessions import SessionManager
from memq.worker.spool_intake import QueueTarget, SpoolIntake

R = TypeVar("R", bound=ReadsMemory)
log = structlog.get_logger("memq.daemon")

if TYPE_CHECKING:
    from memq.memory.pg_search import PgMemoryReader
    from memq.queue.postgres import PgQueue
    from memq.team.forwarder import Forwarder
    from memq.team.team_reads import TeamReads


@dataclass(frozen=True, slots=True)
class Built:
    """One round's services, and the spool intake the daemon runs (``services.spool`` too,
    where it is optional for routes built without a home)."""

    services: Services
    spool: SpoolIntake
    # The outbox to the team server (its switch is set at every start) and its forwarder
    # (None: MEMQ_UPSTREAM is not set).
    outbox: Outbox
    upstream: Forwarder | None = None


def on_postgres(settings: Settings) -> bool:
    """Whether the daemon runs on ``settings.database_url``'s PostgreSQL database: it is set,
    and the daemon is not ephemeral (that one's database is in memory, whatever is set)."""
    return bool(settings.database_url) and not settings.ephemeral


def disk_monitor(settings: Settings) -> DiskMonitor:
    """The disk monitor and its reserve file under the home."""
    # An ephemeral daemon's database, or a server's, is not on the home's disk: no reserve.
    reserve_size = 0 if settings.ephemeral or on_postgres(settings) else settings.reserve_bytes
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


async def open_pg_queue(settings: Settings, *, port: int) -> QueueBase:
    """The PostgreSQL queue of ``settings.database_url``: the schema migrated, this daemon
    registered (host, pid, ``port``)."""
    from memq.queue.postgres import PgQueue, PgSettings  # noqa: PLC0415 - needs the driver

    pg = PgSettings(
        heartbeat_interval=settings.heartbeat_interval,
        heartbeat_expiry=settings.heartbeat_expiry,
        port=port,
    )
    return await PgQueue.open(settings.database_url, queue_settings(settings), pg=pg)


@contextlib.asynccontextmanager
async def open_services(
    settings: Settings,
    queue: QueueBase,
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
    async with contextlib.AsyncExitStack() as readers:
        source = await MemorySource.open(settings, readers)
        store = await source.reader(MemoryStore)
        context = await source.reader(ContextBuilder)
        search = await source.search()
        lookup = await source.reader(RecordLookup)
        exporter = await source.reader(SessionExporter)
        usage_figures = await source.reader(UsageFigures)
        usage_figures.prices = settings.model_prices  # the cost estimate of memq stats
        feed = Feed(await source.reader(FeedReader), queue, clock=queue.clock)
        budget = await _token_budget(source, settings, queue)
        configs = await SessionConfigs.load(queue)
        outbox = Outbox(queue, forward_only=forward_only(settings))
        sessions = _session_manager(
            settings, queue, store, configs, processors, budget=budget, on_stored=feed.notify
        )
        upstream = await open_forwarder(settings, outbox, queue.clock, readers)
        if upstream is not None:
            sessions.on_work(upstream.wake)  # the queue's enqueue wake-up reaches it too
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
            context_budget=settings.context_budget,
            ephemeral=settings.ephemeral,
            settings_report=settings_report(settings.environment or os.environ),
            spool=spool,
            feed=feed,
            shared=_shared_database(settings, queue),
            upstream=upstream,
            team=open_team_reads(settings, outbox, queue, readers),
        )
        yield Built(services, spool, outbox, upstream)


def forward_only(settings: Settings) -> bool:
    """``MEMQ_UPSTREAM_MODE=forward`` with a team server set: events are forwarded, not
    processed here (the session manager takes none; the forwarder marks each one processed
    once the server has it, in the transaction that settles its outbox row)."""
    return bool(settings.upstream) and settings.upstream_mode == UPSTREAM_FORWARD


def _shared_database(settings: Settings, queue: QueueBase) -> SharedDatabase | None:
    """What the status says of a PostgreSQL database; None on SQLite."""
    if not on_postgres(settings):
        return None
    daemons = cast("PgQueue", queue).daemons
    return SharedDatabase(shown_url(settings.database_url), daemons)


def _session_manager(
    settings: Settings,
    queue: QueueBase,
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
    # MEMQ_UPSTREAM_MODE=forward: no session is processed here (see ``forward_only``).
    is_paused = _always if forward_only(settings) else SessionPauses(configs, processors).is_paused
    sessions = SessionManager(
        queue,
        handler,
        capacity=settings.capacity,
        linger=settings.linger,
        is_paused=is_paused,
    )
    configs.on_change(sessions.setting_changed)
    return sessions


async def open_forwarder(
    settings: Settings, outbox: Outbox, clock: Clock, readers: contextlib.AsyncExitStack
) -> Forwarder | None:
    """The forwarder to ``settings.upstream`` (its HTTP client closed with ``readers``);
    None when no team server is set."""
    if not settings.upstream:
        return None
    from memq.team.forwarder import Forwarder, ForwardSettings  # noqa: PLC0415 - httpx
    from memq.team.upstream_client import UpstreamClient  # noqa: PLC0415

    client = UpstreamClient(settings.upstream)
    readers.push_async_callback(shielded, client.aclose)
    forwarder = Forwarder(
        outbox,
        client,
        ForwardSettings(key_file=settings.upstream_key_path),
        clock=clock,
        machine=settings.machine_name,
    )
    log.info(
        "upstream.configured",
        url=settings.upstream,
        mode=settings.upstream_mode,
        key_file=str(settings.upstream_key_path),
    )
    return forwarder


def open_team_reads(
    settings: Settings, outbox: Outbox, queue: QueueBase, readers: contextlib.AsyncExitStack
) -> TeamReads | None:
    """The reads of the team's context and search (``memq.team.team_reads``; its HTTP client
    closed with ``readers``), which ask at start for the team context of the projects
    worked in lately (``memq.team.warm_start``); None when no team server is set."""
    if not settings.upstream:
        return None
    from memq.team.team_reads import TeamReads  # noqa: PLC0415 - httpx

    async def machines() -> list[str]:
        # Read, not claimed: only the forwarder changes the stored name, when nothing waits;
        # the configured name is the one it takes next, the older ones hold records too.
        return [*await outbox.machines(), settings.machine_name]

    # Mode both: this laptop's own records are in local memory; the server leaves them out.
    mine = None if forward_only(settings) else machines
    # The server builds the team's block within its share of the SessionStart's budget.
    budget = team_share(settings.context_budget)
    reads = TeamReads(
        settings.upstream,
        settings.upstream_key_path,
        mine,
        queue.clock,
        budget=budget,
        recent=functools.partial(recent_projects, queue),
    )
    readers.push_async_callback(shielded, reads.aclose)
    return reads


def _always(_session_key: str) -> bool:
    return True


async def _token_budget(
    source: MemorySource, settings: Settings, queue: QueueBase
) -> Budgeted | None:
    """The daily token budget, reading the day's spend on a connection of its own; None
    when no budget is set."""
    if not settings.daily_tokens:
        return None
    spend = await source.reader(ModelUsageReader)
    return Budgeted(TokenBudget(settings.daily_tokens, spend.tokens_since, clock=queue.clock))


def _activity_tracker(settings: Settings, queue: QueueBase) -> ActivityTracker:
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


class MemorySource:
    """Where the memory readers read: a connection each on the SQLite file, or one shared
    pool on PostgreSQL; each reader is closed (shielded) with the round's ``readers``."""

    def __init__(
        self, readers: contextlib.AsyncExitStack, database: Path, pg: PgMemoryReader | None
    ) -> None:
        self._readers = readers
        self._database = database
        self._pg = pg

    @classmethod
    async def open(cls, settings: Settings, readers: contextlib.AsyncExitStack) -> MemorySource:
        """The source for ``settings``' database (its pool, if any, closed with ``readers``)."""
        if not on_postgres(settings):
            return cls(readers, settings.database_path, None)
        from memq.memory.pg_search import PgMemoryReader  # noqa: PLC0415 - needs the driver

        pool = await PgMemoryReader.open(settings.database_url)
        readers.push_async_callback(shielded, pool.close)
        return cls(readers, settings.database_path, pool)

    async def reader(self, kind: type[R]) -> R:
        """A memory reader of ``kind``."""
        if self._pg is not None:
            return kind(self._shared())  # the pool closes with the round, not with a reader
        reader = await kind.open(self._database)
        self._readers.push_async_callback(shielded, reader.close)
        return reader

    async def search(self) -> MemorySearch:
        """Memory search, in the database's dialect."""
        if self._pg is None:
            return await self.reader(MemorySearch)
        return MemorySearch(self._shared(), dialect=POSTGRES)

    def _shared(self) -> PgMemoryReader:
        assert self._pg is not None
        return self._pg.sharing()


async def shielded(close: Callable[[], Awaitable[None]]) -> None:
    """Run ``close`` shielded from cancellation: a shutdown by cancellation still closes the
    database cleanly and hands back unsettled claims."""
    with anyio.CancelScope(shield=True):
        await close()
