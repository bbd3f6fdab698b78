"""A clock for code that takes one (``clock=``): time passes only when the test says so."""

from __future__ import annotations

from memq.queue import EpochMs
from memq.queue.testing import ManualClock


class FakeClock(ManualClock):
    """A ``ManualClock`` whose monotonic seconds start at ``monotonic`` and whose wall clock
    a test may also set outright (``set_wall``)."""

    def __init__(self, monotonic: float = 1000.0, *, wall_ms: int = 1_000_000) -> None:
        super().__init__(wall_seconds=wall_ms / 1000)
        self._monotonic = monotonic

    def set_wall(self, instant_ms: int) -> None:
        """Make the wall clock read ``instant_ms``."""
        self._wall = EpochMs(instant_ms)
