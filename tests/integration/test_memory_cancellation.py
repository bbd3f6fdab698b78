"""Reads of the memory store survive their callers being cancelled at any moment."""

from __future__ import annotations

from pathlib import Path

import anyio

from memq.memory.store import MemoryStore
from memq.queue import Queue


class TestCancelledReads:
    async def test_a_read_cancelled_anywhere_leaves_the_store_usable(self, db_path: Path) -> None:
        """Session tasks are cancelled mid-read (preemption, shutdown); the read connection
        must never be left inside a transaction, or every later read fails."""
        async with await Queue.open(db_path):
            store = await MemoryStore.open(db_path)
            try:
                for step in range(300):
                    with anyio.move_on_after(step * 0.00001):
                        await store.context_for("claude-code:s")
                context = await store.context_for("claude-code:s")
                assert context.session_key == "claude-code:s"
            finally:
                await store.close()
