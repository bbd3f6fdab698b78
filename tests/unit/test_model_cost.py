"""The price table, the budget's UTC day, the daily budget's counting, and how the cost is
printed (``memq.model_cost``, ``memq.processors.budget``, ``memq.cli.model_cost_lines``)."""

from __future__ import annotations

import pytest

from memq.cli.model_cost_lines import model_cost_lines, status_model_lines, tokens_text
from memq.config import Settings
from memq.exceptions import SettingError
from memq.memory.model_usage import model_figures
from memq.model_cost import (
    DAY_MS,
    DEFAULT_PRICES,
    Price,
    budget_status,
    day_start,
    parse_prices,
    price_of,
)
from memq.processors.budget import TokenBudget
from memq.queue import EpochMs
from tests.helpers.clock import FakeClock

NOON_MS = 1_796_385_600_000  # 2026-12-04 12:00 UTC


class TestPrices:
    def test_the_defaults_price_the_default_models(self) -> None:
        assert price_of("claude-haiku-4-5", DEFAULT_PRICES) == Price(1.0, 5.0)
        assert price_of("gpt-4.1-mini", DEFAULT_PRICES) is not None

    def test_a_dated_model_takes_the_longest_matching_name(self) -> None:
        assert price_of("claude-haiku-4-5-20251001", DEFAULT_PRICES) == Price(1.0, 5.0)
        assert price_of("gpt-4.1-mini-2025-04-14", DEFAULT_PRICES) == DEFAULT_PRICES["gpt-4.1-mini"]
        assert price_of("llama3", DEFAULT_PRICES) is None

    def test_the_setting_adds_and_replaces(self) -> None:
        table = parse_prices(" claude-haiku-4-5 = 2/8 , llama3=0/0, x=1/2/0.5/3,")
        assert table["claude-haiku-4-5"] == Price(2.0, 8.0)
        assert table["llama3"] == Price(0.0, 0.0)
        assert table["x"] == Price(1.0, 2.0, 0.5, 3.0)
        assert table["gpt-4.1-mini"] == DEFAULT_PRICES["gpt-4.1-mini"]

    @pytest.mark.parametrize(
        ("text", "problem"),
        [
            ("haiku", "is not MODEL=INPUT/OUTPUT"),
            ("=1/2", "is not MODEL=INPUT/OUTPUT"),
            ("m=1", "give 2 to 4 prices"),
            ("m=1/2/3/4/5", "give 2 to 4 prices"),
            ("m=a/2", "'a' is not a number"),
            ("m=-1/2", "a price must be a number >= 0"),
            ("m=nan/2", "a price must be a number >= 0"),
        ],
    )
    def test_a_bad_table_is_refused_naming_the_entry(self, text: str, problem: str) -> None:
        with pytest.raises(ValueError, match=problem):
            parse_prices(text)
        with pytest.raises(SettingError, match="MEMQ_MODEL_PRICES"):
            Settings.from_env({"MEMQ_MODEL_PRICES": text})

    def test_cost_per_million_with_the_cache_s_shares(self) -> None:
        price = Price(1.0, 5.0)
        assert price.cost(1_000_000, 200_000) == pytest.approx(2.0)
        # A cache read is a tenth of an input token, a cache write a quarter more.
        assert price.cost(0, 0, 1_000_000, 1_000_000) == pytest.approx(0.1 + 1.25)
        assert Price(1.0, 5.0, 0.5, 2.0).cost(0, 0, 1_000_000, 1_000_000) == pytest.approx(2.5)
        assert Price(1.0, 5.0).text() == "1/5"
        assert Price(0.4, 1.6, 0.1).text() == "0.4/1.6/0.1"


class TestSettings:
    def test_the_budget_is_off_unless_set(self) -> None:
        assert Settings.from_env({}).daily_tokens == 0
        assert Settings.from_env({"MEMQ_DAILY_TOKENS": "0"}).daily_tokens == 0
        assert Settings.from_env({"MEMQ_DAILY_TOKENS": "2000000"}).daily_tokens == 2_000_000
        with pytest.raises(SettingError, match="MEMQ_DAILY_TOKENS"):
            Settings.from_env({"MEMQ_DAILY_TOKENS": "lots"})


