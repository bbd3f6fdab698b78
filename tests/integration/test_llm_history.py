"""A model-based processor is shown the session's history as its context: events go through
a real queue and memory store, and a real HTTP server stands in for the model API (the
``fake``, ``provider`` and ``processor`` fixtures are in ``conftest.py``)."""

from __future__ import annotations

import json
from typing import Any

from memq.memory import MemoryStore
from memq.processors.llm import ModelProcessor
from memq.queue import MessageKind, Queue
from memq.worker.processing import ClaimHandler
from tests.helpers.fake_llm import FakeLLM, Reply, text_reply
from tests.helpers.memory import SESSION, enqueue_all, prompt, stop, tool

OBSERVATION = {"kind": "command", "title": "Ran a command", "facts": [], "files_modified": []}
SUMMARY = {"request": "r", "completed": "c"}


def reply(provider: str, answer: dict[str, Any]) -> Reply:
    """The model's answer: ``answer`` as JSON text."""
    return text_reply(provider, json.dumps(answer))


def stretch(fake: FakeLLM) -> dict[str, Any]:
    """The document the last request (a summary's) showed the model."""
    body = fake.requests[-1].json()
    user = body["messages"][-1]["content"]
    document: dict[str, Any] = json.loads(user[user.index("{") : user.rindex("}") + 1])
    return document


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
        handler = ClaimHandler(lambda _session: processor, store)
        fake.script(
            reply(provider, OBSERVATION),
            reply(provider, SUMMARY),
            reply(provider, OBSERVATION),
            reply(provider, OBSERVATION),
            reply(provider, SUMMARY),
        )
        await enqueue_all(
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
        await enqueue_all(queue, prompt("first"), tool("a"), prompt("second"), *tools, stop())
        handler = ClaimHandler(lambda _session: processor, store)
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
