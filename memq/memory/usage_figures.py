"""The figures of memory's use (``GET /api/stats``, ``memq stats``), read from the rows
``memq.memory.usage`` writes.

For each project, overall and for the newest sessions:

- ``injections``, ``tokens``: contexts given to sessions and their size; ``by_source``
  splits them by what they came with (startup, resume, clear, compact, prompt).
- ``fetches``: the model's calls of the MCP tools; ``searches`` those of ``search``;
  ``records_fetched``: records the model fetched by name (``get_observations``, a timeline's
  anchor) in calls attributed to a session, that is after one of its injections.
- ``hits`` / ``hit_rate``: injections after which the model reached into memory (called
  ``search``, ``timeline`` or ``get_observations``) in the same session before that session's
  next injection, as a share of all injections. ``recent_context`` only reads the digest
  again and counts for nothing.
- ``ref_hits`` / ``ref_hit_rate``: the stricter share, injections of which the model then
  fetched at least one of the records they showed (by the same window).

A rate is null while there is no injection to divide by.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any, Final

import aiosqlite

from memq.memory.model_usage import empty_figures, read_model_figures
from memq.memory.reader import ReadsMemory
from memq.memory.records import from_epoch_ms, isoformat_utc
from memq.memory.store import split_session_key
from memq.model_cost import DEFAULT_PRICES, Price
from memq.queue import SYSTEM_CLOCK
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("usage")
SOURCES: Final = ("startup", "resume", "clear", "compact", "prompt")
TOOLS: Final = ("search", "timeline", "get_observations", "recent_context")
DEFAULT_SESSIONS: Final = 10  # the newest sessions shown
MAX_SESSIONS: Final = 1000
_ALL: Final = -1  # SQLite's LIMIT for no limit

# Counts that add up across projects, in the order the answer lists them.
_INJECTION_COUNTS: Final = ("injections", "tokens", "refs_shown", "hits", "ref_hits")
_FETCH_COUNTS: Final = ("fetches", "searches", "records_fetched")
# Each tool's column of ``fetch_figures``.
_TOOL_COLUMNS: Final = {
    "search": "searches",
    "timeline": "timelines",
    "get_observations": "get_observations",
    "recent_context": "recent_context",
}


def rate(part: int, whole: int) -> float | None:
    """``part / whole`` rounded to three decimals; None when ``whole`` is 0."""
    return None if whole <= 0 else round(part / whole, 3)


def figures(
    injections: Mapping[str, Any] | None, fetches: Mapping[str, Any] | None
) -> dict[str, Any]:
    """One group's figures from its row of ``injection_figures`` and of ``fetch_figures``
    (either None: the group has none of those)."""
    inj = dict(injections or {})
    fet = dict(fetches or {})
    counts = {name: int(inj.get(name) or 0) for name in _INJECTION_COUNTS}
    tools = {tool: int(fet.get(_TOOL_COLUMNS[tool]) or 0) for tool in TOOLS}
    return {
        **{name: counts[name] for name in ("injections", "tokens", "refs_shown")},
        "by_source": {source: int(inj.get(source) or 0) for source in SOURCES},
        "fetches": int(fet.get("fetches") or 0),
        "searches": tools["search"],
        "by_tool": tools,
        "records_fetched": int(fet.get("records_fetched") or 0),
        "hits": counts["hits"],
        "hit_rate": rate(counts["hits"], counts["injections"]),
        "ref_hits": counts["ref_hits"],
        "ref_hit_rate": rate(counts["ref_hits"], counts["injections"]),
    }


def total(groups: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The figures of several groups together (the overall line of the projects)."""
    out = figures(None, None)
    for group in groups:
        for name in (*_INJECTION_COUNTS, *_FETCH_COUNTS):
            out[name] += group[name]
        for mapping in ("by_source", "by_tool"):
            for key, value in group[mapping].items():
                out[mapping][key] += value
    out["hit_rate"] = rate(out["hits"], out["injections"])
    out["ref_hit_rate"] = rate(out["ref_hits"], out["injections"])
    return out


def empty_answer(project: str | None) -> dict[str, Any]:
    """The answer while nothing was recorded (or the file has no usage tables yet)."""
    return {
        "project": project,
        "since": None,
        "overall": figures(None, None),
        "projects": [],
        "sessions": [],
        "models": empty_figures(project, SYSTEM_CLOCK.now()),
    }


class UsageFigures(ReadsMemory):
    """Reads the figures on its own read connection (see the module docstring)."""

    TABLES = ("usage_injections", "usage_fetches")  # migration 0010
    prices: Mapping[str, Price] = DEFAULT_PRICES  # the cost estimate's (memq.model_cost)

    async def answer(
        self, *, project: str | None = None, sessions: int = DEFAULT_SESSIONS
    ) -> dict[str, Any]:
        """``{"project", "since", "overall", "projects", "sessions"}``: the figures of every
        project (or only ``project``), their total, and the ``sessions`` newest sessions by
        their last injection; ``since`` is the oldest row kept (ISO-8601 UTC, or null)."""
        async with self._reader.snapshot() as conn:
            by_project = await self._groups(conn, "project", project, _ALL)
            by_session = await self._groups(conn, "session", project, sessions)
            since_rows = list(await conn.execute_fetchall(QUERIES["usage_span"]))
            models = await read_model_figures(
                conn, prices=self.prices, now_ms=SYSTEM_CLOCK.now(), project=project
            )
        since = since_rows[0]["since"] if since_rows else None
        projects = [{"project": key, **values} for key, (_, values) in by_project.items()]
        projects.sort(key=lambda row: (-row["injections"], -row["fetches"], str(row["project"])))
        return {
            "project": project,
            "since": None if since is None else isoformat_utc(from_epoch_ms(int(since))),
            "overall": total(values for _, values in by_project.values()),
            "projects": projects,
            "sessions": [
                {
                    "session_key": key,
                    "assistant": split_session_key(str(key))[0],
                    "project": row["project"],
                    "first_injected_at": _iso(row["first_at"]),
                    "last_injected_at": _iso(row["last_at"]),
                    **values,
                }
                for key, (row, values) in by_session.items()
            ],
            "models": models,  # what the model-based processors cost (memq.memory.model_usage)
        }

    async def _groups(
        self, conn: aiosqlite.Connection, group: str, project: str | None, limit: int
    ) -> dict[Any, tuple[Mapping[str, Any], dict[str, Any]]]:
        """Each group's injection row and its figures: sessions are those with injections,
        newest first; projects also those with fetches only."""
        shown = await conn.execute_fetchall(
            QUERIES["injection_figures"], {"group": group, "project": project, "limit": limit}
        )
        injected = {row["grouping"]: dict(row) for row in shown}
        keys = json.dumps([key for key in injected if key is not None])
        fetched = {
            row["grouping"]: dict(row)
            for row in await conn.execute_fetchall(
                QUERIES["fetch_figures"], {"group": group, "project": project, "sessions": keys}
            )
        }
        names = list(injected)
        if group == "project":
            names += [key for key in fetched if key not in injected]
        return {
            key: (injected.get(key, {}), figures(injected.get(key), fetched.get(key)))
            for key in names
        }


def _iso(value: int | None) -> str | None:
    return None if value is None else isoformat_utc(from_epoch_ms(int(value)))
