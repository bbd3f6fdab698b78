"""Rows written by another process (the hook's fallback) reach a running stream."""

from __future__ import annotations

import json
from pathlib import Path

import anyio

from memq.queue import Queue, QueueSettings
from tests.helpers.processes import run_child


class TestForeignWriter:
    async def test_a_lingering_stream_notices_rows_written_by_another_process(
        self, db_path: Path
    ) -> None:
        """The data_version check finds the foreign row within its interval."""
        settings = QueueSettings(change_check_interval=0.1)
        async with await Queue.open(db_path, settings) as queue:
            got: list[dict[str, str]] = []

            async def consume() -> None:
                async for claim in queue.stream("s", linger=20):
                    got.append(claim.message.payload)
                    await claim.ack()
                    return

            with anyio.fail_after(15):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(consume)
                    await anyio.sleep(0.3)  # let the stream go idle first
                    done = await anyio.to_thread.run_sync(
                        run_child, "insert-direct", str(db_path), "s", "toolu_9"
                    )
                    assert done.returncode == 0, done.stderr
            assert got == [{"via": "fallback"}]

    async def test_a_fallback_row_and_a_later_http_resend_are_one_message(
        self, db_path: Path
    ) -> None:
        """The same dedupe key written directly and then enqueued gives the first id."""
        async with await Queue.open(db_path) as queue:
            done = await anyio.to_thread.run_sync(
                run_child, "insert-direct", str(db_path), "s", "toolu_1"
            )
            (direct_id,) = json.loads(done.stdout)
            again = await queue.enqueue("s", "observation", {}, dedupe_key="toolu_1")
            assert again == (direct_id, False)
