"""One group commit with fresh messages and duplicates: every message gets its own row's id."""

from __future__ import annotations

import anyio

from memq.queue import Enqueued
from tests.helpers.backends import Backend


class TestIdsInABatch:
    async def test_fresh_messages_beside_duplicates_get_their_own_rows(
        self, backend: Backend
    ) -> None:
        """A duplicate's skipped insert leaves a gap in the ids: the fresh messages of the
        same batch are still paired with their own rows, the duplicates with the first."""
        queue = backend.queue
        first = await queue.enqueue("s", "observation", {"n": "first"}, dedupe_key="k")
        sent: dict[int, tuple[str | None, Enqueued]] = {}

        async def send(n: int, key: str | None) -> None:
            sent[n] = (key, await queue.enqueue("s", "observation", {"n": n}, dedupe_key=key))

        keys = [None, "k", "new-1", None, "k", "new-2", "new-1", None]
        async with anyio.create_task_group() as tg:
            for n, key in enumerate(keys):
                tg.start_soon(send, n, key)
        by_key = {"k": first.message_id}
        for n, (key, result) in sorted(sent.items()):
            if result.created:
                assert backend.row(result.message_id)["payload"] == f'{{"n":{n}}}'
                if key is not None:
                    by_key[key] = result.message_id
        for _n, (key, result) in sorted(sent.items()):
            if key is not None:
                assert result.message_id == by_key[key]
        assert sum(result.created for _key, result in sent.values()) == 5
