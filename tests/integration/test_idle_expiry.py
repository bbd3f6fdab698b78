"""Idle expiry of a session's generator (``SessionManager.expire``), alone and driven by the
activity tracker, on a real queue file.

The manager's rescan for rows written by other processes is woken only by another process's
commit, which these tests never make: they see what ``expire`` itself does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

import anyio
import anyio.lowlevel
import pytest

from memq.queue import Claim, MessageStatus, Queue
from memq.worker.activity import ActivityTracker
from memq.worker.sessions import SessionManager
from tests.helpers.clock import FakeClock
from tests.helpers.rows import all_rows, row


async def wait_for(condition: Callable[[], bool]) -> None:
    """Yield until ``condition()`` holds; a hang fails after 10 s."""
    with anyio.fail_after(10):
        while not condition():  # noqa: ASYNC110 - the condition is the test's bookkeeping
            await anyio.sleep(0.005)


def status(db_path: Path, message_id: int) -> MessageStatus:
    return MessageStatus(row(db_path, message_id)["status"])


class Gated:
    """A handler that acks each claim; sessions in ``held`` wait for ``release``."""

    def __init__(self, *held: str) -> None:
        self.held = set(held)
        self.release = anyio.Event()
        self.started: list[int] = []
        self.done: list[tuple[str, int]] = []

    async def __call__(self, claim: Claim) -> None:
        async with claim:
            self.started.append(claim.message.id)
            await anyio.lowlevel.checkpoint()  # a real processor awaits, too
            if claim.message.session_id in self.held:
                await self.release.wait()
        # After the ack, in the step that ends the handler: whoever sees it "done" sees the
        # session no longer busy.
        self.done.append((claim.message.session_id, claim.message.id))


def manager(
    queue: Queue,
    handler: Callable[[Claim], Awaitable[None]],
    *,
    capacity: int = 4,
    linger: float = 30,
) -> SessionManager:
    """A manager whose generators linger 30 s (so that lingering can be seen)."""
    return SessionManager(queue, handler, capacity=capacity, linger=linger)


async def send(queue: Queue, sessions: SessionManager, session: str) -> int:
    message_id = (await queue.enqueue(session, "observation", {"session": session})).message_id
    sessions.notify(session)
    return message_id


class TestExpire:
    async def test_a_lingering_generator_is_ended(self, queue: Queue) -> None:
        """Its work is done and it waits 30 s for more: expiry ends it now. A later event
        starts a fresh one."""
        handler = Gated()
        sessions = manager(queue, handler)
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            await send(queue, sessions, "a")
            await wait_for(lambda: len(handler.done) == 1)
            assert sessions.active_sessions == ["a"]  # lingering
            with anyio.fail_after(10):
                await sessions.expire("a")
            assert sessions.active_sessions == []
            second = await send(queue, sessions, "a")
            await wait_for(lambda: ("a", second) in handler.done)
            await sessions.stop(grace=1)

    async def test_an_unknown_or_ended_session_is_a_no_op(self, queue: Queue) -> None:
        sessions = manager(queue, Gated())
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            with anyio.fail_after(10):
                await sessions.expire("never-seen")
            assert sessions.active_sessions == []
            await sessions.stop(grace=1)

    async def test_a_message_being_handled_is_not_interrupted(
        self, queue: Queue, db_path: Path
    ) -> None:
        """A busy session is not idle: expiry returns at once and leaves it working."""
        handler = Gated("busy")
        sessions = manager(queue, handler)
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            message_id = await send(queue, sessions, "busy")
            await wait_for(lambda: handler.started == [message_id])
            with anyio.fail_after(10):  # does not wait for the handler
                await sessions.expire("busy")
            assert sessions.active_sessions == ["busy"]
            handler.release.set()
            await wait_for(lambda: handler.done == [("busy", message_id)])
            await sessions.stop(grace=1)
        (row,) = all_rows(db_path)
        assert (row["status"], row["attempts"]) == (MessageStatus.PROCESSED.value, 1)

    async def test_a_session_waiting_for_a_slot_keeps_its_place_and_its_work(
        self, queue: Queue
    ) -> None:
        """With the only slot taken, a session with a backlog waits: it is not idle, and
        expiring it must not drop the backlog (or send it to the back of the line)."""
        handler = Gated("hog")
        # A short linger: the hog must not keep the slot long once its message is done.
        sessions = manager(queue, handler, capacity=1, linger=0.05)
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            await send(queue, sessions, "hog")
            await wait_for(lambda: len(handler.started) == 1)
            waiting = await send(queue, sessions, "waiting")
            assert sessions.active_sessions == ["hog", "waiting"]
            with anyio.fail_after(10):
                await sessions.expire("waiting")
            assert sessions.active_sessions == ["hog", "waiting"]
            handler.release.set()
            await wait_for(lambda: ("waiting", waiting) in handler.done)
            await sessions.stop(grace=1)

    @pytest.mark.parametrize("yields", [0, 1, 2, 3, 5, 10, 20, 50])
    async def test_an_event_arriving_while_the_session_expires_is_processed(
        self, queue: Queue, db_path: Path, yields: int
    ) -> None:
        """Whatever the interleaving of the expiry and a new event, the event is handled."""
        handler = Gated()
        sessions = manager(queue, handler)
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            await send(queue, sessions, "a")
            await wait_for(lambda: len(handler.done) == 1)
            # The commit wakes the lingering stream, which starts to claim the new row
            # while the expiry looks at the task; the event's notify comes at any point.
            late = (await queue.enqueue("a", "observation", {})).message_id
            tg.start_soon(sessions.expire, "a")
            for _ in range(yields):
                await anyio.lowlevel.checkpoint()
            sessions.notify("a")
            await wait_for(lambda: status(db_path, late) == MessageStatus.PROCESSED)
            await sessions.stop(grace=1)


class TestDrivenByTheTracker:
    async def test_an_idle_session_loses_its_generator_and_a_busy_one_does_not(
        self, queue: Queue
    ) -> None:
        """The daemon's wiring: ``tracker.on_expire(sessions.expire)``."""
        clock = FakeClock()
        activity = ActivityTracker(queue, ttl=60, clock=clock)
        handler = Gated("busy")
        sessions = manager(queue, handler)
        activity.on_expire(sessions.expire)
        async with anyio.create_task_group() as tg:
            await tg.start(sessions.run)
            for session in ("idle", "busy"):
                activity.touch(session)
                await send(queue, sessions, session)
            await wait_for(lambda: len(handler.started) == 2 and len(handler.done) == 1)
            assert sessions.active_sessions == ["busy", "idle"]
            clock.advance(61)
            with anyio.fail_after(10):
                assert sorted(await activity.sweep()) == ["busy", "idle"]
            assert sessions.active_sessions == ["busy"]
            handler.release.set()
            await wait_for(lambda: len(handler.done) == 2)
            await activity.close()
            await sessions.stop(grace=1)
