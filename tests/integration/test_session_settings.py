"""Per-session settings on a real database: stored, reloaded, and honoured by the worker."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from memq.exceptions import ProcessorUnavailableError
from memq.memory.store import MemoryStore
from memq.processors.base import Processor
from memq.processors.pool import ProcessorPool
from memq.queue import Claim, Queue, QueueSettings
from memq.worker.processing import ClaimHandler
from memq.worker.session_config import ConfigName, SessionConfigs
from memq.worker.sessions import SessionManager
from tests.helpers.rows import all_rows

FAST = QueueSettings(retry_delay=0.01, retry_delay_max=0.02, change_check_interval=0.05)


class TestStorage:
    async def test_settings_are_reloaded_exactly(self, db_path: Path) -> None:
        """What was set is what a new daemon loads; a deleted setting stays deleted."""
        async with await Queue.open(db_path) as queue:
            configs = await SessionConfigs.load(queue)
            await configs.set("a", ConfigName.PAUSED, True)
            await configs.set("a", ConfigName.MODEL, "m")
            await configs.set("b", ConfigName.PROCESSOR, "openai")
            await configs.set("b", ConfigName.PAUSED, False)
            assert await configs.delete("a", ConfigName.MODEL)
            assert not await configs.delete("a", ConfigName.MODEL)
        async with await Queue.open(db_path) as queue:
            reloaded = await SessionConfigs.load(queue)
            assert reloaded.get("a").to_dict() == {"processor": None, "model": None, "paused": True}
            assert reloaded.explicit("a") == ["paused"]
            # Set to its default value, it still counts as set (DELETE can remove it).
            assert reloaded.explicit("b") == ["paused", "processor"]
            assert reloaded.paused_sessions == ["a"]
            await reloaded.forget("a")
            assert reloaded.explicit("a") == []
        async with await Queue.open(db_path) as queue:
            assert (await SessionConfigs.load(queue)).paused_sessions == []

    async def test_listeners_hear_every_change(self, db_path: Path) -> None:
        async with await Queue.open(db_path) as queue:
            configs = await SessionConfigs.load(queue)
            heard: list[str] = []

            async def listen(key: str) -> None:
                heard.append(key)

            configs.on_change(listen)
            await configs.set("a", ConfigName.PAUSED, True)
            await configs.delete("a", ConfigName.PAUSED)
            await configs.delete("a", ConfigName.PAUSED)  # not set: nothing changed
            assert heard == ["a", "a"]


class TestPausedSessions:
    async def test_a_paused_session_waits_and_an_unpaused_one_runs(self, db_path: Path) -> None:
        """A paused session's messages stay pending while another's are processed; lifting
        the pause schedules its backlog, in order."""
        async with await Queue.open(db_path, FAST) as queue:
            configs = await SessionConfigs.load(queue)
            await configs.set("paused", ConfigName.PAUSED, True)
            seen: list[tuple[str, int]] = []

            async def handle(claim: Claim) -> None:
                async with claim:
                    seen.append((claim.message.session_id, claim.message.payload["i"]))

            manager = SessionManager(
                queue, handle, capacity=2, linger=0.05, is_paused=configs.is_paused
            )
            configs.on_change(manager.setting_changed)
            for i in range(3):
                await queue.enqueue("paused", "observation", {"i": i})
            await queue.enqueue("free", "observation", {"i": 9})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    while ("free", 9) not in seen:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    manager.notify("paused")  # a new event: still ignored
                    await anyio.sleep(0.3)
                    assert [s for s, _ in seen] == ["free"]
                    await configs.set("paused", ConfigName.PAUSED, False)
                    while len(seen) < 4:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    await manager.stop(grace=1)
            assert [i for s, i in seen if s == "paused"] == [0, 1, 2]

    async def test_pausing_a_busy_session_stops_it_after_its_message(self, db_path: Path) -> None:
        """The message in hand finishes; the rest wait, with no attempt spent on them."""
        async with await Queue.open(db_path, FAST) as queue:
            configs = await SessionConfigs.load(queue)
            started, release = anyio.Event(), anyio.Event()
            seen: list[int] = []

            async def handle(claim: Claim) -> None:
                async with claim:
                    started.set()
                    await release.wait()
                    seen.append(claim.message.payload["i"])

            manager = SessionManager(queue, handle, linger=5, is_paused=configs.is_paused)
            configs.on_change(manager.setting_changed)
            for i in range(3):
                await queue.enqueue("s", "observation", {"i": i})
            with anyio.fail_after(10):
                async with anyio.create_task_group() as tg:
                    await tg.start(manager.run)
                    await started.wait()
                    await configs.set("s", ConfigName.PAUSED, True)
                    release.set()
                    while manager.active_sessions:  # noqa: ASYNC110
                        await anyio.sleep(0.01)
                    await manager.stop(grace=1)
            assert seen == [0]
            rows = {row["id"]: row for row in all_rows(db_path)}
            assert [(r["status"], r["attempts"]) for r in rows.values()] == [
                ("processed", 1),
                ("pending", 0),
                ("pending", 0),
            ]


class TestProcessorChoice:
    async def test_the_handler_asks_for_the_sessions_processor_per_message(
        self, db_path: Path
    ) -> None:
        """The processor is looked up for each message, so a change applies to the next
        one; a processor that cannot be made (no API key here) hands the message back
        untried: no attempt is spent on it."""
        pool = ProcessorPool("extract", env={})
        async with (
            await Queue.open(db_path, FAST) as queue,
            await MemoryStore.open(db_path) as store,
        ):
            configs = await SessionConfigs.load(queue)
            asked: list[tuple[str | None, str | None]] = []

            def processor_for(session: str) -> Processor:
                config = configs.get(session)
                asked.append((config.processor, config.model))
                return pool.get(config.processor, config.model)

            handler = ClaimHandler(processor_for, store)
            for i in range(3):
                await queue.enqueue("s", "observation", {"i": i})
            async with queue.stream("s", linger=0) as stream:
                claims = aiter(stream)
                await handler(await anext(claims))
                await configs.set("s", ConfigName.MODEL, "m-1")
                await handler(await anext(claims))
                await configs.set("s", ConfigName.PROCESSOR, "anthropic")
                await handler(await anext(claims))
            assert asked == [(None, None), (None, "m-1"), ("anthropic", "m-1")]
            rows = all_rows(db_path)
            assert [row["status"] for row in rows] == ["processed", "processed", "pending"]
            assert rows[2]["attempts"] == 0
            assert rows[2]["last_error"] is None  # nothing failed


def test_the_pool_makes_each_processor_once_and_passes_the_model() -> None:
    env = {"MEMQ_API_KEY": "k", "MEMQ_BASE_URL": "http://127.0.0.1:9/v1"}
    pool = ProcessorPool("extract", env)
    assert pool.get() is pool.default
    first = pool.get("openai", "tiny")
    assert pool.get("openai", "tiny") is first
    assert first.settings.model == "tiny"  # type: ignore[attr-defined]
    assert pool.get("openai").settings.model != "tiny"  # type: ignore[attr-defined]
    with pytest.raises(ProcessorUnavailableError, match="unknown processor"):
        pool.get("nope")
