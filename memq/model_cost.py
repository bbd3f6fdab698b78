"""What model tokens cost, and the daily token budget's day (stdlib only: the settings and
``memq status`` use it without the daemon's imports).

Prices are USD per million tokens, ``input/output[/cache_read[/cache_write]]``; without the
cache's, a cache read costs a tenth of an input token and a cache write a quarter more, as
Anthropic bills them. The defaults below are the vendors' list prices for memq's default
models when they were written down: an *estimate*, not a bill. ``model_prices`` in
settings.toml (``MEMQ_MODEL_PRICES``) adds to them or replaces them, e.g.
``"claude-haiku-4-5=1/5, my-local-model=0/0"``. A model matches the longest priced name it
starts with (``claude-haiku-4-5-20251001`` takes ``claude-haiku-4-5``'s price).

The daily budget's day is the UTC day: it resets at 00:00 UTC, the same instant for every
user of one database whatever their time zone.
"""

from __future__ import annotations

import math
import os
import sqlite3
import time
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final

from memq.exceptions import SettingError

MILLION: Final = 1_000_000
DAY_MS: Final = 24 * 3600 * 1000
CACHE_READ_SHARE: Final = 0.1  # of the input price, when a price names no cache read price
CACHE_WRITE_SHARE: Final = 1.25  # of the input price, when it names no cache write price


@dataclass(frozen=True, slots=True)
class Price:
    """USD per million tokens of each kind."""

    input: float
    output: float
    cache_read: float | None = None  # None: CACHE_READ_SHARE of ``input``
    cache_write: float | None = None  # None: CACHE_WRITE_SHARE of ``input``

    def cost(
        self, input_tokens: int, output_tokens: int, cache_read: int = 0, cache_write: int = 0
    ) -> float:
        """The estimated cost in USD of these tokens."""
        read = self.input * CACHE_READ_SHARE if self.cache_read is None else self.cache_read
        write = self.input * CACHE_WRITE_SHARE if self.cache_write is None else self.cache_write
        total = (
            input_tokens * self.input
            + output_tokens * self.output
            + cache_read * read
            + cache_write * write
        )
        return total / MILLION

    def text(self) -> str:
        """As the setting spells it: ``1/5``, ``0.4/1.6/0.1/0.4``."""
        parts = [self.input, self.output, self.cache_read, self.cache_write]
        while parts[-1] is None:
            parts.pop()
        read = self.input * CACHE_READ_SHARE
        return "/".join(f"{read if part is None else part:g}" for part in parts)


# List prices (USD per million tokens) of the models memq names by default and their
# neighbours, as published by Anthropic and OpenAI when this was written: estimates.
DEFAULT_PRICES: Final[Mapping[str, Price]] = MappingProxyType(
    {
        "claude-haiku-4-5": Price(1.0, 5.0),
        "claude-3-5-haiku": Price(0.8, 4.0),
        "claude-sonnet-4": Price(3.0, 15.0),
        "claude-opus-4-5": Price(5.0, 25.0),
        "claude-opus-4": Price(15.0, 75.0),
        "gpt-4.1-mini": Price(0.4, 1.6, cache_read=0.1, cache_write=0.4),
        "gpt-4.1-nano": Price(0.1, 0.4, cache_read=0.025, cache_write=0.1),
        "gpt-4.1": Price(2.0, 8.0, cache_read=0.5, cache_write=2.0),
        "gpt-4o-mini": Price(0.15, 0.6, cache_read=0.075, cache_write=0.15),
    }
)


