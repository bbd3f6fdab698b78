"""The projects memory knows: ``GET /api/projects`` (the viewer's project pickers)."""

from __future__ import annotations

from typing import Final

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.memory.records import from_epoch_ms, isoformat_utc
from memq.storage.sqlfile import load_queries
from memq.worker.http.params import int_param
from memq.worker.http.request import get_services

QUERIES: Final = load_queries("projects")
DEFAULT_PROJECTS: Final = 200
MAX_PROJECTS: Final = 1000


async def list_projects(request: Request) -> Response:
    """Each project with its session count and last activity, newest first: ``limit``
    (1..1000, default 200), ``offset``; ``total`` counts them all."""
    limit = int_param(request, "limit", DEFAULT_PROJECTS, low=1, high=MAX_PROJECTS)
    offset = int_param(request, "offset", 0, low=0, high=2**62)
    queue = get_services(request).queue
    rows = await queue.read(QUERIES["list_projects"], {"limit": limit, "offset": offset})
    (counted,) = await queue.read(QUERIES["count_projects"])
    return JSONResponse(
        {
            "items": [
                {
                    "project": row["project"],
                    "session_count": int(row["session_count"]),
                    "last_activity_at": isoformat_utc(from_epoch_ms(int(row["last_activity_at"]))),
                }
                for row in rows
            ],
            "total": int(counted["total"]),
            "limit": limit,
            "offset": offset,
        }
    )
