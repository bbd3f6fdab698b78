"""Records read by reference: ``GET /api/records?ids=#12,S3,#P7``."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from memq.exceptions import InvalidRequestError, RecordNotFoundError
from memq.memory.lookup import no_records
from memq.memory.refs import parse_refs
from memq.memory.usage import INDEX_PURPOSE, UsageTool
from memq.worker.http.fetches import answered
from memq.worker.http.request import get_services


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
    tool's files and cost hints), not to show them: it is no fetch of the model's."""
    values = ref_values(request)
    if not values:
        raise InvalidRequestError("query parameter 'ids' is required (e.g. ids=%2312,S3)")
    purpose = request.query_params.get("purpose")
    if purpose not in (None, INDEX_PURPOSE):
        raise InvalidRequestError(f"query parameter 'purpose' may only be {INDEX_PURPOSE!r}")
    lookup = await get_services(request).lookup.records(parse_refs(tuple(values)))
    if not lookup.found:
        raise RecordNotFoundError(no_records(lookup.missing))
    return answered(request, UsageTool.GET_OBSERVATIONS, lookup.to_dict())
