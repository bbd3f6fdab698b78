"""Helpers for tests of code built on the queue."""

from __future__ import annotations

from memq.queue._clock import EpochMs, span
from memq.queue._queue import Queue

__all__ = ["ManualClock", "simulate_crash"]


async def simulate_crash(queue: Queue) -> None:
    """Drop ``queue`` the way a killed process would: connections closed and the lock
    released without settling, releasing or writing anything. The file is left exactly as
    its last commit left it, so the next ``Queue.open`` must recover it."""
    await queue._shut_down(hand_back_claims=False)


class ManualClock:
    """A ``Clock`` that moves only when a test says so, for ``Queue.open(..., clock=...)``.

    ``advance`` moves both the wall clock and the monotonic one, as time passing does;
    ``step_wall`` moves only the wall clock, as a user or NTP setting the time does.
    """

    def __init__(self, wall_seconds: float = 1_800_000_000.0) -> None:
        self._wall = EpochMs(span(wall_seconds))
        self._monotonic = 1000.0

    def now(self) -> EpochMs:
        return self._wall

    def monotonic(self) -> float:
        return self._monotonic

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass."""
        if seconds < 0:
            raise ValueError("time does not pass backwards; use step_wall for that")
        self._wall = EpochMs(self._wall + span(seconds))
        self._monotonic += seconds

    def step_wall(self, seconds: float) -> None:
        """Set the wall clock ``seconds`` ahead (or back, when negative) without time passing."""
        self._wall = EpochMs(self._wall + span(seconds))
