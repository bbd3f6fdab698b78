"""What the model-based processors cost, on real SQLite files: the tokens of each call go in
``model_usage`` with the message's ack (exactly once), the daily budget hands messages to
``extract`` once it is spent and back at the next UTC midnight, and the rows are pruned. A
real HTTP server stands in for each model API (``fake``, ``provider``, ``processor`` fixtures
in ``conftest.py``); time is a clock the test moves."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiosqlite
import pytest

from memq.memory import MemoryStore
from memq.memory.model_usage import ModelUsageReader, prune_model_usage, read_model_figures
from memq.memory.projects import project_for
from memq.memory.usage_figures import UsageFigures
from memq.model_cost import DAY_MS, DEFAULT_PRICES, read_budget_status
from memq.processors.budget import Budgeted, TokenBudget
from memq.processors.llm import ModelProcessor
from memq.queue import EpochMs, Queue
from memq.worker.processing import ClaimHandler
from tests.conftest import FAST
from tests.helpers.clock import FakeClock
from tests.helpers.fake_llm import MODELS, PROVIDERS, FakeLLM, Reply, settings_env, text_reply
from tests.helpers.memory import SESSION, enqueue_all, prompt, sample, stop, tool
from tests.helpers.rows import table

OBSERVATION = {"kind": "command", "title": "Ran a command", "facts": [], "files_modified": []}
SUMMARY = {"request": "r", "completed": "c"}
# 2026-12-04 21:00 UTC: three hours before the budget's day ends.
EVENING_MS = 1_796_418_000_000
MIDNIGHT_MS = EVENING_MS - EVENING_MS % DAY_MS + DAY_MS
PROJECT_DIR = "/nowhere/p1"


def reply(
    provider: str,
    answer: dict[str, Any],
    *,
    tokens_in: int = 120,
    tokens_out: int = 40,
    cache_read: int = 0,
    cache_write: int = 0,
) -> Reply:
    """The model's answer ``answer``, saying it used these tokens, in ``provider``'s shape."""
    body = dict(text_reply(provider, json.dumps(answer)).json)
    if provider == "anthropic":
        body["usage"] = {
            "input_tokens": tokens_in,
            "output_tokens": tokens_out,
            "cache_read_input_tokens": cache_read,
            "cache_creation_input_tokens": cache_write,
        }
    else:  # OpenAI counts cached tokens inside prompt_tokens
        body["usage"] = {
            "prompt_tokens": tokens_in + cache_read,
            "completion_tokens": tokens_out,
            "prompt_tokens_details": {"cached_tokens": cache_read},
        }
    return Reply(json=body)


def rows(db_path: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(db_path)
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM model_usage ORDER BY id")]
    finally:
        conn.close()


async def drain(queue: Queue, handler: ClaimHandler, session: str = SESSION) -> None:
    while session in await queue.sessions_with_backlog():
        async for claim in queue.stream(session, linger=0):
            await handler(claim)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(wall_ms=EVENING_MS)


@pytest.fixture
async def timed_queue(db_path: Path, clock: FakeClock) -> AsyncIterator[Queue]:
    q = await Queue.open(db_path, FAST, clock=clock)
    yield q
    await q.close()


@pytest.fixture
async def spend(timed_queue: Queue, db_path: Path) -> AsyncIterator[ModelUsageReader]:
    async with await ModelUsageReader.open(db_path) as reader:
        yield reader


@pytest.fixture
async def timed_store(timed_queue: Queue, db_path: Path) -> AsyncIterator[MemoryStore]:
    async with await MemoryStore.open(db_path) as memory:
        yield memory


class TestRecorded:
    async def test_each_call_s_tokens_commit_with_its_message(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        """One row per message that asked the model, with the API's counts (cache tokens
        apart from input), the processor, the model, the session and the message; none for
        a prompt."""
        fake.script(
            reply(provider, OBSERVATION, tokens_in=900, tokens_out=70, cache_read=300),
            reply(provider, SUMMARY, tokens_in=2000, tokens_out=150, cache_write=50),
        )
        ids = await enqueue_all(queue, prompt("fix it"), tool("pytest -q"), stop())
        await drain(queue, ClaimHandler(lambda _s: processor, store))
        found = rows(db_path)
        assert [r["message_id"] for r in found] == ids[1:]
        first, second = found
        assert (first["input_tokens"], first["output_tokens"], first["cache_read_tokens"]) == (
            900,
            70,
            300,
        )
        assert (second["input_tokens"], second["output_tokens"]) == (2000, 150)
        if provider == "anthropic":
            assert second["cache_write_tokens"] == 50
        assert {r["processor"] for r in found} == {provider}
        assert {r["model"] for r in found} == {MODELS[provider]}
        assert {r["session_key"] for r in found} == {SESSION}
        assert all(r["fallback"] is None and r["calls"] == 1 for r in found)

    async def test_a_call_whose_answer_is_no_record_counts_nothing(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        """A failed attempt writes no row (its ack never committed); the retry that
        succeeds writes one: a message counts once however often it was tried."""
        fake.script(
            text_reply(provider, "not json"),
            reply(provider, OBSERVATION, tokens_in=500, tokens_out=20),
        )
        (message_id,) = await enqueue_all(queue, tool("make"))
        await drain(queue, ClaimHandler(lambda _s: processor, store))
        assert [(r["message_id"], r["input_tokens"]) for r in rows(db_path)] == [(message_id, 500)]
        assert len(fake.requests) == 2

    async def test_the_figures_add_up_per_day_project_and_model_with_a_cost(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        fake.script(*[reply(provider, OBSERVATION, tokens_in=1_000_000, tokens_out=0)] * 2)
        calls = [("observation", sample("PostToolUse.Bash", cwd=PROJECT_DIR)) for _ in "ab"]
        await enqueue_all(queue, *calls)
        await drain(queue, ClaimHandler(lambda _s: processor, store))
        model = MODELS[provider]
        prices = {**DEFAULT_PRICES, model: DEFAULT_PRICES["claude-haiku-4-5"]}
        async with await UsageFigures.open(db_path) as figures:
            figures.prices = prices
            answer = await figures.answer()
        models = answer["models"]
        assert models["total"]["input_tokens"] == 2_000_000
        assert models["total"]["cost_usd"] == 2.0  # $1 per million input tokens
        assert [d["messages"] for d in models["days"]] == [2]
        assert [(p["project"], p["tokens"]) for p in models["projects"]] == [
            (project_for(PROJECT_DIR), 2_000_000)
        ]
        assert [(m["model"], m["processor"]) for m in models["models"]] == [(model, provider)]
        async with await UsageFigures.open(db_path) as figures:  # no price: no cost, named
            figures.prices = {}
            unpriced = (await figures.answer())["models"]["total"]
        assert (unpriced["cost_usd"], unpriced["unpriced_models"]) == (0.0, [model])


class TestSmallerCalls:
    async def test_noise_costs_no_call_and_edits_go_as_diffs(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        """A no-op command is noise to extract's rules: no call, no record, no row. An edit
        is shown to the model as its diff, not its file."""
        fake.script(*[reply(provider, OBSERVATION)] * 2)
        await enqueue_all(
            queue,
            prompt("look at it"),
            tool("pytest -q"),
            tool("pwd"),
            ("observation", sample("PostToolUse.Edit")),
        )
        await drain(queue, ClaimHandler(lambda _s: processor, store))
        assert len(fake.requests) == 2
        assert len(rows(db_path)) == 2
        edit_request = json.dumps(fake.requests[1].json())
        assert "originalFile" not in edit_request
        assert "range(attempts - 1)" in edit_request


def turn_answer(provider: str, ids: list[int], **tokens: int) -> Reply:
    return reply(
        provider,
        {
            "records": [
                {"id": n, "kind": "bugfix", "title": f"Model title {n}", "facts": [f"fact {n}"]}
                for n in ids
            ],
            "summary": {"request": "fix it", "completed": "fixed, described in one call"},
        },
        **tokens,
    )


class TestBatchedTurns:
    async def test_a_turn_is_one_call_committed_with_the_stop(
        self,
        provider: str,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        """With MEMQ_BATCH_TURNS, three tool calls and a Stop make one request: the tool
        calls are acked with extract's records, then rewritten with the summary; the usage
        row is the Stop's."""
        processor = PROVIDERS[provider].from_env(
            settings_env(provider, fake.url, MEMQ_BATCH_TURNS="true")
        )
        try:
            fake.script(turn_answer(provider, [1, 2, 3], tokens_in=3000, tokens_out=400))
            ids = await enqueue_all(
                queue, prompt("fix it"), tool("make a"), tool("make b"), tool("make c"), stop()
            )
            await drain(queue, ClaimHandler(lambda _s: processor, store))
        finally:
            await processor.aclose()
        assert len(fake.requests) == 1
        shown = json.dumps(fake.requests[0].json())
        assert "make a" in shown
        assert "make c" in shown
        observations = (await store.observations(SESSION)).items
        assert [o.title for o in observations] == [
            "Model title 1",
            "Model title 2",
            "Model title 3",
        ]
        assert {o.kind.value for o in observations} == {"bugfix"}
        assert [o.command for o in observations] == ["make a", "make b", "make c"]  # the payload's
        (summary,) = (await store.summaries(SESSION)).items
        assert summary.completed == "fixed, described in one call"
        assert [(r["message_id"], r["input_tokens"]) for r in rows(db_path)] == [(ids[-1], 3000)]
        hits = table(db_path, "SELECT rowid FROM memory_fts WHERE memory_fts MATCH 'model'")
        assert len(hits) >= 3  # the search index follows the rewrite

    async def test_a_failed_turn_call_rewrites_nothing_until_its_retry(
        self,
        provider: str,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
        db_path: Path,
    ) -> None:
        processor = PROVIDERS[provider].from_env(
            settings_env(provider, fake.url, MEMQ_BATCH_TURNS="1")
        )
        handler = ClaimHandler(lambda _s: processor, store)
        try:
            fake.script(
                reply(provider, {"records": [], "summary": "not an object"}),
                turn_answer(provider, [1]),
            )
            await enqueue_all(queue, prompt("go"), tool("make a"), stop())
            async for claim in queue.stream(SESSION, linger=0):
                await handler(claim)  # the Stop fails once: its attempt is spent
            (before,) = (await store.observations(SESSION)).items
            assert before.title == "Ran `make a`"  # extract's, meanwhile
            assert (await store.summaries(SESSION)).items == ()
            assert rows(db_path) == []
            await drain(queue, handler)
        finally:
            await processor.aclose()
        (after,) = (await store.observations(SESSION)).items
        assert after.title == "Model title 1"
        assert len((await store.summaries(SESSION)).items) == 1
        assert len(rows(db_path)) == 1


