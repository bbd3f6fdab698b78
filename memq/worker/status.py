"""The daemon's own status: ``GET /api/status`` (``memq.worker.status_report`` is its shape)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from memq import __version__
from memq.worker.session_pauses import paused_processors
from memq.worker.status_report import StatusReport, shared_database, spool_counts

if TYPE_CHECKING:
    from memq.worker.services import Services


async def live_status(services: Services) -> dict[str, Any]:
    """The status document as the running daemon knows it."""
    stats = await services.queue.stats()
    return StatusReport(
        state=services.state(),
        port=services.port,
        queue=stats,
        paused_sessions=services.configs.paused_sessions,
        session_ttl=services.activity.ttl,
        disk=services.disk.report(),
        spool=services.spool.counts() if services.spool else spool_counts(None),
        pid=services.pid,
        version=__version__,
        processor=services.processors.default.name,
        started_at=services.started_at,
        uptime_seconds=round(time.time() - services.started_at, 3),
        active_sessions=services.sessions.active_sessions,
        processing=services.sessions.processing,
        pause_reason=services.sessions.pause_reason,
        paused_processors=paused_processors(services.configs, services.processors),
        ephemeral=services.ephemeral,
        tracked_sessions=services.activity.tracked,
        settings=services.settings_report,
        processing_messages=await services.queue.processing_messages(),
        postgres=await _postgres(services),
        upstream=await _upstream(services),
        team_server=await _team_server(services),
    ).as_dict()


async def _team_server(services: Services) -> dict[str, Any] | None:
    """``memq serve --team``'s listener, keys and recent requests; None otherwise."""
    if services.team_listener is None:
        return None
    from memq.team.team_status import team_server_status  # noqa: PLC0415 - the team server

    return await team_server_status(services.queue, services.team_listener)


async def _upstream(services: Services) -> dict[str, Any] | None:
    """The forwarding's status, with the team context cache's (``team_context``)."""
    if services.upstream is None:
        return None
    status = await services.upstream.status()
    if services.team is not None:
        status["team_context"] = services.team.status()
    return status


async def _postgres(services: Services) -> dict[str, Any] | None:
    """The database and its live daemons, on PostgreSQL; None on SQLite."""
    if services.shared is None:
        return None
    return shared_database(services.shared.url, await services.shared.daemons())
