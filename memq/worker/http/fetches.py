"""Which reads of memory the model made through the MCP tools, for ``memq stats``.

The MCP server (``memq mcp``) marks its calls of the API with headers:

- ``X-Memq-Via: mcp``: the read is the model's (only these are recorded);
- ``X-Memq-Project: <project>``: the project the tool was called in (its directory,
  URL-quoted: a header is Latin-1);
- ``X-Memq-Tool: <tool>`` (optional): the tool, when one tool calls more than one route
  (``timeline`` with a query searches first); otherwise the route names it;
- ``X-Memq-Session: <session id>`` (optional): the session, when the server knows it; when
  it does not, the recorder attributes the read (``memq.memory.usage``).

A read made only to index records (``?purpose=index``) is not recorded. Recording costs the
route an append to a list and never fails it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, Final
from urllib.parse import unquote

import structlog
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.events import normalize_session_key
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef
from memq.memory.usage import (
    INDEX_PURPOSE,
    PROJECT_HEADER,
    SESSION_HEADER,
    TOOL_HEADER,
    VIA_HEADER,
    VIA_MCP,
    UsageTool,
)
from memq.worker.http.request import get_services

log = structlog.get_logger("memq.usage")

_TOOLS: Final = frozenset(tool.value for tool in UsageTool)


def from_mcp(request: Request) -> bool:
    """Whether the MCP server made this request for the model; a read made only to index
    records (``?purpose=index``, see ``routes.records``) is none."""
    return (
        request.headers.get(VIA_HEADER, "").strip().lower() == VIA_MCP
        and request.query_params.get("purpose") != INDEX_PURPOSE
    )


def answered(
    request: Request, tool: UsageTool, answer: dict[str, Any], *, query: str | None = None
) -> Response:
    """The route's JSON ``answer``, its read recorded first (``record_answer``)."""
    record_answer(request, tool, answer, query=query)
    return JSONResponse(answer)


def record_fetch(
    request: Request,
    tool: UsageTool,
    *,
    refs: Iterable[RecordRef | str] = (),
    results: int = 0,
    query: str | None = None,
) -> None:
    """Record the model's read made by ``request`` (nothing when it is not from the MCP
    server): ``refs`` the records it fetched by name, ``results`` how many the answer
    listed. Never raises."""
    if not from_mcp(request):
        return
    try:
        headers = request.headers
        named = headers.get(TOOL_HEADER, "").strip()
        session = headers.get(SESSION_HEADER, "").strip()
        get_services(request).usage.record_fetch(
            named if named in _TOOLS else tool.value,
            project=unquote(headers.get(PROJECT_HEADER, "").strip()) or None,
            session_key=normalize_session_key(session) if session else None,
            refs=refs,
            results=results,
            query=query,
        )
    except Exception as exc:  # a bad header never fails the read it came with
        log.warning("usage.fetch_not_recorded", path=request.url.path, error=str(exc))


def refs_of(items: Iterable[Mapping[str, Any]]) -> list[RecordRef]:
    """The references of records in an answer (each a dict with ``record_type`` and ``id``,
    as search hits, timeline items and looked-up records are written)."""
    found: list[RecordRef] = []
    for item in items:
        try:
            found.append(RecordRef(RecordType(item["record_type"]), int(item["id"])))
        except (KeyError, TypeError, ValueError):
            continue
    return found


def record_answer(
    request: Request, tool: UsageTool, answer: Mapping[str, Any], *, query: str | None = None
) -> None:
    """``record_fetch`` for a route's JSON ``answer``: a timeline fetched its ``anchor`` by
    name, ``get_observations`` its ``items``; a search fetched none by name. ``results``
    counts the ``items``. Never raises."""
    if not from_mcp(request):
        return  # the common case costs one header look-up
    try:
        items = answer.get("items") or []
        if tool is UsageTool.TIMELINE:
            refs = refs_of([answer["anchor"]])
        elif tool is UsageTool.GET_OBSERVATIONS:
            refs = refs_of(items)
        else:
            refs = []
        record_fetch(request, tool, refs=refs, results=len(items), query=query)
    except Exception as exc:  # an answer of an unexpected shape never fails the read
        log.warning("usage.fetch_not_recorded", path=request.url.path, error=str(exc))
