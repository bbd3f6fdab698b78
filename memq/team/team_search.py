"""The team's search hits for a search no daemon serves, and the rules every search follows.

A search on a laptop with ``MEMQ_UPSTREAM`` set merges the team's hits of a repository with
local ones (``merge_hits``), whoever answers it: the daemon (``GET /api/search``, through
``memq.team.team_reads``), or, with no daemon, ``memq search`` and the MCP server reading
the database themselves (``with_team_hits`` here: a synchronous request, as those reads
block anyway, with the daemon's timeout). The rules are the same on every path:

- the team is asked only when the search's filters are ones its answer honours
  (``asks_team``): its search route takes a query, a project, authors and a limit, and
  nothing else, so a session, type, kind, file, time, assistant, score or syntax filter
  leaves the team out (its hits would not honour it), as does ``local`` (a search that
  wants local records only: the MCP timeline's anchor, which must be a local record);
- an author filter is passed on: the server answers those people's hits only;
- in mode ``both`` the server leaves out this machine's own records (local memory has
  them), under every name the outbox went by upstream (``machine_names``); in mode
  ``forward`` nothing.

A server that does not answer in time gives no hits and a note saying why; local hits
answer alone. httpx is imported only when the team is asked: the hook never imports this.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from typing import Any, Final

from memq.config import UPSTREAM_FORWARD, Settings
from memq.storage.sqlfile import load_queries

Answer = tuple[int, bytes]  # an HTTP status and a JSON body, as the daemon answers

# The search parameters the team's search cannot honour: with any of them, it is not asked.
UNHONOURED: Final = (
    "session",
    "type",
    "kind",
    "file",
    "since",
    "until",
    "assistant",
    "min_score",
    "syntax",
    "local",
)
LOCAL: Final = "local"  # a search parameter: local records only, the team is not asked
SEARCH_TIMEOUT: Final = 2.0  # seconds, as the daemon waits (memq.team.team_reads)
_OK: Final = 200
QUERIES: Final = load_queries("upstream")


def asks_team(params: Iterable[str]) -> bool:
    """Whether a search with these query parameters (names) asks the team too."""
    return not any(name in UNHONOURED for name in params)


def with_team_hits(
    answer: Answer,
    settings: Settings,
    *,
    where: str | None,
    params: Sequence[tuple[str, str]],
    query: str,
    limit: int,
    authors: Sequence[str] | None,
) -> Answer:
    """A direct read's search ``answer`` with the team's hits of the repository of ``where``
    (a directory) merged in, as the daemon's route merges them: unchanged without a team
    server, a repository, a plain search (``params``, see ``asks_team``) or a good answer;
    with ``team_note`` saying why when the server did not answer."""
    status, raw = answer
    if status != _OK or not settings.upstream or not where or not asks_team(n for n, _ in params):
        return answer
    from memq.team.identity import repository_identity  # noqa: PLC0415

    identity = repository_identity(where)
    if identity is None:
        return answer
    from memq.team.team_reads import team_answer  # noqa: PLC0415 - httpx, team only

    team, note = search(settings, identity, query, limit, authors)
    body = team_answer(json.loads(raw), team, note, limit)
    text = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    return status, text.encode("utf-8")


def search(
    settings: Settings,
    project: str,
    query: str,
    limit: int,
    authors: Sequence[str] | None = None,
    *,
    timeout: float = SEARCH_TIMEOUT,
) -> tuple[list[dict[str, Any]], str | None]:
    """The team's hits for ``query`` in ``project`` (a repository identity; of ``authors``
    only, when given) and None; or no hits and a note saying why, when the server does not
    answer within ``timeout``."""
    import httpx  # noqa: PLC0415 - only when the team is asked

    from memq.team.team_reads import (  # noqa: PLC0415
        _FAILURES,
        SEARCH_PATH,
        _items_of,
        body_of,
        not_searched,
        search_params,
    )
    from memq.team.upstream_client import read_key  # noqa: PLC0415

    url = settings.upstream.rstrip("/")
    params = search_params(project, query, limit, authors)
    try:
        key = read_key(settings.upstream_key_path)
        if settings.upstream_mode != UPSTREAM_FORWARD:
            params += [("exclude_machine", name) for name in machine_names(settings)]
        with httpx.Client(base_url=url, timeout=timeout, follow_redirects=False) as client:
            response = client.get(
                SEARCH_PATH,
                params=tuple(params),
                headers={"Authorization": f"Bearer {key}"},
            )
        items = _items_of(body_of(response))
    except _FAILURES as exc:
        return [], not_searched(url, exc)
    return items[:limit], None


def machine_names(settings: Settings) -> list[str]:
    """Every name this database went by upstream (the outbox's, read only), then the one
    configured (``MEMQ_MACHINE_NAME``, the host's by default), which the daemon's forwarder
    takes next: the server leaves out this laptop's records under each."""
    if settings.database_url:
        stored = _server_machines(settings.database_url)
    else:
        stored = _file_machines(settings)
    return list(dict.fromkeys([*stored, settings.machine_name]))


def _file_machines(settings: Settings) -> list[str]:
    """``machine_names`` stored in the SQLite file (none without the file or its tables)."""
    path = settings.database_path
    if not path.is_file():
        return []
    names: list[str] = []
    try:
        conn = sqlite3.connect(f"{path.as_uri()}?mode=ro", uri=True)
        try:
            # The current name first: a database not migrated yet has no upstream_machines.
            row = conn.execute(QUERIES["machine_name"]).fetchone()
            names += [str(row[0])] if row and row[0] else []
            names += [str(r[0]) for r in conn.execute(QUERIES["machines"]).fetchall()]
        finally:
            conn.close()
    except sqlite3.Error:  # no outbox tables yet: nothing was forwarded from here
        pass
    return names


def _server_machines(url: str) -> list[str]:
    """``machine_names`` on a PostgreSQL database (a read-only connection of its own)."""
    import anyio  # noqa: PLC0415

    from memq.exceptions import StorageError  # noqa: PLC0415
    from memq.storage.postgres import connection  # noqa: PLC0415
    from memq.storage.sqlfile import POSTGRES, in_dialect  # noqa: PLC0415

    async def read() -> list[str]:
        conn = await connection.connect(url, connection.ConnectOptions(read_only=True))
        names: list[str] = []
        try:
            with connection.storage_errors(url):
                for query in ("machine_name", "machines"):
                    cursor = await conn.execute(in_dialect(QUERIES[query], POSTGRES))
                    names += [str(row[0]) for row in await cursor.fetchall() if row[0]]
        finally:
            await conn.close()
        return names

    try:
        return anyio.run(read)
    except StorageError:  # no outbox tables, or no server: the configured name will do
        return []
