"""A session whose processor cannot be created (its API key is not in the daemon's
environment) pauses instead of failing its messages, on a real database with the real
worker: no attempt is spent, the reason is there to show, and a new setting or a daemon
with the key lets the backlog through, in order (issue 10, item 3)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from memq.exceptions import ProcessorUnavailableError
from memq.memory.store import MemoryStore
from memq.processors.base import Processor
from memq.processors.pool import ProcessorPool
from memq.queue import Queue, QueueSettings
from memq.worker.processing import ClaimHandler
from memq.worker.session_config import ConfigName, SessionConfigs
from memq.worker.session_pauses import (
    SETTING_REASON,
    PauseCause,
    PausedProcessor,
    SessionPause,
    SessionPauses,
)
from memq.worker.sessions import SessionManager
from tests.acceptance.conftest import sample
from tests.helpers.fake_llm import FakeLLM, openai_text, settings_env
from tests.helpers.rows import all_rows

FAST = QueueSettings(retry_delay=0.01, retry_delay_max=0.02, change_check_interval=0.05)
NO_KEY_REASON = (
    "processor openai needs an API key: set OPENAI_API_KEY or MEMQ_API_KEY in the daemon's "
    "environment (or point MEMQ_BASE_URL at a server that needs none)"
)
OBSERVATION = {
    "kind": "change",
    "title": "Wrote out.txt (model-made)",
    "subtitle": "by the session's own model",
    "narrative": "A model wrote this record.",
    "facts": [],
    "concepts": [],
    "files_read": [],
    "files_modified": [],
}


def tool_event(n: int, session: str) -> dict[str, Any]:
    return {**sample("PostToolUse.Bash"), "session_id": session, "tool_use_id": f"t{n}"}


def rows_of(db_path: Path, session: str) -> list[tuple[str, int]]:
    return [(r["status"], r["attempts"]) for r in all_rows(db_path) if r["session_id"] == session]


async def wait_until(check: Callable[[], bool]) -> None:
    while not check():  # noqa: ASYNC110
        await anyio.sleep(0.01)


class Worker:
    """The daemon's processing half, wired as ``memq.worker.composition`` wires it."""

    def __init__(
        self, queue: Queue, store: MemoryStore, configs: SessionConfigs, pool: ProcessorPool
    ) -> None:
        self.pauses = SessionPauses(configs, pool)

        def processor_for(session_key: str) -> Processor:
            config = configs.get(session_key)
            return pool.get(config.processor, config.model)

        self.manager = SessionManager(
            queue,
            ClaimHandler(processor_for, store),
            capacity=2,
            linger=0.05,
            is_paused=self.pauses.is_paused,
        )
        configs.on_change(self.manager.setting_changed)


@asynccontextmanager
async def running(worker: Worker) -> AsyncIterator[SessionManager]:
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            await tg.start(worker.manager.run)
            yield worker.manager
            await worker.manager.stop(grace=1)


@pytest.fixture
async def configs(queue: Queue) -> SessionConfigs:
    """Settings where session "s" asks for openai: set while the daemon had a key."""
    loaded = await SessionConfigs.load(queue)
    await loaded.set("s", ConfigName.PROCESSOR, "openai")
    return loaded


CHANGES: dict[str, Callable[[SessionConfigs], Awaitable[Any]]] = {
    "processor extract": lambda c: c.set("s", ConfigName.PROCESSOR, "extract"),
    "processor --unset": lambda c: c.delete("s", ConfigName.PROCESSOR),
}


class TestWithoutTheKey:
    @pytest.mark.parametrize("change", list(CHANGES))
    async def test_the_session_waits_untried_until_its_setting_changes(
        self,
        queue: Queue,
        store: MemoryStore,
        configs: SessionConfigs,
        db_path: Path,
        change: str,
    ) -> None:
        """Its messages stay pending with no attempt while another session is processed;
        changing its processor schedules the backlog, processed in order."""
        worker = Worker(queue, store, configs, ProcessorPool("extract", env={}))
        for i in range(3):
            await queue.enqueue("s", "observation", {"i": i})
        await queue.enqueue("free", "observation", {"i": 9})
        async with running(worker) as manager:
            # Scheduled at start with the other backlog: never given a generator.
            assert "s" not in manager.active_sessions
            await wait_until(lambda: rows_of(db_path, "free") == [("processed", 1)])
            manager.notify("s")  # a new event for it: still nothing runs
            assert "s" not in manager.active_sessions
            assert manager.paused is False  # the rest of processing goes on
            assert rows_of(db_path, "s") == [("pending", 0)] * 3
            assert worker.pauses.of("s") == SessionPause(PauseCause.PROCESSOR, NO_KEY_REASON)
            assert worker.pauses.paused_processors() == [
                PausedProcessor("openai", None, NO_KEY_REASON, ("s",))
            ]

            await CHANGES[change](configs)
            await wait_until(lambda: rows_of(db_path, "s") == [("processed", 1)] * 3)
            assert worker.pauses.of("s") is None
            assert worker.pauses.paused_processors() == []
        processed = [r["id"] for r in all_rows(db_path) if r["session_id"] == "s"]
        finished = {r["id"]: r["finished_at"] for r in all_rows(db_path)}
        assert sorted(processed, key=lambda i: finished[i]) == processed

    async def test_a_message_claimed_anyway_goes_back_untried(
        self, queue: Queue, store: MemoryStore, configs: SessionConfigs, db_path: Path
    ) -> None:
        """The handler given a message of such a session (its processor cannot be made)
        hands it back with its attempt refunded, instead of failing it."""
        pool = ProcessorPool("extract", env={})
        handler = ClaimHandler(lambda key: pool.get(configs.get(key).processor), store)
        await queue.enqueue("s", "observation", {"i": 0})
        for _ in range(FAST.max_attempts + 1):  # more than enough to fail it, before
            async with queue.stream("s", linger=0) as stream:
                await handler(await anext(aiter(stream)))
        assert rows_of(db_path, "s") == [("pending", 0)]


