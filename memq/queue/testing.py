"""Helpers for tests of code built on the queue."""

from __future__ import annotations

from memq.queue._queue import Queue


async def simulate_crash(queue: Queue) -> None:
    """Drop ``queue`` the way a killed process would: connections closed and the lock
    released without settling, releasing or writing anything. The file is left exactly as
    its last commit left it, so the next ``Queue.open`` must recover it."""
    await queue._shut_down(hand_back_claims=False)
