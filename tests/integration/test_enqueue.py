"""Accepting messages: durability, dedupe keys, group commit and bad input."""

from __future__ import annotations

import json
import math

import anyio
import pytest

from memq.exceptions import InvalidMessageError, QueueClosedError
from memq.queue import MessageKind
from tests.helpers.backends import Backend


class TestEnqueue:
    async def test_returns_ascending_ids_and_stores_the_payload(self, backend: Backend) -> None:
        """Each accepted message is a row with its JSON payload, status pending."""
        queue = backend.queue
        first = await queue.enqueue("s", MessageKind.OBSERVATION, {"tool": "Bash", "n": 1})
        second = await queue.enqueue("s", "prompt", {"prompt": "héllo ✓"})
        assert first.created
        assert second.created
        assert second.message_id > first.message_id
        rows = backend.rows()
        assert [r["status"] for r in rows] == ["pending", "pending"]
        assert rows[1]["payload"] == '{"prompt":"héllo ✓"}'
        assert rows[0]["attempts"] == 0

    async def test_json_text_the_caller_holds_is_stored_as_given(self, backend: Backend) -> None:
        """The daemon hands over the hook's own body text: stored as it came, not re-encoded."""
        queue = backend.queue
        text = '{"prompt": "h\\u00e9llo", "n": 1}'
        await queue.enqueue("s", "prompt", json.loads(text), payload_json=text)
        (row,) = backend.rows()
        assert row["payload"] == text
        assert json.loads(row["payload"]) == {"prompt": "héllo", "n": 1}

    async def test_is_durable_across_reopen(self, backend: Backend) -> None:
        """What enqueue acknowledged is there after the queue is closed and opened again."""
        queue = await backend.open()
        ids = [(await queue.enqueue("s", "observation", {"i": i})).message_id for i in range(5)]
        await queue.close()
        async with await backend.open() as reopened:
            stats = await reopened.stats()
        assert stats.counts.pending == 5
        assert [r["id"] for r in backend.rows()] == ids

    async def test_closed_queue_refuses(self, backend: Backend) -> None:
        """Enqueueing after close is a clear error, not a hang."""
        queue = await backend.open()
        await queue.close()
        with pytest.raises(QueueClosedError):
            await queue.enqueue("s", "observation", {})


class TestDedupe:
    async def test_same_key_twice_gives_one_row_and_the_first_id(self, backend: Backend) -> None:
        """A hook that fires twice for one tool call stores one message."""
        queue = backend.queue
        first = await queue.enqueue("s", "observation", {"try": 1}, dedupe_key="toolu_1")
        again = await queue.enqueue("s", "observation", {"try": 2}, dedupe_key="toolu_1")
        assert first.created
        assert not again.created
        assert again.message_id == first.message_id
        rows = backend.rows()
        assert len(rows) == 1
        assert rows[0]["payload"] == '{"try":1}'

    async def test_keys_are_per_session(self, backend: Backend) -> None:
        """The same key in two sessions is two messages."""
        queue = backend.queue
        a = await queue.enqueue("a", "observation", {}, dedupe_key="k")
        b = await queue.enqueue("b", "observation", {}, dedupe_key="k")
        assert a.created
        assert b.created
        assert a.message_id != b.message_id

    async def test_concurrent_duplicates_in_one_batch_agree_on_one_id(
        self, backend: Backend
    ) -> None:
        """Duplicates that land in the same group commit still resolve to the first row."""
        queue = backend.queue
        results = []

        async def send(i: int) -> None:
            results.append(await queue.enqueue("s", "observation", {"i": i}, dedupe_key="same"))

        async with anyio.create_task_group() as tg:
            for i in range(20):
                tg.start_soon(send, i)
            for i in range(20):
                tg.start_soon(queue.enqueue, "s", "observation", {"plain": i})
        assert len({r.message_id for r in results}) == 1
        assert sum(r.created for r in results) == 1
        assert len(backend.rows()) == 21

    async def test_duplicate_after_processing_still_returns_the_first_id(
        self, backend: Backend
    ) -> None:
        """A resend after the message was processed is still a duplicate, not new work."""
        queue = backend.queue
        first = await queue.enqueue("s", "observation", {}, dedupe_key="k")
        async for claim in queue.stream("s", linger=0):
            await claim.ack()
        again = await queue.enqueue("s", "observation", {}, dedupe_key="k")
        assert again == (first.message_id, False)


class TestGroupCommit:
    async def test_concurrent_producers_share_commits(self, backend: Backend) -> None:
        """64 producers at once need far fewer than 64 commits."""
        queue = backend.queue
        before = queue._writer.batches
        async with anyio.create_task_group() as tg:
            for i in range(64):
                tg.start_soon(queue.enqueue, f"s{i % 8}", "observation", {"i": i})
        commits = queue._writer.batches - before
        assert commits < 16
        assert (await queue.stats()).counts.pending == 64

    async def test_a_cancelled_producer_leaves_no_half_written_batch(
        self, backend: Backend
    ) -> None:
        """Cancelling producers mid-flight stores each message wholly or not at all, and
        loses none whose enqueue returned."""
        queue = backend.queue
        acknowledged: list[int] = []

        async def send(i: int) -> None:
            await queue.enqueue("s", "observation", {"i": i})
            acknowledged.append(i)

        with anyio.move_on_after(0.001):
            async with anyio.create_task_group() as tg:
                for i in range(200):
                    tg.start_soon(send, i)
        stored = backend.rows()
        assert all(r["payload"].startswith('{"i":') for r in stored)
        assert set(acknowledged) <= {json.loads(r["payload"])["i"] for r in stored}
        # The writer is usable afterwards.
        assert (await queue.enqueue("s", "observation", {"after": True})).created


class TestBadInput:
    @pytest.mark.parametrize(
        ("session", "kind", "payload", "key", "problem"),
        [
            ("", "observation", {}, None, "session_id"),
            ("a\x00b", "observation", {}, None, "NUL"),
            ("x" * 600, "observation", {}, None, "longer"),
            (7, "observation", {}, None, "session_id"),
            ("s", "nonsense", {}, None, "kind"),
            ("s", "observation", {"x": math.nan}, None, "JSON"),
            ("s", "observation", {"x": object()}, None, "JSON"),
            ("s", "observation", {"x": "\ud800"}, None, "JSON"),
            ("s", "observation", {}, "", "dedupe_key"),
        ],
    )
    async def test_is_refused_with_a_clear_error_and_writes_nothing(
        self,
        backend: Backend,
        session: object,
        kind: str,
        payload: object,
        key: str | None,
        problem: str,
    ) -> None:
        """Input that cannot be stored faithfully is refused before it reaches SQLite."""
        queue = backend.queue
        await queue.enqueue("s", "observation", {"accepted": True})
        with pytest.raises(InvalidMessageError, match=problem):
            await queue.enqueue(session, kind, payload, dedupe_key=key)
        assert len(backend.rows()) == 1

    async def test_absurd_nesting_is_refused(self, backend: Backend) -> None:
        """A payload too deep to serialize is an input error, not a crash."""
        queue = backend.queue
        deep: list[object] = []
        for _ in range(100_000):
            deep = [deep]
        with pytest.raises(InvalidMessageError):
            await queue.enqueue("s", "observation", deep)
