"""Whether the daemon runs: ``GET /api/health`` (no token needed) and ``GET /api/status``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq import __version__
from memq.worker.disk import DiskState
from memq.worker.http.request import get_services
from memq.worker.status import live_status


async def health(request: Request) -> Response:
    """Whether the daemon runs (200 whenever it answers), and whether its disk is full
    (the details, paths included, are for ``/api/status``: this route needs no token)."""
    services = get_services(request)
    disk = services.disk
    return JSONResponse(
        {
            "status": "ok" if disk.state is DiskState.OK else "disk_full",
            "state": services.state(),
            "version": __version__,
            "pid": services.pid,
            "disk": {
                "state": disk.state.value,
                "full": disk.state is not DiskState.OK,
                "accepting": disk.accepting,
            },
        }
    )


async def status(request: Request) -> Response:
    """The daemon's state, its queue, sessions, disk, spool and settings
    (``memq.worker.status``)."""
    return JSONResponse(await live_status(get_services(request)))