def parse_prices(text: str) -> dict[str, Price]:
    """The price table ``text`` spells (``model=in/out[/cache_read[/cache_write]]``, comma
    separated), over the defaults. ``SettingError`` (a ``ValueError``) saying what is
    wrong."""
    table = dict(DEFAULT_PRICES)
    for item in text.split(","):
        entry = item.strip()
        if not entry:
            continue
        model, sep, numbers = entry.partition("=")
        model = model.strip()
        if not sep or not model:
            raise SettingError(f"{entry!r} is not MODEL=INPUT/OUTPUT")
        parts = [part.strip() for part in numbers.split("/")]
        if not 2 <= len(parts) <= 4:
            raise SettingError(f"{entry!r}: give 2 to 4 prices, INPUT/OUTPUT[/CACHE_READ[/WRITE]]")
        values: list[float] = []
        for part in parts:
            try:
                value = float(part)
            except ValueError:
                raise SettingError(f"{entry!r}: {part!r} is not a number") from None
            if not math.isfinite(value) or value < 0:
                raise SettingError(f"{entry!r}: a price must be a number >= 0")
            values.append(value)
        table[model] = Price(*values)
    return table


def price_of(model: str, prices: Mapping[str, Price]) -> Price | None:
    """The price of ``model``: its own, else the longest priced name it starts with."""
    found = prices.get(model)
    if found is not None:
        return found
    names = [name for name in prices if model.startswith(name)]
    return prices[max(names, key=len)] if names else None


def prices_json(prices: Mapping[str, Price]) -> dict[str, str]:
    """The table as the answers show it."""
    return {model: price.text() for model, price in sorted(prices.items())}


def day_start(now_ms: int) -> int:
    """The start of the UTC day ``now_ms`` falls in (epoch milliseconds)."""
    return now_ms - now_ms % DAY_MS


def today_spend(
    conn: sqlite3.Connection, now_ms: int, prices: Mapping[str, Price] = DEFAULT_PRICES
) -> tuple[int, int, float]:
    """Tokens spent, messages that fell back to ``extract`` and the estimated cost in USD
    since the UTC day began; nothing when the file has no ``model_usage`` table yet."""
    try:
        rows = conn.execute(
            "SELECT model, coalesce(sum(input_tokens), 0), coalesce(sum(output_tokens), 0),"
            " coalesce(sum(cache_read_tokens), 0), coalesce(sum(cache_write_tokens), 0),"
            " coalesce(sum(fallback IS NOT NULL), 0)"
            " FROM model_usage WHERE at >= ? GROUP BY model",
            (day_start(now_ms),),
        ).fetchall()
    except sqlite3.OperationalError:
        return 0, 0, 0.0
    tokens = fallbacks = 0
    cost = 0.0
    for model, *counts, fell_back in rows:
        tokens += sum(counts)
        fallbacks += fell_back
        price = price_of(str(model), prices)
        if price is not None:
            cost += price.cost(*counts)
    return tokens, fallbacks, round(cost, 4)


def budget_status(
    spend: tuple[int, int, float], daily_tokens: int | None, now_ms: int
) -> dict[str, Any]:
    """The ``models`` key of ``memq status``: today's (UTC) tokens, their estimated cost, and
    the daily budget's state."""
    tokens, fallbacks, cost = spend
    resets = day_start(now_ms) + DAY_MS
    return {
        "today_tokens": tokens,
        "today_cost_usd": cost,
        "daily_tokens": daily_tokens,
        "budget_spent": daily_tokens is not None and tokens >= daily_tokens,
        "fallbacks_today": fallbacks,
        "resets_at_ms": resets,
        "resets_in_seconds": (resets - now_ms) / 1000,
    }


def read_budget_status(
    database: str | os.PathLike[str],
    daily_tokens: int | None,
    prices: Mapping[str, Price] = DEFAULT_PRICES,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """:func:`budget_status` read from the database file, read-only (nothing spent when
    there is no file yet or it cannot be read)."""
    now = time.time_ns() // 1_000_000 if now_ms is None else now_ms
    spend: tuple[int, int, float] = (0, 0, 0.0)
    if os.path.isfile(database):
        try:
            conn = sqlite3.connect(f"file:{os.fspath(database)}?mode=ro", uri=True, timeout=5)
        except sqlite3.Error:
            conn = None
        if conn is not None:
            try:
                spend = today_spend(conn, now, prices)
            except sqlite3.Error:
                pass  # a busy or damaged file: memq status reports that elsewhere
            finally:
                conn.close()
    return budget_status(spend, daily_tokens, now)
