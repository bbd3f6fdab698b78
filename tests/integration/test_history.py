"""A session's history on each backend (SQLite, PostgreSQL): events enqueued, processed and
acked as the worker does, then read back through the memory store."""

from __future__ import annotations

import pytest

from memq.exceptions import InvalidRequestError
from memq.memory import MemoryStore, PromptRecord
from memq.memory.backend import CONTEXT_ITEMS
from memq.memory.history import History, entry_type
from memq.queue import Transaction
from memq.storage.sqlfile import load_queries
from tests.helpers.backends import Backend
from tests.helpers.memory import SESSION, prompt, query_plan, remember, stop, tool


def labels(history: History) -> list[str]:
    """Each item as the prompt's text or the command the tool ran."""
    return [
        item.text if isinstance(item, PromptRecord) else f"$ {item.command}"
        for item in history.items
    ]


async def history_of(store: MemoryStore, max_items: int, session: str = SESSION) -> History:
    history = await store.history(session, max_items)
    assert history is not None
    return history


class TestHistory:
    async def test_unknown_session(self, backend_store: MemoryStore) -> None:
        """A session memory never saw has no history (the route's 404)."""
        assert await backend_store.history("claude-code:nope") is None

    async def test_window_starts_at_a_prompt(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The newest entries, less the tool results whose prompt fell outside the window."""
        await remember(
            backend.queue,
            backend_store,
            prompt("one"),
            tool("a"),
            tool("b"),
            prompt("two"),
            tool("c"),
        )
        assert labels(await history_of(backend_store, 10)) == ["one", "$ a", "$ b", "two", "$ c"]
        cut = await history_of(backend_store, 4)
        assert labels(cut) == ["two", "$ c"]
        assert cut.omitted == 3
        assert cut.after_summary is None
        assert [entry_type(item) for item in cut.items] == ["prompt", "observation"]

    async def test_no_prompt_in_the_window(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A long turn: its prompt leads, then the newest tool results."""
        await remember(
            backend.queue, backend_store, prompt("long turn"), *[tool(str(i)) for i in range(8)]
        )
        history = await history_of(backend_store, 3)
        assert labels(history) == ["long turn", "$ 6", "$ 7"]
        assert history.omitted == 6
        assert labels(await history_of(backend_store, 1)) == ["long turn"]

    async def test_starts_after_the_last_summary(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """What a summary consolidated is not history; after_summary names that summary."""
        ids = await remember(
            backend.queue,
            backend_store,
            prompt("first"),
            tool("old"),
            stop(),
            prompt("second"),
            tool("new"),
        )
        history = await history_of(backend_store, 50)
        assert labels(history) == ["second", "$ new"]
        assert history.after_summary == ids[2]
        assert history.omitted == 0

        await remember(backend.queue, backend_store, stop())
        after = await history_of(backend_store, 50)
        assert after.items == ()
        assert after.omitted == 0
        assert after.after_summary is not None
        assert after.after_summary > ids[2]

    async def test_a_long_span_reads_only_the_window(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Hundreds of entries since the summary: max items come back, the rest counted."""
        await remember(
            backend.queue, backend_store, stop(), prompt("go"), *[tool(str(i)) for i in range(300)]
        )
        history = await history_of(backend_store, 5)
        assert labels(history) == ["go", "$ 296", "$ 297", "$ 298", "$ 299"]
        assert history.omitted == 301 - 5

    async def test_observations_without_a_prompt(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Tool results after a summary with no prompt yet are still the history."""
        await remember(
            backend.queue, backend_store, prompt("p"), stop(), tool("x"), tool("y"), tool("z")
        )
        history = await history_of(backend_store, 2)
        assert labels(history) == ["$ y", "$ z"]
        assert history.omitted == 1

    async def test_inherited_records_are_history(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Records a fork copied from its parent are part of the fork's own history."""
        ids = await remember(
            backend.queue, backend_store, prompt("from the parent"), tool("inherited"), tool("own")
        )

        # As a fork's copies are stored (memq.memory.fork): flagged, in the parent's order.
        async def flag(tx: Transaction) -> None:
            for table in ("prompts", "observations"):
                update = f"UPDATE {table} SET inherited = 1 WHERE message_id IN (?, ?)"
                await tx.execute(backend.sql(update), tuple(ids[:2]))

        await backend.queue.run_in_transaction(flag)
        marked = backend.table("SELECT count(*) AS n FROM observations WHERE inherited = 1")
        assert marked[0]["n"] == 1
        assert labels(await history_of(backend_store, 50)) == [
            "from the parent",
            "$ inherited",
            "$ own",
        ]

    async def test_other_sessions_do_not_mix_in(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A history is its own session's records only."""
        await remember(backend.queue, backend_store, prompt("mine"), tool("mine"))
        await remember(
            backend.queue, backend_store, prompt("theirs"), tool("theirs"), session="claude-code:b"
        )
        assert labels(await history_of(backend_store, 50)) == ["mine", "$ mine"]


class TestContext:
    async def test_context_is_the_history(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A processor's context is the bounded history, with how much it left out."""
        await remember(
            backend.queue, backend_store, prompt("one"), tool("a"), prompt("two"), tool("b")
        )
        context = await backend_store.context_for(SESSION, max_items=3)
        assert context.project == "project"
        assert [p.text for p in context.prompts] == ["two"]
        assert [o.command for o in context.observations] == ["b"]
        assert context.omitted == 2
        whole = await backend_store.context_for(SESSION)
        assert [p.text for p in whole.prompts] == ["one", "two"]
        assert whole.omitted == 0

    async def test_a_summary_sees_the_start_of_its_turn(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A turn longer than the context still gives the summary its request, and only
        the newest tool calls."""
        await remember(
            backend.queue,
            backend_store,
            prompt("the request"),
            *[tool(str(i)) for i in range(120)],
            stop(),
        )
        (summary,) = (await backend_store.summaries(SESSION)).items
        assert summary.request == "the request"
        # The prompt and the newest CONTEXT_ITEMS - 1 tool calls: a bounded read.
        oldest_seen = 120 - (CONTEXT_ITEMS - 1)
        assert summary.notes.splitlines()[0] == f"$ {oldest_seen} (exit 0)"

    async def test_max_items_must_be_positive(self, backend_store: MemoryStore) -> None:
        """Zero entries is a caller's mistake, refused before any read."""
        with pytest.raises(InvalidRequestError, match="at least 1"):
            await backend_store.context_for(SESSION, max_items=0)


class TestStatements:
    @pytest.mark.parametrize("name", list(load_queries("history")))
    def test_reads_walk_an_index(self, name: str) -> None:
        """Every history read searches an index, never scans or sorts: a long session costs
        no more than a short one (the total is counted in covering indexes)."""
        plan = query_plan(load_queries("history")[name])
        scans = [step for step in plan if step.startswith("SCAN") and "CONSTANT ROW" not in step]
        assert not scans, plan
        assert not [step for step in plan if "TEMP B-TREE" in step], plan
        if name == "history_total":
            assert all("COVERING INDEX" in step for step in plan if "SEARCH" in step), plan
