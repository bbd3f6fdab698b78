"""What the model-based processors cost: one ``model_usage`` row per message (migration 0012).

A processor that asks a model reports the tokens of its calls in ``ProcessResult.usage``; the
claim handler adds :func:`with_model_usage` to the message's memory write, so the row commits
in the ack's transaction: a message retried after a crash counts once, and a call whose ack
never committed (the daemon died, the answer was no record) counts for nothing. A message
``extract`` processed because the daily budget was spent has a row with no tokens and
``fallback = 'budget'``.

The figures (``GET /api/stats``'s ``models``, ``memq stats``) add the rows up per UTC day and
per project, with a cost estimate from the price table (``memq.model_cost``). Rows are pruned
with the usage tables (``memq.memory.usage``), by age and by count.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import Any, Final, Protocol, TypeVar

import aiosqlite

from memq.memory.reader import QUERIES as MEMORY_QUERIES
from memq.memory.reader import ReadsMemory
from memq.memory.records import ModelUsage
from memq.model_cost import DAY_MS, Price, day_start, price_of
from memq.queue import EpochMs, Message, Transaction
from memq.storage.sqlfile import load_queries

QUERIES: Final = load_queries("model_usage")
TABLE: Final = "model_usage"
DEFAULT_DAYS: Final = 7  # the days the figures cover, today included
MAX_DAYS: Final = 366
PRUNE_CHUNK: Final = 2000
MAX_ROWS: Final = 500_000  # rows kept at most, the newest
T = TypeVar("T")
Write = Callable[[Transaction], Awaitable[None]]
_COUNTS: Final = (
    "messages",
    "calls",
    "input_tokens",
    "output_tokens",
    "cache_read_tokens",
    "cache_write_tokens",
    "fallbacks",
)


def usage_row(
    message: Message, usage: ModelUsage, *, project: str | None, at: int
) -> dict[str, Any]:
    """The ``model_usage`` row of ``message``, processed at ``at``."""
    return {
        "at": at,
        "message_id": message.id,
        "session_key": message.session_id,
        "project": project,
        "processor": usage.processor,
        "model": usage.model,
        "calls": max(0, usage.calls),
        "input_tokens": max(0, usage.input_tokens),
        "output_tokens": max(0, usage.output_tokens),
        "cache_read_tokens": max(0, usage.cache_read_tokens),
        "cache_write_tokens": max(0, usage.cache_write_tokens),
        "fallback": usage.fallback,
    }


def with_model_usage(
    write: Write, message: Message, usage: ModelUsage, *, project: str | None
) -> Write:
    """``write`` (the message's memory write) followed, in the same transaction, by the row
    of what processing it cost."""

    async def both(tx: Transaction) -> None:
        await write(tx)
        row = usage_row(message, usage, project=project, at=tx.now_ms)
        await tx.execute(QUERIES["insert_model_usage"], row)

    return both


class RunsTransactions(Protocol):
    """Where pruning is written: the queue's single writer (``Queue``)."""

    async def run_in_transaction(self, fn: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run ``fn`` in one write transaction and return its result."""


async def prune_model_usage(
    writer: RunsTransactions, *, before: EpochMs, keep: int = MAX_ROWS
) -> int:
    """Delete the rows older than ``before`` and the oldest beyond ``keep``, a chunk per
    transaction (``writer.run_in_transaction``); how many went. Raises ``StorageError``."""
    total = 0
    for query, params in (
        ("prune_model_usage_before", {"before": before}),
        ("prune_model_usage_over", {"keep": keep}),
    ):
        statement, chunked = QUERIES[query], {**params, "chunk": PRUNE_CHUNK}

        async def delete(
            tx: Transaction, statement: str = statement, chunked: dict[str, Any] = chunked
        ) -> int:
            return await tx.execute(statement, chunked)

        while True:
            deleted = await writer.run_in_transaction(delete)
            total += deleted
            if deleted < PRUNE_CHUNK:
                break
    return total


# -- figures -------------------------------------------------------------------------------


def _zero() -> dict[str, Any]:
    return {**dict.fromkeys(_COUNTS, 0), "tokens": 0, "cost_usd": 0.0, "unpriced_models": []}


def _add(into: dict[str, Any], row: Mapping[str, Any], prices: Mapping[str, Price]) -> None:
    for name in _COUNTS:
        into[name] += int(row[name] or 0)
    tokens = [
        int(row[name] or 0)
        for name in ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    ]
    into["tokens"] += sum(tokens)
    if not sum(tokens):
        return  # a fallback row, or a call that reported nothing: no cost either way
    price = price_of(str(row["model"]), prices)
    if price is None:
        if row["model"] not in into["unpriced_models"]:
            into["unpriced_models"].append(row["model"])
        return
    into["cost_usd"] += price.cost(*tokens)


def _rounded(group: dict[str, Any]) -> dict[str, Any]:
    group["cost_usd"] = round(group["cost_usd"], 4)
    return group


def model_figures(
    rows: Iterable[Mapping[str, Any]],
    *,
    prices: Mapping[str, Price],
    since_ms: int,
    days: int,
    project: str | None,
) -> dict[str, Any]:
    """The ``models`` section from the rows of ``model_usage_groups``: per day (newest
    first), per project (most tokens first), per model, and in all. ``cost_usd`` is an
    estimate from ``prices``; a model without a price adds tokens, no cost, and is named in
    ``unpriced_models``."""
    by_day: dict[str, dict[str, Any]] = {}
    by_project: dict[str | None, dict[str, Any]] = {}
    by_model: dict[tuple[str, str], dict[str, Any]] = {}
    total = _zero()
    for row in rows:
        _add(by_day.setdefault(row["day"], _zero()), row, prices)
        _add(by_project.setdefault(row["project"], _zero()), row, prices)
        _add(by_model.setdefault((row["processor"], row["model"]), _zero()), row, prices)
        _add(total, row, prices)
    projects = sorted(by_project.items(), key=lambda item: (-item[1]["tokens"], str(item[0])))
    models = sorted(by_model.items(), key=lambda item: -item[1]["tokens"])
    return {
        "project": project,
        "days_shown": days,
        "since": _day_text(since_ms),
        "cost_is_estimate": True,
        "total": _rounded(total),
        "days": [{"day": day, **_rounded(by_day[day])} for day in sorted(by_day, reverse=True)],
        "projects": [{"project": name, **_rounded(values)} for name, values in projects],
        "models": [
            {"processor": processor, "model": model, **_rounded(values)}
            for (processor, model), values in models
        ],
    }


def empty_figures(project: str | None, now_ms: int, days: int = DEFAULT_DAYS) -> dict[str, Any]:
    """The ``models`` section while nothing was recorded (or the file has no such table)."""
    return model_figures((), prices={}, since_ms=_since(now_ms, days), days=days, project=project)


def _since(now_ms: int, days: int) -> int:
    return day_start(now_ms) - (days - 1) * DAY_MS


def _day_text(ms: int) -> str:
    from memq.memory.records import from_epoch_ms  # noqa: PLC0415 - beside its peers

    return from_epoch_ms(ms).date().isoformat()


async def read_model_figures(
    conn: aiosqlite.Connection,
    *,
    prices: Mapping[str, Price],
    now_ms: int,
    project: str | None = None,
    days: int = DEFAULT_DAYS,
) -> dict[str, Any]:
    """The ``models`` section read on ``conn`` (a read snapshot): the ``days`` UTC days up to
    today. Empty when the file has no ``model_usage`` table yet."""
    since = _since(now_ms, days)
    # The catalog's statement of both dialects (memory.sql), not sqlite_schema's.
    found = await conn.execute_fetchall(
        MEMORY_QUERIES["existing_tables"], {"names": json.dumps([TABLE])}
    )
    if not list(found):
        return empty_figures(project, now_ms, days)
    rows = await conn.execute_fetchall(
        QUERIES["model_usage_groups"], {"since": since, "project": project}
    )
    return model_figures(
        [dict(row) for row in rows], prices=prices, since_ms=since, days=days, project=project
    )


class ModelUsageReader(ReadsMemory):
    """Reads the day's spend for the daily budget, on a read connection of its own."""

    TABLES = (TABLE,)

    async def tokens_since(self, since: EpochMs) -> int:
        """Every token the rows from ``since`` on counted."""
        async with self._reader.snapshot() as conn:
            rows = list(await conn.execute_fetchall(QUERIES["tokens_since"], {"since": since}))
        return int(rows[0]["tokens"]) if rows else 0
