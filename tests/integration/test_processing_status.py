"""What is processing now and for how long, in the status (``processing_messages``), read on
a clock the test moves: a claim made at t and read at t + 90 s says 90 seconds (not 0.09 or
90000, a unit slip either way)."""

from __future__ import annotations

from pathlib import Path

from memq.cli.status_lines import processing_lines
from memq.queue import Queue, QueueSettings
from memq.queue.testing import ManualClock
from memq.worker.status_report import StatusReport


def report(queue_stats: object, processing: list[dict[str, object]]) -> dict[str, object]:
    return StatusReport(
        state="running",
        port=1,
        queue=queue_stats,  # type: ignore[arg-type]
        paused_sessions=(),
        session_ttl=60.0,
        disk={},
        spool={"waiting": 0, "rejected": 0},
        processing_messages=processing,
    ).as_dict()


async def test_a_claim_read_90_seconds_later_has_run_90_seconds(db_path: Path) -> None:
    clock = ManualClock(wall_seconds=1_800_000_000.0)
    async with await Queue.open(db_path, QueueSettings(), clock=clock) as queue:
        done = await queue.enqueue("claude-code:a", "observation", {"n": 1}, dedupe_key="t1")
        await queue.enqueue("claude-code:a", "observation", {"n": 2}, dedupe_key="t2")
        assert await queue.processing_messages() == []
        stream = queue.stream("claude-code:a", linger=0)
        claim = await stream.__anext__()
        clock.advance(90.0)
        processing = await queue.processing_messages()
        assert processing == [
            {
                "message_id": done.message_id,
                "session_id": "claude-code:a",
                "kind": "observation",
                "attempts": 1,
                "started_at": "2027-01-15T08:00:00.000Z",
                "running_seconds": 90.0,
            }
        ]
        status = report(await queue.stats(), processing)
        assert status["processing_messages"] == processing
        assert processing_lines(processing) == [
            f"working   message {processing[0]['message_id']} (observation, attempt 1) "
            "of claude-code:a for 1m30s"
        ]
        await claim.ack()
        await stream.aclose()
        assert await queue.processing_messages() == []


async def test_a_wall_clock_set_back_never_shows_a_negative_time(db_path: Path) -> None:
    clock = ManualClock()
    async with await Queue.open(db_path, QueueSettings(), clock=clock) as queue:
        await queue.enqueue("s", "observation", {"n": 1}, dedupe_key="t1")
        stream = queue.stream("s", linger=0)
        claim = await stream.__anext__()
        clock.step_wall(-30.0)
        (item,) = await queue.processing_messages()
        assert item["running_seconds"] == 0.0
        await claim.release()
        await stream.aclose()


async def test_the_list_is_bounded(db_path: Path) -> None:
    clock = ManualClock()
    async with await Queue.open(db_path, QueueSettings(), clock=clock) as queue:
        streams = []
        for n in range(3):
            await queue.enqueue(f"s{n}", "observation", {"n": n}, dedupe_key=f"t{n}")
            stream = queue.stream(f"s{n}", linger=0)
            streams.append((stream, await stream.__anext__()))
            clock.advance(1.0)
        listed = await queue.processing_messages(limit=2)
        # Longest running first.
        assert [item["session_id"] for item in listed] == ["s0", "s1"]
        assert [item["running_seconds"] for item in listed] == [3.0, 2.0]
        for stream, claim in streams:
            await claim.release()
            await stream.aclose()
