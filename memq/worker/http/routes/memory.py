"""Reading memory: search, the timeline around a message, a project's context, and a
session's observations, summaries and history."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from memq.events import normalize_session_key
from memq.exceptions import InvalidRequestError, RecordNotFoundError, SessionNotFoundError
from memq.limits import (
    DEFAULT_HISTORY_ITEMS,
    DEFAULT_SEARCH_RESULTS,
    DEFAULT_TIMELINE_SIDE,
    MAX_CONTEXT_BUDGET,
    MAX_HISTORY_ITEMS,
    MAX_INTEGER,
    MAX_SEARCH_RESULTS,
    MAX_TIMELINE_SIDE,
)
from memq.memory.answers import context_answer, search_answer
from memq.memory.lookup import no_records
from memq.memory.projects import project_for
from memq.memory.records import ObservationKind, Page, RecordType
from memq.memory.refs import parse_ref
from memq.memory.search import QuerySyntax
from memq.memory.store import split_session_key
from memq.memory.usage import UsageTool
from memq.team.team_search import asks_team
from memq.worker.http.fetches import answered
from memq.worker.http.params import (
    assistants_param,
    authors_param,
    choices,
    float_param,
    int_param,
    page_params,
    path_session_key,
    time_param,
)
from memq.worker.http.request import get_services


async def search(request: Request) -> Response:
    """Full-text search of memory: ``?q=`` plus optional project, session, assistant,
    author, type, kind, file, since, until, limit, min_score and syntax (words or fts).
    With a team server, the team's hits of the repository of ``project`` (else of ``cwd``,
    which filters nothing here) join them, when the filters are ones the team's hits honour
    (``memq.team.team_search``); ``local=1``: local hits only, the team is not asked."""
    params = request.query_params
    query = params.get("q")
    if query is None:
        raise InvalidRequestError("query parameter 'q' is required")
    since, until = time_param(request, "since"), time_param(request, "until")
    if since is not None and until is not None and since > until:
        raise InvalidRequestError("query parameter 'since' must not be after 'until'")
    session = params.get("session")
    services = get_services(request)
    limit = int_param(request, "limit", DEFAULT_SEARCH_RESULTS, low=1, high=MAX_SEARCH_RESULTS)
    hits = await services.search.search(
        query,
        project=params.get("project") or None,
        session_key=normalize_session_key(session) if session else None,
        types=choices(request, "type", RecordType),
        kinds=choices(request, "kind", ObservationKind),
        file=params.get("file") or None,
        since=since,
        until=until,
        limit=limit,
        min_score=float_param(request, "min_score"),
        syntax=(choices(request, "syntax", QuerySyntax) or [QuerySyntax.WORDS])[-1],
        assistants=assistants_param(request),
        authors=authors_param(request),
    )
    answer = search_answer(hits)
    if services.team is not None and asks_team(params.keys()):
        where = params.get("project") or params.get("cwd")
        identity = await anyio.to_thread.run_sync(services.team.identity, where)
        if identity is not None:
            from memq.team.team_reads import team_answer  # noqa: PLC0415 - httpx, team only

            authors = authors_param(request)
            team, note = await services.team.search(identity, query, limit, authors)
            answer = team_answer(answer, team, note, limit)
    return answered(request, UsageTool.SEARCH, answer, query=query)


async def timeline(request: Request) -> Response:
    """``?around=<message id>`` or ``?anchor=<record reference>`` (``#12``, ``S3``): that
    record and the records of its session just before and after it (``before``, ``after``:
    0..100, default 5)."""
    params = request.query_params
    if ("around" in params) == ("anchor" in params):
        raise InvalidRequestError("give exactly one of the query parameters 'around' and 'anchor'")
    before = int_param(request, "before", DEFAULT_TIMELINE_SIDE, low=0, high=MAX_TIMELINE_SIDE)
    after = int_param(request, "after", DEFAULT_TIMELINE_SIDE, low=0, high=MAX_TIMELINE_SIDE)
    if "anchor" in params:  # a record reference: its message's timeline
        ref = parse_ref(params["anchor"])
        found = await get_services(request).lookup.timeline(ref, before=before, after=after)
        if found is None:
            raise RecordNotFoundError(no_records([ref]))
        return answered(request, UsageTool.TIMELINE, found.to_dict())
    around = int_param(request, "around", 0, low=1, high=MAX_INTEGER)
    result = await get_services(request).search.timeline(around, before=before, after=after)
    if result is None:
        raise RecordNotFoundError(f"no memory record came from message {around}")
    return answered(request, UsageTool.TIMELINE, result.to_dict())


async def get_context(request: Request) -> Response:
    """The SessionStart context of a project: ``?cwd=DIR`` (the project is its git root) or
    ``?project=DIR``; optional ``budget`` (tokens, default MEMQ_CONTEXT_BUDGET),
    ``exclude_session``, ``assistant`` (only their sessions; default every assistant's) and
    ``author`` (only those people's records; default everyone's).
    ``has_memory`` in the answer tells an empty context of a project memory knows nothing of
    from one whose budget is too small for any of it."""
    params = request.query_params
    cwd, project = params.get("cwd"), params.get("project")
    if (cwd is None) == (project is None):
        raise InvalidRequestError("give exactly one of the query parameters 'cwd' and 'project'")
    if project is None:
        # lru-cached, but the first look-up of a directory stats its parents: off the loop.
        project = await anyio.to_thread.run_sync(project_for, cwd)
    services = get_services(request)
    budget = int_param(request, "budget", services.context_budget, low=1, high=MAX_CONTEXT_BUDGET)
    exclude = params.get("exclude_session")
    answer = await context_answer(
        services.context,
        project or None,
        budget_tokens=budget,
        exclude_session=normalize_session_key(exclude) if exclude else None,
        assistants=assistants_param(request),
        authors=authors_param(request),
    )
    return answered(request, UsageTool.RECENT_CONTEXT, answer)


async def observations(request: Request) -> Response:
    """A page of the session's observations."""
    return await _record_page(request, get_services(request).store.observations)


async def summaries(request: Request) -> Response:
    """A page of the session's summaries."""
    return await _record_page(request, get_services(request).store.summaries)


async def _record_page(request: Request, read: Callable[..., Awaitable[Page[Any]]]) -> Response:
    """A page of the session's records (``limit``, ``offset``); reading a session that has
    some counts as using it."""
    key = path_session_key(request)
    limit, offset = page_params(request)
    page = await read(key, limit=limit, offset=offset)
    if page.total:
        get_services(request).activity.touch(key)
    return JSONResponse(page.to_dict())


async def get_history(request: Request) -> Response:
    """``?max=N`` (1..1000, default 50): the session's newest prompts and observations since
    its last summary, oldest first and starting at a prompt, with how many were left out and
    the message id of the summary they follow (null when it has none)."""
    key = path_session_key(request)
    max_items = int_param(request, "max", DEFAULT_HISTORY_ITEMS, low=1, high=MAX_HISTORY_ITEMS)
    history = await get_services(request).store.history(key, max_items)
    if history is None:
        raise SessionNotFoundError(f"no session {key}")
    assistant = split_session_key(key)[0]
    return JSONResponse({"session_id": key, "assistant": assistant, **history.to_dict()})
