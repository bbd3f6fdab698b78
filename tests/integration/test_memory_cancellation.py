"""Reads of the memory store survive their callers being cancelled at any moment."""

from __future__ import annotations

from pathlib import Path

import anyio

from memq.memory.store import MemoryStore
from memq.queue import Queue
from tests.helpers.memory import SESSION, enqueue_all, process, prompt, tool


class TestCancelledReads:
    async def test_a_read_cancelled_anywhere_leaves_the_store_usable(
        self, queue: Queue, db_path: Path
    ) -> None:
        """Session tasks are cancelled mid-read (preemption, shutdown); the read connection
        must never be left inside a transaction, or every later read fails. The session has
        memory, so a read runs every statement of its snapshot and can be cut at any one."""
        async with await MemoryStore.open(db_path) as store:
            await enqueue_all(queue, prompt("go on"), tool("echo a"))
            await process(queue, store)
            for step in range(300):
                with anyio.move_on_after(step * 0.00001):
                    await store.context_for(SESSION)
            context = await store.context_for(SESSION)
        assert [p.text for p in context.prompts] == ["go on"]
        assert [o.command for o in context.observations] == ["echo a"]