class TestBudget:
    async def test_past_the_budget_extract_takes_over_until_utc_midnight(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        timed_queue: Queue,
        timed_store: MemoryStore,
        spend: ModelUsageReader,
        clock: FakeClock,
        db_path: Path,
    ) -> None:
        """A 2M-token day: two calls of 1.05M spend it; the next tool call and the summary
        are extract's, marked, never failed; after 00:00 UTC the model is asked again."""
        budget = Budgeted(TokenBudget(2_000_000, spend.tokens_since, clock=clock))
        handler = ClaimHandler(lambda _s: processor, timed_store, budget=budget)
        fake.script(*[reply(provider, OBSERVATION, tokens_in=1_000_000, tokens_out=50_000)] * 2)
        await enqueue_all(timed_queue, prompt("go"), tool("make a"), tool("make b"))
        await drain(timed_queue, handler)
        assert budget.budget.tokens_today == 2_100_000
        await enqueue_all(timed_queue, tool("make c"), stop())
        await drain(timed_queue, handler)
        assert len(fake.requests) == 2  # no call past the budget
        found = rows(db_path)
        assert [(r["processor"], r["fallback"]) for r in found] == [
            (provider, None),
            (provider, None),
            ("extract", "budget"),
            ("extract", "budget"),
        ]
        assert found[-1]["model"] == MODELS[provider]  # the model it would have asked
        assert (await timed_queue.stats()).counts.failed == 0
        observations = (await timed_store.observations(SESSION)).items
        assert [o.command for o in observations] == ["make a", "make b", "make c"]
        assert len((await timed_store.summaries(SESSION)).items) == 1
        status = read_budget_status(db_path, 2_000_000, now_ms=clock.now())
        assert status["budget_spent"]
        assert status["fallbacks_today"] == 2
        assert status["resets_at_ms"] == MIDNIGHT_MS
        assert status["resets_in_seconds"] == 3 * 3600

        clock.advance(3 * 3600 + 1)  # 00:00:01 UTC: a new day
        fake.script(reply(provider, OBSERVATION))
        await enqueue_all(timed_queue, tool("make d"))
        await drain(timed_queue, handler)
        assert len(fake.requests) == 3
        assert rows(db_path)[-1]["processor"] == provider
        assert budget.budget.tokens_today == 160
        assert not read_budget_status(db_path, 2_000_000, now_ms=clock.now())["budget_spent"]

    async def test_a_restarted_daemon_reads_the_day_s_spend(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        timed_queue: Queue,
        timed_store: MemoryStore,
        spend: ModelUsageReader,
        clock: FakeClock,
    ) -> None:
        """A new budget (the daemon restarted) counts what the day's rows already spent."""
        fake.script(reply(provider, OBSERVATION, tokens_in=1_500_000, tokens_out=0))
        await enqueue_all(timed_queue, tool("a"))
        await drain(timed_queue, ClaimHandler(lambda _s: processor, timed_store))
        fresh = TokenBudget(1_000_000, spend.tokens_since, clock=clock)
        assert await fresh.spent()
        assert not await TokenBudget(2_000_000, spend.tokens_since, clock=clock).spent()
        assert not await TokenBudget(None, spend.tokens_since, clock=clock).spent()


