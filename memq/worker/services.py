"""What the HTTP routes work with: the daemon's open resources, in one place."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from memq.limits import DEFAULT_CONTEXT_BUDGET
from memq.memory.archive import SessionExporter
from memq.memory.backend import MemoryBackend
from memq.memory.context import ContextBuilder
from memq.memory.feed import Feed
from memq.memory.lookup import RecordLookup
from memq.memory.recall import RecallSettings
from memq.memory.search import MemorySearch
from memq.memory.usage import UsageRecorder
from memq.memory.usage_figures import UsageFigures
from memq.processors.pool import ProcessorPool
from memq.queue import QueueBase
from memq.redact import BUILT_IN, Redactor
from memq.worker.activity import ActivityTracker
from memq.worker.disk import DiskMonitor
from memq.worker.forks import ForkLinker
from memq.worker.session_config import SessionConfigs
from memq.worker.sessions import SessionManager
from memq.worker.spool_intake import SpoolIntake

if TYPE_CHECKING:
    from memq.team.forwarder import Forwarder
    from memq.team.server import TeamListener
    from memq.team.team_reads import TeamReads


@dataclass(frozen=True, slots=True)
class SharedDatabase:
    """The PostgreSQL database several daemons share: its URL as shown (no password), and
    how to list the live daemons (``PgQueue.daemons``)."""

    url: str
    daemons: Callable[[], Awaitable[list[dict[str, Any]]]]


@dataclass
class Services:
    """What the routes work with; owned by the daemon."""

    queue: QueueBase
    store: MemoryBackend
    sessions: SessionManager
    state: Callable[[], str]
    port: int
    started_at: float
    pid: int
    context: ContextBuilder
    search: MemorySearch
    lookup: RecordLookup  # records by reference (#12, #S3, #P7)
    exporter: SessionExporter
    configs: SessionConfigs
    processors: ProcessorPool
    forks: ForkLinker
    activity: ActivityTracker
    usage: UsageRecorder  # what contexts showed and what the model fetched (memq stats)
    usage_figures: UsageFigures  # the figures of it
    disk: DiskMonitor  # the disk reserve and whether a full disk refuses new events
    skip_tools: frozenset[str] = frozenset()
    # Takes secrets out of what comes in (memq.redact); None: MEMQ_REDACT=off.
    redactor: Redactor | None = BUILT_IN
    recall: RecallSettings = field(default_factory=RecallSettings)  # per-prompt recall
    # Tokens a SessionStart's text may use, the team's block included (MEMQ_CONTEXT_BUDGET).
    context_budget: int = DEFAULT_CONTEXT_BUDGET
    ephemeral: bool = False  # the database lives in memory and goes with the daemon
    # Each setting the daemon started with and where it came from (memq.config).
    settings_report: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Takes in what hooks spooled; None in tests that build the routes without a home.
    spool: SpoolIntake | None = None
    feed: Feed | None = None  # the live feed (GET /api/feed); None: the route answers 503
    shared: SharedDatabase | None = None  # on PostgreSQL: the database and its daemons
    upstream: Forwarder | None = None  # forwarding to the team server (MEMQ_UPSTREAM)
    team: TeamReads | None = None  # the team's context and search (MEMQ_UPSTREAM)
    team_listener: TeamListener | None = None  # memq serve --team: its listener (the status)
