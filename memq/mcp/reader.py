"""How the MCP server reads memory: through the daemon's API with the token when the daemon
answers, else read-only from the database (the file, or the server ``MEMQ_DATABASE_URL``
names: ``memq.memory.direct``), the same answers either way. Never a write, and never a
failure because the daemon is down.

Every call to the API names its caller, the project the model works in and the tool, in
the headers ``X-Memq-Via: mcp``, ``X-Memq-Project`` (URL-quoted: a header is Latin-1) and
``X-Memq-Tool``, so that the daemon can tell the model's reads from a person's
(``memq stats``); a read made only to index records says so (``?purpose=index``).

Calls block (``urllib``, a direct read runs its own event loop): the server runs each in a
worker thread.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final
from urllib.parse import quote, urlencode

from memq.client.daemon_api import Answer, request_bytes, session_path
from memq.config import Settings
from memq.exceptions import (
    InvalidQueryError,
    InvalidRequestError,
    MemqError,
    RecordNotFoundError,
    RequestError,
    StorageError,
)
from memq.memory import direct
from memq.memory.refs import is_team_ref, parse_ref, parse_refs
from memq.memory.usage import INDEX_PURPOSE, PROJECT_HEADER, TOOL_HEADER, VIA_HEADER, VIA_MCP

# Values of a tool's ``project`` that mean every project.
ALL_PROJECTS: Final = frozenset({"*", "all"})
_UNAVAILABLE: Final = 503  # the daemon is stopping or cannot read: the file may still answer
# An error answer as the memq error that the API answered with that status (the message
# says which exactly); any other is a request memq could not carry out.
_ERRORS: Final[dict[int, type[MemqError]]] = {
    400: InvalidQueryError,
    404: RecordNotFoundError,
    422: InvalidRequestError,
    503: StorageError,
}


class MemoryApi:
    """Reads memory for the MCP tools; ``project`` is the project the model works in."""

    def __init__(self, settings: Settings, *, timeout: float = 10.0) -> None:
        self.settings = settings
        self.timeout = timeout

    def get(
        self, path: str, *, project: str | None, tool: str, direct: Callable[[], Answer]
    ) -> Any:
        """``GET path`` from the daemon, or ``direct`` when it does not answer; the decoded
        JSON. An error answer raises the memq error of its status (``_ERRORS``), whose
        message is the answer's."""
        headers = {VIA_HEADER: VIA_MCP, TOOL_HEADER: tool}
        if project:
            headers[PROJECT_HEADER] = quote(project, safe="/")
        try:
            status, raw = request_bytes(
                self.settings, "GET", path, timeout=self.timeout, headers=headers
            )
        except OSError:
            status, raw = direct()
        else:
            if status == _UNAVAILABLE:
                status, raw = direct()
        return _decoded(status, raw)

    # -- the reads the tools make ---------------------------------------------------------------

    def search(
        self,
        query: str,
        *,
        current: str | None,
        project: str | None,
        session: str | None,
        types: Sequence[str] | None,
        kinds: Sequence[str] | None,
        since: datetime | None,
        until: datetime | None,
        limit: int,
        tool: str = "search",
        assistants: Sequence[str] | None = None,
        authors: Sequence[str] | None = None,
        local: bool = False,
    ) -> dict[str, Any]:
        """``GET /api/search``. ``current`` is the model's project (for the headers),
        ``project`` the one searched (None: all); ``assistants``: only their sessions;
        ``authors``: only those people's records. With a team server, the team's hits of
        the repository of ``project`` (else of ``current``) join them, whoever answers
        (``memq.team.team_search``), unless ``local``: local records only."""
        params: list[tuple[str, str]] = [("q", query), ("limit", str(limit))]
        if project:
            params.append(("project", project))
        if session:
            params.append(("session", session))
        params += [("type", value) for value in types or ()]
        params += [("kind", value) for value in kinds or ()]
        if since is not None:
            params.append(("since", since.isoformat()))
        if until is not None:
            params.append(("until", until.isoformat()))
        params += [("assistant", name) for name in assistants or ()]
        params += [("author", name) for name in authors or ()]
        if local:
            from memq.team.team_search import LOCAL  # noqa: PLC0415

            params.append((LOCAL, "1"))  # asks_team: no team server is asked
        if not project and current:
            params.append(("cwd", current))  # the team's hits: the model's repository's

        def read() -> Answer:
            from memq.team.team_search import with_team_hits  # noqa: PLC0415

            local = direct.search(
                direct.database_of(self.settings),
                query,
                project=project,
                session=session,
                types=types,
                kinds=kinds,
                since=since,
                until=until,
                limit=limit,
                assistants=assistants,
                authors=authors,
            )
            where = project or current
            return with_team_hits(
                local,
                self.settings,
                where=where,
                params=params,
                query=query,
                limit=limit,
                authors=authors,
            )

        found: dict[str, Any] = self.get(
            "/api/search?" + urlencode(params), project=current, tool=tool, direct=read
        )
        return found

    def records(
        self, refs: Sequence[str], *, current: str | None, for_index: bool = False
    ) -> dict[str, Any]:
        """``GET /api/records``: the records ``refs`` name (already checked references).
        ``for_index``: read to index them (a search's lines), not to show them."""
        params = {"ids": ",".join(refs)} | ({"purpose": INDEX_PURPOSE} if for_index else {})

        def read() -> Answer:
            team = [ref for ref in refs if is_team_ref(ref)]
            if team:  # only the daemon reads the team server: no local record stands in
                raise InvalidRequestError(
                    f"{', '.join(team)}: team records are read through the memq daemon, "
                    "which is not answering (memq start)"
                )
            return direct.records(direct.database_of(self.settings), parse_refs(tuple(refs)))

        found: dict[str, Any] = self.get(
            "/api/records?" + urlencode(params),
            project=current,
            tool="search" if for_index else "get_observations",
            direct=read,
        )
        return found

    def timeline(self, ref: str, *, current: str | None, before: int, after: int) -> dict[str, Any]:
        """``GET /api/timeline?anchor=``: the records around ``ref``."""
        params = {"anchor": ref, "before": before, "after": after}

        def read() -> Answer:
            return direct.timeline_at(
                direct.database_of(self.settings), parse_ref(ref), before=before, after=after
            )

        found: dict[str, Any] = self.get(
            "/api/timeline?" + urlencode(params), project=current, tool="timeline", direct=read
        )
        return found

    def has_session(self, session: str, *, current: str | None) -> bool:
        """Whether memory knows ``session`` (its history's first entry is read, no more)."""

        def read() -> Answer:
            return direct.history(direct.database_of(self.settings), session, max_items=1)

        try:
            path = session_path(session, "history") + "?max=1"
            self.get(path, project=current, tool="search", direct=read)
        except RecordNotFoundError:  # the API's 404: no such session
            return False
        return True

    def context(
        self, project: str, *, current: str | None, assistants: Sequence[str] | None = None
    ) -> dict[str, Any]:
        """``GET /api/context?project=``: the SessionStart context of ``project`` (of
        ``assistants``' sessions only, when given)."""

        def read() -> Answer:
            return direct.context(
                direct.database_of(self.settings),
                project,
                budget_tokens=self.settings.context_budget,
                assistants=assistants,
            )

        params = [("project", project), *(("assistant", name) for name in assistants or ())]
        found: dict[str, Any] = self.get(
            "/api/context?" + urlencode(params),
            project=current,
            tool="recent_context",
            direct=read,
        )
        return found


def _decoded(status: int, raw: bytes) -> Any:
    try:
        body = json.loads(raw or b"null")
    except ValueError:
        body = {"error": raw.decode("utf-8", "replace")}
    if status >= 400:
        error = body.get("error") if isinstance(body, Mapping) else None
        raise _ERRORS.get(status, RequestError)(str(error or f"memq answered {status}"))
    return body
