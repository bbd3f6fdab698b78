"""The outbox to the team server (``memq upstream``): list what it holds, send the refused
events again, drop those that will not be sent (``memq.team.outbox_admin``)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.limits import MAX_PAGE
from memq.team import outbox_admin
from memq.worker.http.params import int_param
from memq.worker.http.request import get_services, read_json

DEFAULT_LIMIT = 100


async def events(request: Request) -> Response:
    """The outbox's rows: ``state`` (waiting, refused, local_only; repeatable or
    comma-separated; default waiting and refused) and ``limit``."""
    services = get_services(request)
    states = outbox_admin.parse_states(request.query_params.getlist("state"))
    limit = int_param(request, "limit", DEFAULT_LIMIT, low=1, high=MAX_PAGE)
    body = await outbox_admin.held_events(services.queue, states, limit)
    forwarder = services.upstream
    return JSONResponse({**body, "upstream": None if forwarder is None else forwarder.url})


async def retry(request: Request) -> Response:
    """Body ``{"ids": [N, ...]}`` or ``{"all": true}``: refused events wait again."""
    services = get_services(request)
    ids = outbox_admin.ids_or_all(await read_json(request))
    retried = await outbox_admin.retry_refused(services.queue, ids)
    if services.upstream is not None and retried:
        services.upstream.wake()
    return JSONResponse({"retried": retried})


async def drop(request: Request) -> Response:
    """Body ``{"ids": [N, ...]}``: forget events that will not be sent."""
    services = get_services(request)
    ids = outbox_admin.ids_only(await read_json(request))
    return JSONResponse({"dropped": await outbox_admin.drop_unsent(services.queue, ids)})