class TestDay:
    def test_the_day_is_the_utc_day(self) -> None:
        assert day_start(NOON_MS) == NOON_MS - 12 * 3600 * 1000
        assert day_start(day_start(NOON_MS)) == day_start(NOON_MS)
        status = budget_status((2_500_000, 3, 1.5), 2_000_000, NOON_MS)
        assert status["budget_spent"] is True
        assert status["resets_at_ms"] == day_start(NOON_MS) + DAY_MS
        assert status["resets_in_seconds"] == 12 * 3600
        assert budget_status((10, 0, 0.0), None, NOON_MS)["budget_spent"] is False


class TestTokenBudget:
    async def test_counts_the_day_from_the_database_then_from_the_acks(self) -> None:
        clock = FakeClock(wall_ms=NOON_MS)
        reads: list[int] = []

        async def spent_since(since: EpochMs) -> int:
            reads.append(since)
            return 1_500_000

        budget = TokenBudget(2_000_000, spent_since, clock=clock)
        assert not await budget.spent()
        budget.add(400_000)
        assert not await budget.spent()
        budget.add(100_000)
        assert await budget.spent()
        assert reads == [day_start(NOON_MS)]  # one read for the day
        clock.advance(12 * 3600)  # midnight UTC: a new day, read again
        assert not await budget.spent()  # the new day spent 1.5M so far
        assert reads == [day_start(NOON_MS), day_start(NOON_MS) + DAY_MS]

    async def test_no_budget_reads_nothing(self) -> None:
        async def spent_since(since: EpochMs) -> int:
            raise AssertionError("read")

        budget = TokenBudget(None, spent_since, clock=FakeClock())
        budget.add(10**9)
        assert not await budget.spent()
        with pytest.raises(ValueError, match=">= 1"):
            TokenBudget(0, spent_since, clock=FakeClock())


def row(day: str, project: str | None, model: str, **counts: int) -> dict[str, object]:
    base = dict.fromkeys(
        (
            "messages",
            "calls",
            "input_tokens",
            "output_tokens",
            "cache_read_tokens",
            "cache_write_tokens",
            "fallbacks",
        ),
        0,
    )
    return {"day": day, "project": project, "processor": "anthropic", "model": model} | {
        **base,
        **counts,
    }


class TestLines:
    def test_tokens_read_at_a_glance(self) -> None:
        assert [tokens_text(n) for n in (950, 14_200, 3_100_000)] == ["950", "14.2k", "3.10M"]

    def test_stats_lines_per_day_project_and_model(self) -> None:
        figures = model_figures(
            [
                row("2026-12-04", "/p/a", "claude-haiku-4-5", messages=3, input_tokens=900_000),
                row("2026-12-03", "/p/b", "local", messages=1, input_tokens=1000),
                row("2026-12-03", "/p/a", "claude-haiku-4-5", messages=2, fallbacks=2),
            ],
            prices=DEFAULT_PRICES,
            since_ms=NOON_MS - 6 * DAY_MS,
            days=7,
            project=None,
        )
        assert figures["total"]["cost_usd"] == pytest.approx(0.9)
        assert figures["total"]["unpriced_models"] == ["local"]
        text = "\n".join(model_cost_lines(figures))
        assert "model tokens, last 7 days" in text
        assert "2026-12-04" in text
        assert "/p/a" in text
        assert "$0.9000+?" in text  # "local" has no price
        assert "no price for local" in text
        lines = model_cost_lines(figures)
        day = next(line for line in lines if line.endswith("2026-12-03"))
        assert day.split()[:5] == ["3", "1.0k", "0", "0", "2"]

    def test_status_says_when_the_budget_resets(self) -> None:
        spent = budget_status((2_100_000, 5, 2.1), 2_000_000, NOON_MS)
        (line,) = status_model_lines(spent)
        assert line.startswith("BUDGET    spent: 2.10M of 2.00M tokens today")
        assert "until it resets 00:00 UTC (in 12h00m) (5 so far)" in line
        (under,) = status_model_lines(budget_status((1000, 0, 0.001), 2_000_000, NOON_MS))
        assert under.startswith("tokens    today 1.0k (~$0.0010) of a 2.00M daily budget")
        (none,) = status_model_lines(budget_status((0, 0, 0.0), None, NOON_MS))
        assert none.endswith("no daily budget")
        assert status_model_lines(None) == []