class TestTheKeyBack:
    async def test_a_daemon_with_the_key_processes_the_backlog(
        self,
        queue: Queue,
        store: MemoryStore,
        configs: SessionConfigs,
        db_path: Path,
        fake: FakeLLM,
    ) -> None:
        """What a restart with the key does: the same settings, a pool that has the key,
        and the waiting messages go to the model, once each."""
        for n in range(2):
            await queue.enqueue("s", "observation", tool_event(n, "s"))
        without = SessionPauses(configs, ProcessorPool("extract", env={}))
        assert without.of("s") == SessionPause(PauseCause.PROCESSOR, NO_KEY_REASON)

        fake.script(*[openai_text(json.dumps(OBSERVATION))] * 2)
        with_key = ProcessorPool("extract", settings_env("openai", fake.url))
        try:
            worker = Worker(queue, store, configs, with_key)
            assert worker.pauses.of("s") is None
            async with running(worker):
                await wait_until(lambda: rows_of(db_path, "s") == [("processed", 1)] * 2)
        finally:
            await with_key.aclose()
        assert len(fake.requests) == 2
        page = await store.observations("s")
        assert [o.title for o in page.items] == [OBSERVATION["title"]] * 2


class TestPauses:
    async def test_its_own_paused_setting_comes_first(self, configs: SessionConfigs) -> None:
        """Paused by its setting and lacking a key: the setting is the pause it shows (its
        processor is still listed as waiting for the key)."""
        await configs.set("s", ConfigName.PAUSED, True)
        pauses = SessionPauses(configs, ProcessorPool("extract", env={}))
        assert pauses.of("s") == SessionPause(PauseCause.SETTING, SETTING_REASON)
        assert [p.sessions for p in pauses.paused_processors()] == [("s",)]
        assert pauses.of("never-configured") is None

    async def test_paused_processors_group_their_sessions(self, configs: SessionConfigs) -> None:
        """One entry per processor and model that cannot be made, its sessions sorted;
        sessions on a processor that works are not listed."""
        await configs.set("b", ConfigName.PROCESSOR, "openai")
        await configs.set("c", ConfigName.PROCESSOR, "anthropic")
        await configs.set("d", ConfigName.PROCESSOR, "openai")
        await configs.set("d", ConfigName.MODEL, "tiny")
        await configs.set("e", ConfigName.MODEL, "tiny")  # the default processor: extract
        paused = SessionPauses(configs, ProcessorPool("extract", env={})).paused_processors()
        assert [(p.processor, p.model, p.sessions) for p in paused] == [
            ("anthropic", None, ("c",)),
            ("openai", None, ("b", "s")),
            ("openai", "tiny", ("d",)),
        ]
        assert "ANTHROPIC_API_KEY" in paused[0].reason
        assert paused[1].to_dict() == {
            "processor": "openai",
            "model": None,
            "reason": NO_KEY_REASON,
            "sessions": ["b", "s"],
        }


class TestPool:
    async def test_a_processor_without_its_key_is_unavailable_and_remembered(self) -> None:
        env = {"MEMQ_BASE_URL": "https://api.openai.com/v1"}
        pool = ProcessorPool("extract", env)
        assert pool.unavailable("openai") == NO_KEY_REASON
        with pytest.raises(ProcessorUnavailableError, match="needs an API key") as raised:
            pool.get("openai")
        assert isinstance(raised.value, ValueError)  # the route and the start catch these
        env["MEMQ_API_KEY"] = "k"  # read once: the key comes back with a restart
        assert pool.unavailable("openai") == NO_KEY_REASON
        assert pool.unavailable("extract") is None
        restarted = ProcessorPool("extract", env)
        assert restarted.unavailable("openai") is None
        await restarted.aclose()

    def test_a_default_that_cannot_be_made_still_stops_the_start(self) -> None:
        with pytest.raises(ValueError, match="OPENAI_API_KEY"):
            ProcessorPool("openai", env={})


class TestKnownSessions:
    async def test_memory_queue_rows_or_settings_make_a_session_known(
        self, queue: Queue, store: MemoryStore, configs: SessionConfigs, db_path: Path
    ) -> None:
        """What ``memq config`` accepts without --create."""
        assert await configs.is_known("s")  # it has a setting
        assert not await configs.is_known("typo")
        await queue.enqueue("queued", "observation", {"i": 0})
        assert await configs.is_known("queued")
        await queue.enqueue("remembered", "observation", tool_event(1, "remembered"), "t1")
        handler = ClaimHandler(lambda key: ProcessorPool("extract", env={}).default, store)
        async with queue.stream("remembered", linger=0) as stream:
            await handler(await anext(aiter(stream)))
        assert await store.has_session("remembered")
        with sqlite3.connect(db_path) as conn:  # its queue rows pruned: memory is enough
            conn.execute("DELETE FROM pending_messages WHERE session_id = 'remembered'")
        assert await configs.is_known("remembered")
        await configs.delete("s", ConfigName.PROCESSOR)
        assert not await configs.is_known("s")
