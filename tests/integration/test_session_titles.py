"""A session's title and its ``updated_at`` on a real SQLite file (issue 10, item 6): a new
title is a change of the session, a revert never moves ``updated_at`` back, and a fork's
title is marked as a fork's.

The queue runs on a clock the test moves (``ManualClock``), so every stored time is known.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memq.memory import MemoryStore
from memq.memory.fork import fork_effect
from memq.memory.store import FORK_TITLE_MARKER, fork_title
from memq.queue import Queue
from memq.queue.testing import ManualClock
from tests.conftest import FAST
from tests.helpers.memory import Prompt, write

SESSION = "claude-code:titled"
FORK = "claude-code:titled-fork"
LATER = "claude-code:titled-fork-of-fork"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def timed(db_path: Path, clock: ManualClock) -> AsyncIterator[tuple[Queue, MemoryStore]]:
    """A queue on the test's clock, and a store on its database."""
    # In order: the queue migrates the database the store then opens.
    async with (
        await Queue.open(db_path, FAST, clock=clock) as queue,
        await MemoryStore.open(db_path) as store,
    ):
        yield queue, store


async def updated_at(store: MemoryStore, session: str = SESSION) -> int:
    detail = await store.get_session(session)
    assert detail is not None
    return int(detail.updated_at.timestamp() * 1000)


class TestUpdatedAt:
    async def test_setting_or_resetting_a_title_is_a_change(
        self, timed: tuple[Queue, MemoryStore], clock: ManualClock
    ) -> None:
        queue, store = timed
        await write(queue, store, [Prompt("Rework the retry loop")], session=SESSION, project=None)
        written = await updated_at(store)
        assert written == clock.now()
        clock.advance(60)
        await queue.run_in_transaction(store.title_effect(SESSION, "Retry rework"))
        assert await updated_at(store) == written + 60_000
        clock.advance(5)
        assert await queue.run_in_transaction(store.title_effect(SESSION, None)) == (
            "Rework the retry loop"
        )
        assert await updated_at(store) == written + 65_000

    async def test_a_title_set_under_a_clock_set_back_keeps_the_later_time(
        self, timed: tuple[Queue, MemoryStore], clock: ManualClock
    ) -> None:
        queue, store = timed
        await write(queue, store, [Prompt("Rework the retry loop")], session=SESSION, project=None)
        written = await updated_at(store)
        clock.step_wall(-3600)
        await queue.run_in_transaction(store.title_effect(SESSION, "Retry rework"))
        assert await updated_at(store) == written


class TestForkTitles:
    async def test_a_fork_and_its_forks_are_marked_once(
        self, timed: tuple[Queue, MemoryStore]
    ) -> None:
        queue, store = timed
        await write(queue, store, [Prompt("Rework the retry loop")], session=SESSION, project=None)
        await queue.run_in_transaction(fork_effect(SESSION, FORK))
        await queue.run_in_transaction(fork_effect(FORK, LATER))
        titles = {s.key: (s.title, s.title_edited) for s in (await store.list_sessions()).items}
        assert titles == {
            SESSION: ("Rework the retry loop", False),
            FORK: ("[fork] Rework the retry loop", False),
            LATER: ("[fork] Rework the retry loop", False),
        }

    async def test_a_parents_own_title_is_marked_and_a_reset_marks_it_again(
        self, timed: tuple[Queue, MemoryStore]
    ) -> None:
        """A title the user gave the parent is marked too; the fork's own title replaces
        it; a reset gives back its first prompt's, which it inherited: marked."""
        queue, store = timed
        await write(queue, store, [Prompt("Rework the retry loop")], session=SESSION, project=None)
        await queue.run_in_transaction(store.title_effect(SESSION, "Retry rework"))
        await queue.run_in_transaction(fork_effect(SESSION, FORK))
        fork = await store.get_session(FORK)
        assert fork is not None
        assert (fork.title, fork.title_edited) == ("[fork] Retry rework", False)
        await queue.run_in_transaction(store.title_effect(FORK, "Try a circuit breaker"))
        fork = await store.get_session(FORK)
        assert fork is not None
        assert (fork.title, fork.title_edited) == ("Try a circuit breaker", True)
        reset = await queue.run_in_transaction(store.title_effect(FORK, None))
        assert reset == "[fork] Rework the retry loop"

    async def test_a_fork_of_a_session_without_a_title_takes_its_own_first_prompt(
        self, timed: tuple[Queue, MemoryStore]
    ) -> None:
        queue, store = timed
        # A Stop whose turn left no summary: a session without prompts, so without a title.
        await queue.enqueue(SESSION, "summarize", {"hook_event_name": "Stop"})
        await write(queue, store, [], session=SESSION, project=None)
        await queue.run_in_transaction(fork_effect(SESSION, FORK))
        await write(queue, store, [Prompt("Start over")], session=FORK, project=None)
        fork = await store.get_session(FORK)
        assert fork is not None
        assert fork.title == "Start over"


def test_fork_title_marks_once() -> None:
    assert fork_title("Fix it") == FORK_TITLE_MARKER + "Fix it"
    assert fork_title(fork_title("Fix it")) == "[fork] Fix it"
    assert fork_title(None) is None