class TestPruned:
    async def test_old_rows_go_and_recent_ones_stay(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        timed_queue: Queue,
        timed_store: MemoryStore,
        clock: FakeClock,
        db_path: Path,
    ) -> None:
        fake.script(*[reply(provider, OBSERVATION)] * 3)
        handler = ClaimHandler(lambda _s: processor, timed_store)
        await enqueue_all(timed_queue, tool("old"))
        await drain(timed_queue, handler)
        clock.advance(91 * 24 * 3600)
        await enqueue_all(timed_queue, tool("new 1"), tool("new 2"))
        await drain(timed_queue, handler)
        before = EpochMs(clock.now() - 90 * DAY_MS)
        assert await prune_model_usage(timed_queue, before=before) == 1
        assert len(rows(db_path)) == 2
        assert await prune_model_usage(timed_queue, before=before, keep=1) == 1
        assert len(rows(db_path)) == 1

    async def test_figures_read_a_file_without_the_table(self, db_path: Path) -> None:
        """A database from before migration 0012 has no cost to show, and no error."""

        sqlite3.connect(db_path).close()
        async with aiosqlite.connect(db_path) as conn:
            conn.row_factory = aiosqlite.Row
            figures = await read_model_figures(conn, prices=DEFAULT_PRICES, now_ms=EVENING_MS)
        assert figures["total"]["messages"] == 0
        assert figures["days"] == []
        assert read_budget_status(db_path, None, now_ms=EVENING_MS)["today_tokens"] == 0
