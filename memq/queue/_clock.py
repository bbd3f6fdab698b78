"""Time as the queue sees it.

Two kinds of time, kept apart by type so that mixing units fails ``mypy`` instead of a user:

- **Stored time** is integer milliseconds: ``EpochMs`` for an instant (every time column),
  ``SpanMs`` for a length of time added to or taken from one. Settings are seconds; they
  become ``SpanMs`` in exactly one place, ``StoredSpans.from_settings``. ``EpochMs - float``
  is a ``float``, which no function that takes an ``EpochMs`` accepts.
- **In-process waits** (linger, polling, backoff sleeps) are float seconds on a monotonic
  clock, which a step of the wall clock cannot stretch or shorten.

A ``Clock`` gives both, so that a test can drive retention, leases, backoff and linger at
their real settings by moving time itself.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, NewType, Protocol

if TYPE_CHECKING:
    from memq.queue._settings import QueueSettings

EpochMs = NewType("EpochMs", int)
"""An instant: whole milliseconds since the Unix epoch, the unit of every stored time."""

SpanMs = NewType("SpanMs", int)
"""A length of time in whole milliseconds, to add to or take from an ``EpochMs``."""


class Clock(Protocol):
    """Where the queue reads the time."""

    def now(self) -> EpochMs:
        """The wall clock, as stored."""

    def monotonic(self) -> float:
        """Seconds on a clock that only moves forward, for waits inside this process."""


class SystemClock:
    """The machine's clocks."""

    def now(self) -> EpochMs:
        return EpochMs(time.time_ns() // 1_000_000)

    def monotonic(self) -> float:
        return time.monotonic()


SYSTEM_CLOCK: Clock = SystemClock()


def span(seconds: float) -> SpanMs:
    """``seconds`` as a stored span (rounded to the nearest millisecond)."""
    return SpanMs(round(seconds * 1000))


def later(instant: EpochMs, length: SpanMs) -> EpochMs:
    """The instant ``length`` after ``instant``."""
    return EpochMs(instant + length)


def earlier(instant: EpochMs, length: SpanMs) -> EpochMs:
    """The instant ``length`` before ``instant``."""
    return EpochMs(instant - length)


def seconds_until(instant: EpochMs, now: EpochMs) -> float:
    """Seconds from ``now`` to ``instant`` (negative when it has passed)."""
    return (instant - now) / 1000


@dataclass(frozen=True, slots=True)
class StoredSpans:
    """The queue's settings that are compared with stored times, converted once."""

    retry_waits: tuple[SpanMs, ...]  # after failed attempt 1, 2, ... (the last one repeats)
    longest_wait: SpanMs  # the furthest ahead the queue ever sets a message's due time
    stored_lease: SpanMs
    processed_retention: SpanMs
    failed_retention: SpanMs

    @classmethod
    def from_settings(cls, settings: QueueSettings) -> StoredSpans:
        """The one place where the queue's settings in seconds become stored spans."""
        attempts = range(1, max(settings.max_attempts, 1) + 1)
        return cls(
            retry_waits=tuple(span(settings.retry_delay_after(n)) for n in attempts),
            longest_wait=span(settings.max_wait),
            stored_lease=span(settings.stored_lease),
            processed_retention=span(settings.processed_retention),
            failed_retention=span(settings.failed_retention),
        )

    def retry_wait(self, attempt: int) -> SpanMs:
        """How long a message waits after its failed attempt number ``attempt`` (1-based)."""
        return self.retry_waits[min(max(attempt, 1), len(self.retry_waits)) - 1]
