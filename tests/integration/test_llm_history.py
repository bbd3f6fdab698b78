"""A model-based processor is shown the session's history as its context: events go through
a real queue and memory store, and a real HTTP server stands in for the model API."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from memq.memory import MemoryStore
from memq.processors.llm import AnthropicProcessor, ModelProcessor, OpenAIProcessor
from memq.queue import MessageKind, Queue
from memq.worker.processing import ClaimHandler
from tests.helpers.fake_llm import FakeLLM, Reply, anthropic_text, openai_text

FIXTURES = Path(__file__).parent.parent / "fixtures" / "claude-code"
SESSION = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
OBSERVATION = {"kind": "command", "title": "Ran a command", "facts": [], "files_modified": []}
SUMMARY = {"request": "r", "completed": "c"}


def sample(name: str, **changes: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text("utf-8"))
    return payload | changes


def prompt(text: str) -> tuple[str, dict[str, Any]]:
    return "prompt", sample("UserPromptSubmit", prompt=text)


def tool(command: str) -> tuple[str, dict[str, Any]]:
    return "observation", sample("PostToolUse.Bash", tool_input={"command": command})


def stop() -> tuple[str, dict[str, Any]]:
    return "summarize", sample("Stop")


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLM]:
    with FakeLLM.running() as fake:
        yield fake


@pytest.fixture
def fake(llm_server: FakeLLM) -> Iterator[FakeLLM]:
    llm_server.reset()
    yield llm_server
    llm_server.reset()


@pytest.fixture(params=["anthropic", "openai"])
def provider(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def processor(provider: str, fake: FakeLLM) -> AsyncIterator[ModelProcessor]:
    made: ModelProcessor
    if provider == "anthropic":
        made = AnthropicProcessor.from_env(_env(fake.url, "claude-test-model"))
    else:
        made = OpenAIProcessor.from_env(_env(f"{fake.url}/v1", "gpt-test-model"))
    yield made
    await made.aclose()


@pytest.fixture
async def store(queue: Queue, db_path: Path) -> AsyncIterator[MemoryStore]:
    memory = await MemoryStore.open(db_path)
    yield memory
    await memory.close()


def _env(base_url: str, model: str) -> dict[str, str]:
    return {
        "MEMQ_BASE_URL": base_url,
        "MEMQ_API_KEY": "sk-test-0123456789",
        "MEMQ_MODEL": model,
        "MEMQ_LLM_TIMEOUT": "5",
    }


def reply(provider: str, answer: dict[str, Any]) -> Reply:
    text = json.dumps(answer)
    return anthropic_text(text) if provider == "anthropic" else openai_text(text)


def stretch(fake: FakeLLM) -> dict[str, Any]:
    """The document the last request (a summary's) showed the model."""
    body = fake.requests[-1].json()
    user = body["messages"][-1]["content"]
    document: dict[str, Any] = json.loads(user[user.index("{") : user.rindex("}") + 1])
    return document


async def enqueue(queue: Queue, *items: tuple[str, Any]) -> None:
    for kind, payload in items:
        await queue.enqueue(SESSION, kind, payload)


class TestSummaryContext:
    async def test_the_worker_shows_the_history_since_the_last_summary(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
    ) -> None:
        """Through the worker's claim handler, a Stop's request holds the turn since the last
        summary (its prompt and tool calls) and nothing the earlier summary consolidated."""
        handler = ClaimHandler(processor, store)
        fake.script(
            reply(provider, OBSERVATION),
            reply(provider, SUMMARY),
            reply(provider, OBSERVATION),
            reply(provider, OBSERVATION),
            reply(provider, SUMMARY),
        )
        await enqueue(
            queue,
            prompt("old request"),
            tool("echo old"),
            stop(),
            prompt("new request"),
            tool("echo one"),
            tool("echo two"),
            stop(),
        )
        while SESSION in await queue.sessions_with_backlog():
            async for claim in queue.stream(SESSION, linger=0):
                await handler(claim)
        assert len(fake.requests) == 5
        document = stretch(fake)
        assert document["prompts"] == [{"number": 2, "text": "new request"}]
        assert [r["command"] for r in document["records"]] == ["echo one", "echo two"]
        assert "earlier_entries_left_out" not in document
        assert "old request" not in json.dumps(document)
        assert len((await store.summaries(SESSION)).items) == 2

    async def test_a_cut_history_says_what_it_left_out(
        self,
        provider: str,
        processor: ModelProcessor,
        fake: FakeLLM,
        queue: Queue,
        store: MemoryStore,
    ) -> None:
        """A context cut to its newest entries starts at the turn's prompt, and the model is
        told how many earlier entries it is not shown."""
        fake.script(*[reply(provider, OBSERVATION)] * 6, reply(provider, SUMMARY))
        tools = [tool(str(i)) for i in range(5)]
        await enqueue(queue, prompt("first"), tool("a"), prompt("second"), *tools, stop())
        handler = ClaimHandler(processor, store)
        async for claim in queue.stream(SESSION, linger=0):
            if claim.message.kind is not MessageKind.SUMMARIZE:
                await handler(claim)
                continue
            context = await store.context_for(SESSION, max_items=3)
            result = await processor.process(claim.message, context)
            await claim.ack(store.effect(claim.message, result, project=None))
        assert len(fake.requests) == 7
        document = stretch(fake)
        # p1 o2 p3 o4..o8: the window o6 o7 o8 holds no prompt, so p3 leads o7 o8.
        assert document["earlier_entries_left_out"] == 5
        assert document["prompts"] == [{"number": 2, "text": "second"}]
        assert [r["command"] for r in document["records"]] == ["3", "4"]
        body = fake.requests[-1].json()
        system = body["system"] if provider == "anthropic" else body["messages"][0]["content"]
        assert "earlier_entries_left_out" in system
