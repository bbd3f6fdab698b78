"""Intake before processing: a message waits its turn while hook events are being taken in.

On a small machine the event loop, the queue's writer and the GIL are shared by the two: a
message's processing (its processor, its memory write and the ack, several trips to the
writer's thread) costs several times what taking an event in does. Run side by side, every
202 waits behind the processing of messages that could as well run a few milliseconds later.

So ``POST /api/events`` marks each event in flight from its parsed body until it is queued
(``arrived`` / ``departed``), and a session's generator asks for its ``turn`` before it
handles a message: given at once when no event came since the last turn; else once none is
in flight, and the loop has had a few passes to route the requests it has already read. A
burst that never pauses still lets one message through every ``max_wait`` seconds (one at a
time, whichever session's generator asked first), so processing keeps a small bounded share
and no message waits without end; when the burst ends, every waiting generator goes on at
once. A message waiting its turn is claimed and held: a pause, a forget or a stop hands it
back untried, as any claim not yet handled.

Times are read on the queue's clock. The next turn's time is checked at every departure (a
test moves a manual clock and lets an event depart), with a timer as the fallback when no
event departs.
"""

from __future__ import annotations

from typing import Final

import anyio
import anyio.lowlevel

from memq.queue import SYSTEM_CLOCK, Clock

# While events keep coming, one message goes through every this many seconds.
DEFAULT_MAX_WAIT: Final = 0.05
# Passes of the event loop a turn lets go by once nothing is in flight: a request the loop
# has read is routed, and reaches the gate, within three (its bytes, its task's first step).
QUIET_STEPS: Final = 3


class IntakeGate:
    """Holds processing back while events are being taken in; see the module docstring.

    Args:
        max_wait: seconds between the turns given while events keep coming.
        clock: whose ``monotonic()`` those turns are timed on (the queue's).
    """

    def __init__(self, *, max_wait: float = DEFAULT_MAX_WAIT, clock: Clock = SYSTEM_CLOCK) -> None:
        if max_wait < 0:
            raise ValueError(f"max_wait must not be negative, not {max_wait}")
        self.max_wait = max_wait
        self._clock = clock
        self._in_flight = 0
        self._waiting = 0
        self._arrivals = 0  # events that arrived, ever
        self._heard = 0  # of those, the ones before the intake last counted as quiet
        self._next_turn = 0.0  # when a waiter may go though events are in flight
        self._wake = anyio.Event()
        self.waited = 0  # turns that had to wait, for the status and benchmarks
        self.given_in_bursts = 0  # of those, turns given while events were in flight

    @property
    def in_flight(self) -> int:
        """Events being taken in right now."""
        return self._in_flight

    @property
    def waiting(self) -> int:
        """Turns being waited for right now."""
        return self._waiting

    def arrived(self) -> None:
        """An event is being taken in; call ``departed`` once it is queued (or refused)."""
        self._in_flight += 1
        self._arrivals += 1

    def departed(self) -> None:
        """The event of an ``arrived`` is queued or refused."""
        self._in_flight -= 1
        if self._waiting and (not self._in_flight or self._clock.monotonic() >= self._next_turn):
            self._wake.set()
            self._wake = anyio.Event()

    async def turn(self) -> None:
        """Return when a message may be processed: at once when no event came since the
        last turn."""
        if not self._in_flight and self._arrivals == self._heard:
            return
        if not self._waiting:
            self._next_turn = self._clock.monotonic() + self.max_wait
        self._waiting += 1
        try:
            await self._until_quiet()
        finally:
            self._waiting -= 1

    async def _until_quiet(self) -> None:
        waited = False
        while True:
            while self._in_flight:
                if not waited:
                    waited = True
                    self.waited += 1
                remaining = self._next_turn - self._clock.monotonic()
                if remaining <= 0:
                    # This one goes; the next waits max_wait from now, whoever it is.
                    self._next_turn = self._clock.monotonic() + self.max_wait
                    self.given_in_bursts += 1
                    return
                wake = self._wake
                with anyio.move_on_after(remaining):
                    await wake.wait()
            # Nothing in flight, but the loop may hold requests it has read and not yet
            # routed (the clients of a burst answer within microseconds): let them reach
            # the gate before the intake counts as quiet.
            heard = self._arrivals
            for _ in range(QUIET_STEPS):
                await anyio.lowlevel.checkpoint()
            if not self._in_flight:
                self._heard = heard
                return
