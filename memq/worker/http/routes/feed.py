"""The live feed: ``GET /api/feed``, Server-Sent Events of what memory gains (see
``memq.memory.feed``).

Each record is one event: ``id: <seq>``, ``event: record``, ``data: <JSON>``. A stream starts
after the ``Last-Event-ID`` header (a browser's reconnect) or ``?after=<seq>``, and otherwise
with the newest ``?limit=`` items (default 50); then it sends each new record as its ack
commits. Seqs only grow, so a client that resumes after the last id it saw misses nothing and
gets nothing twice. ``?project=``, ``?session=`` and ``?assistant=`` (repeatable or
comma-separated) filter. An idle stream gets a comment line
every ``Feed.heartbeat`` seconds; every stream ends when the daemon stops.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any, Final

import anyio
import structlog
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from memq.exceptions import InvalidRequestError, MemqError, StorageError
from memq.limits import MAX_INTEGER
from memq.memory.feed import BACKLOG, BATCH, MAX_BACKLOG, Feed, FeedItem
from memq.worker.http.params import assistants_param, authors_param, int_param
from memq.worker.http.request import get_services

log = structlog.get_logger("memq.feed")

RETRY_MS: Final = 2000  # how long a browser waits before it reconnects
HEADERS: Final = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


async def stream_feed(request: Request) -> Response:
    """The stream; 422 for a position that is no seq, 503 when the daemon has no feed."""
    services = get_services(request)
    if services.feed is None:
        raise StorageError("the live feed is not open")
    after = _start(request)
    limit = int_param(request, "limit", BACKLOG, low=0, high=MAX_BACKLOG)
    stream = FeedStream(
        services.feed,
        after=after,
        backlog=limit,
        session_key=request.query_params.get("session") or None,
        project=request.query_params.get("project") or None,
        assistants=assistants_param(request),
        authors=authors_param(request),
    )
    return StreamingResponse(stream.events(), media_type="text/event-stream", headers=HEADERS)


def _start(request: Request) -> int | None:
    """Where the stream starts: after the ``Last-Event-ID`` header, else ``?after=``, else
    None (the newest items)."""
    header = request.headers.get("last-event-id")
    if header is not None and header.strip():
        text = header.strip()
        if not text.isdigit() or int(text) > MAX_INTEGER:
            raise InvalidRequestError(f"Last-Event-ID must be a feed seq (got {text[:40]!r})")
        return int(text)
    if request.query_params.get("after") is None:
        return None
    return int_param(request, "after", 0, low=0, high=MAX_INTEGER)


def format_event(item: FeedItem) -> bytes:
    data = json.dumps(item.to_json(), ensure_ascii=False, separators=(",", ":"))
    return f"id: {item.seq}\nevent: record\ndata: {data}\n\n".encode()


class FeedStream:
    """One client's stream: what it has seen (``cursor``) and its filters."""

    def __init__(
        self,
        feed: Feed,
        *,
        after: int | None,
        backlog: int,
        session_key: str | None,
        project: str | None,
        assistants: list[str] | None = None,
        authors: list[str] | None = None,
    ) -> None:
        self._feed = feed
        self._after = after
        self._backlog = backlog
        self._filters: dict[str, Any] = {
            "session_key": session_key,
            "project": project,
            "assistants": assistants,
            "authors": authors,
        }

    async def events(self) -> AsyncGenerator[bytes, None]:
        feed = self._feed
        yield f"retry: {RETRY_MS}\n: memq feed\n\n".encode()
        try:
            cursor = self._after
            if cursor is None:
                # Up to the newest seq now; what commits later follows, without a gap.
                cursor = await feed.reader.last_seq()
                for item in await feed.reader.newest(cursor, limit=self._backlog, **self._filters):
                    yield format_event(item)
                # An id alone moves a browser's Last-Event-ID: it resumes from here, without
                # the backlog again, even when no event followed.
                yield f"id: {cursor}\n\n".encode()
            quiet_since = anyio.current_time()
            while not feed.closed:
                changed = feed.changed()  # before reading: a commit after it wakes the wait
                items = await feed.reader.after(cursor, limit=BATCH, **self._filters)
                for item in items:
                    yield format_event(item)
                    cursor = item.seq
                if items:
                    quiet_since = anyio.current_time()
                    if len(items) == BATCH:
                        continue  # catching up
                idle = anyio.current_time() - quiet_since
                if idle >= feed.heartbeat:
                    yield b": keep-alive\n\n"
                    quiet_since, idle = anyio.current_time(), 0.0
                # Woken by an ack at once; the re-check finds what other processes wrote.
                with anyio.move_on_after(min(feed.recheck, feed.heartbeat - idle)):
                    await changed.wait()
        except MemqError as exc:
            # The status line is sent: the stream ends, the client resumes from its last id.
            log.warning("feed.stream_failed", error=str(exc))
