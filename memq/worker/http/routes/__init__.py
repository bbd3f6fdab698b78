"""Every route of the HTTP API, in the order they are matched.

A session id may hold ``/`` (``{session_id:path}``), so the routes under a session come
before ``/api/sessions/{id}`` itself, which would otherwise take ``abc/observations`` for an
id. One module per topic: ``events`` (the intake), ``health``, ``sessions`` (reads and the
session operations), ``session_config``, ``memory`` (search, timeline, context, a session's
records and history), ``records`` (records by reference), ``projects`` (the projects memory
knows), ``queue`` (failed messages, resume), ``upstream`` (the outbox to the team
server), ``archive`` (export, import), ``feed`` (the live
feed), ``viewer`` (the page and its assets).
"""

from __future__ import annotations

from starlette.routing import Route

from memq.worker.http.routes import (
    archive,
    events,
    feed,
    health,
    memory,
    projects,
    queue,
    records,
    session_config,
    sessions,
    stats,
    upstream,
    viewer,
)

SESSION = "/api/sessions/{session_id:path}"

ROUTES: list[Route] = [
    Route("/api/health", health.health, methods=["GET"]),
    Route("/api/events", events.post_event, methods=["POST"]),
    Route("/api/status", health.status, methods=["GET"]),
    Route("/api/sessions", sessions.list_sessions, methods=["GET"]),
    Route(f"{SESSION}/observations", memory.observations, methods=["GET"]),
    Route(f"{SESSION}/summaries", memory.summaries, methods=["GET"]),
    Route(f"{SESSION}/export", archive.export_session, methods=["GET"]),
    Route(f"{SESSION}/revert", sessions.revert_session, methods=["POST"]),
    Route(f"{SESSION}/transfer", sessions.transfer_session, methods=["POST"]),
    Route(f"{SESSION}/fork", sessions.fork_session, methods=["POST"]),
    Route(f"{SESSION}/config", session_config.get_config, methods=["GET"]),
    Route(f"{SESSION}/config/{{name}}", session_config.get_setting, methods=["GET"]),
    Route(f"{SESSION}/config/{{name}}", session_config.put_setting, methods=["PUT"]),
    Route(f"{SESSION}/config/{{name}}", session_config.delete_setting, methods=["DELETE"]),
    Route(f"{SESSION}/title", sessions.set_title, methods=["PUT"]),
    Route(f"{SESSION}/history", memory.get_history, methods=["GET"]),
    Route(SESSION, sessions.get_session, methods=["GET"]),
    Route(SESSION, sessions.delete_session, methods=["DELETE"]),
    Route("/api/projects", projects.list_projects, methods=["GET"]),
    Route("/api/context", memory.get_context, methods=["GET"]),
    Route("/api/search", memory.search, methods=["GET"]),
    Route("/api/timeline", memory.timeline, methods=["GET"]),
    Route("/api/records", records.get_records, methods=["GET"]),
    Route("/api/stats", stats.stats, methods=["GET"]),
    Route("/api/feed", feed.stream_feed, methods=["GET"]),
    Route("/api/failed", queue.failed, methods=["GET"]),
    Route("/api/failed/retry", queue.retry_failed, methods=["POST"]),
    Route("/api/resume", queue.resume, methods=["POST"]),
    Route("/api/upstream/events", upstream.events, methods=["GET"]),
    Route("/api/upstream/retry", upstream.retry, methods=["POST"]),
    Route("/api/upstream/drop", upstream.drop, methods=["POST"]),
    Route("/api/import", archive.import_session, methods=["POST"]),
    Route("/", viewer.index, methods=["GET"]),
    Route("/static/{name:path}", viewer.static, methods=["GET"]),
]

__all__ = ["ROUTES"]
