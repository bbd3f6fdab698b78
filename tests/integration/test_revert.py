"""Reverting a session: forgetting what it learned after a point, queue rows included."""

from __future__ import annotations

from memq.memory import MemoryStore
from memq.memory.search import MemorySearch
from memq.queue import Queue
from memq.queue.testing import ManualClock
from tests.conftest import FAST
from tests.helpers.backends import Backend
from tests.helpers.memory import OTHER, SESSION, enqueue_all, process, prompt, sample


async def build_session(queue: Queue, store: MemoryStore) -> list[int]:
    """Two turns: prompt, two tool calls, stop; then prompt, a write, one event still queued."""
    ids = await enqueue_all(
        queue,
        prompt("first turn"),
        ("observation", sample("PostToolUse.Bash", tool_use_id="t1")),
        ("observation", sample("PostToolUseFailure", tool_use_id="t2")),
        ("summarize", sample("Stop")),
        prompt("second turn"),
        ("observation", sample("PostToolUse.Write", tool_use_id="t3")),
    )
    await process(queue, store)
    ids += await enqueue_all(
        queue, ("observation", sample("PostToolUse.Bash", tool_use_id="t4"))
    )  # not processed yet
    return ids


async def revert(queue: Queue, store: MemoryStore, from_id: int) -> tuple[int, int]:
    queue_rows = await queue.forget_session_from(SESSION, from_id)
    memory_rows = await queue.run_in_transaction(store.revert_effect(SESSION, from_id))
    return queue_rows, memory_rows


class TestRevert:
    async def test_after_a_message_forgets_everything_later_and_recounts(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Reverting after the first turn's summary leaves exactly the first turn; the queued
        event after the cut is gone, so it will never be processed."""
        queue, store = backend.queue, backend_store
        ids = await build_session(queue, store)
        queue_rows, memory_rows = await revert(queue, store, ids[3] + 1)
        assert (queue_rows, memory_rows) == (3, 2)  # prompt, write, queued event; 2 records
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert [p.text for p in detail.prompts] == ["first turn"]
        assert detail.prompt_count == 1
        assert detail.title == "first turn"
        observations = await store.observations(SESSION)
        assert [o.message_id for o in observations.items] == ids[1:3]
        assert (await store.summaries(SESSION)).total == 1
        assert [r["id"] for r in backend.rows()] == ids[:4]
        assert not await queue.has_pending(SESSION)

    async def test_the_last_n_messages_that_left_memory(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """--last 2 forgets the newest two records (the write and the second prompt)."""
        queue, store = backend.queue, backend_store
        ids = await build_session(queue, store)
        cutoff = await store.revert_cutoff(SESSION, 2)
        assert cutoff == ids[4]
        await revert(queue, store, cutoff)
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert [p.text for p in detail.prompts] == ["first turn"]
        assert await store.revert_cutoff("claude-code:nobody", 3) is None

    async def test_reverting_everything_clears_the_title_and_other_sessions_stay(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """From the first message on, the session keeps only its row; another session and
        the search index lose nothing of theirs."""
        queue, store = backend.queue, backend_store
        await enqueue_all(queue, prompt("kept elsewhere"), session=OTHER)
        await process(queue, store, OTHER)
        ids = await build_session(queue, store)
        await revert(queue, store, ids[0])
        detail = await store.get_session(SESSION)
        assert detail is not None
        assert (detail.prompts, detail.prompt_count, detail.title) == ((), 0, None)
        assert (await store.get_session(OTHER)) is not None
        assert await backend_search.search("first turn") == []
        assert [h.session_key for h in await backend_search.search("kept elsewhere")] == [OTHER]


class TestUpdatedAt:
    async def test_a_revert_moves_updated_at_to_its_own_time_never_back(
        self, backend: Backend
    ) -> None:
        """The session's events came in over a minute; --last 2 an hour later stamps the
        session with the revert's time, not its newest remaining record's; a revert under a
        clock set back leaves the time where it was."""
        clock = ManualClock()
        queue = await backend.open(FAST, clock=clock)
        store = await backend.reader(MemoryStore)
        ids = []
        for text in ("one", "two", "three"):
            ids += await enqueue_all(queue, prompt(text))
            clock.advance(30)
        await process(queue, store)
        latest = stored_updated_at(backend)
        assert latest == clock.now() - 30_000
        clock.advance(3600)
        await revert(queue, store, ids[1])
        assert stored_updated_at(backend) == clock.now()
        clock.step_wall(-7200)
        await revert(queue, store, ids[0])
        assert stored_updated_at(backend) == latest + 3_630_000


def stored_updated_at(backend: Backend) -> int:
    (row,) = backend.table("SELECT updated_at FROM sessions WHERE key = ?", SESSION)
    return int(row["updated_at"])


class TestTransfer:
    async def test_to_a_new_session_moves_everything(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The records, their numbering and the queued event all move; the source is gone."""
        queue, store = backend.queue, backend_store
        ids = await build_session(queue, store)
        assert await queue.move_session(SESSION, "claude-code:moved") == (len(ids), 0)
        moved = await queue.run_in_transaction(store.transfer_effect(SESSION, "claude-code:moved"))
        assert (moved.records, moved.merged) == (6, 0)  # 2 prompts, 3 observations, a summary
        assert await store.get_session(SESSION) is None
        detail = await store.get_session("claude-code:moved")
        assert detail is not None
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "first turn"),
            (2, "second turn"),
        ]
        assert (detail.assistant, detail.external_id) == ("claude-code", "moved")
        assert await queue.has_pending("claude-code:moved")

    async def test_into_an_existing_session_merges_after_its_prompts(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Prompts are numbered after the target's; a queued event the target already has
        (same dedupe key) is dropped, not duplicated."""
        queue, store = backend.queue, backend_store
        await queue.enqueue(OTHER, *prompt("the target's own"))
        await queue.enqueue(OTHER, "observation", sample("PostToolUse.Bash"), "tool:t9")
        await process(queue, store, OTHER)
        await build_session(queue, store)
        await queue.enqueue(SESSION, "observation", sample("PostToolUse.Bash"), "tool:t9")
        _, dropped = await queue.move_session(SESSION, OTHER)
        assert dropped == 1
        await queue.run_in_transaction(store.transfer_effect(SESSION, OTHER))
        detail = await store.get_session(OTHER)
        assert detail is not None
        assert [p.text for p in detail.prompts] == ["the target's own", "first turn", "second turn"]
        assert [p.number for p in detail.prompts] == [1, 2, 3]
        assert detail.prompt_count == 3
        assert await store.get_session(SESSION) is None
