"""Records read by reference: ``GET /api/records?ids=#12,S3,#P7,team#12``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.env import Variable
from memq.exceptions import InvalidRequestError, RecordNotFoundError, TeamReadError
from memq.memory.refs import RecordRef, TeamRef, parse_any_refs
from memq.memory.usage import INDEX_PURPOSE, UsageTool
from memq.worker.http.fetches import record_fetch, refs_of
from memq.worker.http.request import get_services

if TYPE_CHECKING:
    from memq.worker.services import Services


def ref_values(request: Request, name: str = "ids") -> list[str]:
    """Every reference of a repeatable, comma-separated parameter (``?ids=#12,S3&ids=P7``)."""
    return [
        part.strip()
        for value in request.query_params.getlist(name)
        for part in value.split(",")
        if part.strip()
    ]


async def get_records(request: Request) -> Response:
    """``?ids=`` references (``#12`` observation, ``#S3`` summary, ``#P7`` prompt; ``#`` is
    optional, URL-encoded ``%23``; at most ``MAX_RECORD_REFS``): the full records in the order
    asked, ``missing`` naming those memory does not hold. 422 for a bad reference, 404 when
    none is found. ``purpose=index`` marks a read made to index the records (the MCP search
    tool's files and cost hints), not to show them: it is no fetch of the model's.

    A team reference (``team#12``, at most ``MAX_TEAM_REFS``) is read from the team server
    (``TeamReads.records``): its item is marked ``team`` and keeps the ``team#12`` name. 422
    when this daemon has no team server. When the server gives no usable answer, the local
    records are answered all the same, the team's references listed as ``unavailable`` with
    ``team_note`` saying why (502 when only team records were asked for)."""
    values = ref_values(request)
    if not values:
        raise InvalidRequestError("query parameter 'ids' is required (e.g. ids=%2312,S3)")
    purpose = request.query_params.get("purpose")
    if purpose not in (None, INDEX_PURPOSE):
        raise InvalidRequestError(f"query parameter 'purpose' may only be {INDEX_PURPOSE!r}")
    refs = parse_any_refs(tuple(values))
    services = get_services(request)
    local = [ref for ref in refs if isinstance(ref, RecordRef)]
    team = [ref for ref in refs if isinstance(ref, TeamRef)]
    answers: dict[str, Any] = {"items": [], "missing": []}
    unavailable: list[str] = []
    team_note: str | None = None
    if team:
        try:
            team_answer = await _team_records(services, team)
        except TeamReadError as exc:
            if not local:
                raise
            # The server down costs the local records nothing: they are answered, the
            # team's named as not read, with why.
            unavailable, team_note = [str(ref) for ref in team], str(exc)
        else:
            answers["items"] += team_answer["items"]
            answers["missing"] += team_answer["missing"]
    if local:
        local_answer = (await services.lookup.records(local)).to_dict()
        answers["items"] += local_answer["items"]
        answers["missing"] += local_answer["missing"]
    # In the order asked, local and team records alike.
    order = {str(ref): index for index, ref in enumerate(refs)}
    items = sorted(answers["items"], key=lambda item: order.get(str(item["ref"]), len(order)))
    missing = sorted(answers["missing"], key=lambda ref: order.get(ref, len(order)))
    if not items:
        raise RecordNotFoundError(
            f"memory holds no record {', '.join(missing)} (deleted, or never there"
            + (", or of a project your team key may not read)" if team else ")")
            + (f"; {', '.join(unavailable)} not read: {team_note}" if team_note else "")
        )
    # Only local records count as the model's fetches (memq stats): a team record's id is
    # the server's, and would count as this machine's record of that id.
    record_fetch(
        request,
        UsageTool.GET_OBSERVATIONS,
        refs=refs_of(item for item in items if not item.get("team")),
        results=len(items),
    )
    body: dict[str, Any] = {"items": items, "missing": missing, "total": len(items)}
    if unavailable:
        body |= {"unavailable": unavailable, "team_note": team_note}
    return JSONResponse(body)


async def _team_records(services: Services, refs: list[TeamRef]) -> dict[str, Any]:
    if services.team is None:
        raise InvalidRequestError(
            f"{refs[0]} names a record of a team server, and this daemon has none "
            f"({Variable.UPSTREAM} is not set)"
        )
    return await services.team.records(refs)
