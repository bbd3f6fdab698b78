"""Whether the model uses memory: ``GET /api/stats`` (see ``memq.memory.usage_figures``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.memory.usage_figures import DEFAULT_SESSIONS, MAX_SESSIONS
from memq.worker.http.params import int_param
from memq.worker.http.request import get_services


async def stats(request: Request) -> Response:
    """The figures of memory's use per project and overall, and of the newest sessions:
    ``?project=`` only that project, ``?sessions=N`` (0..1000, default 10) sessions."""
    services = get_services(request)
    project = request.query_params.get("project") or None
    sessions = int_param(request, "sessions", DEFAULT_SESSIONS, low=0, high=MAX_SESSIONS)
    await services.usage.flush()  # what was just recorded counts
    answer = await services.usage_figures.answer(project=project, sessions=sessions)
    return JSONResponse(answer)
