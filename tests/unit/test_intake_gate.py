"""The intake gate: a message's turn waits for the events in flight, at most ``max_wait`` at a
time, on a fake clock (a departure is when the gate looks at it)."""

from __future__ import annotations

import anyio
import anyio.lowlevel
import pytest

from memq.worker.intake_gate import IntakeGate
from tests.helpers.clock import FakeClock


async def settle() -> None:
    """Let every task that can run, run."""
    for _ in range(10):
        await anyio.lowlevel.checkpoint()


class Turns:
    """Waiters on a gate, each recording when its turn came."""

    def __init__(self, gate: IntakeGate) -> None:
        self.gate = gate
        self.went: list[str] = []

    async def wait(self, name: str) -> None:
        await self.gate.turn()
        self.went.append(name)


class TestQuiet:
    async def test_a_turn_is_given_at_once_when_no_event_is_in_flight(self) -> None:
        """Processing waits for nothing while no event is being taken in."""
        gate = IntakeGate(max_wait=10, clock=FakeClock())
        with anyio.fail_after(1):
            await gate.turn()
        assert gate.waited == 0

    async def test_a_turn_waits_for_the_event_in_flight_and_goes_when_it_is_queued(
        self,
    ) -> None:
        """A message waits while an event is being taken in, and goes when it departs."""
        gate = IntakeGate(max_wait=10, clock=FakeClock())
        turns = Turns(gate)
        gate.arrived()
        async with anyio.create_task_group() as tg:
            tg.start_soon(turns.wait, "a")
            await settle()
            assert turns.went == []
            gate.departed()
            await settle()
        assert turns.went == ["a"]
        assert (gate.waited, gate.given_in_bursts) == (1, 0)

    async def test_every_waiting_turn_goes_when_the_last_event_departs(self) -> None:
        """Several events in flight: the turns wait for the last; then all go at once."""
        gate = IntakeGate(max_wait=10, clock=FakeClock())
        turns = Turns(gate)
        gate.arrived()
        gate.arrived()
        async with anyio.create_task_group() as tg:
            tg.start_soon(turns.wait, "a")
            tg.start_soon(turns.wait, "b")
            await settle()
            gate.departed()
            await settle()
            assert turns.went == []
            gate.departed()
            await settle()
        assert sorted(turns.went) == ["a", "b"]
        assert gate.in_flight == 0

    async def test_a_gate_without_wait_holds_nothing_back(self) -> None:
        """``max_wait`` 0: a turn goes at once, events in flight or not."""
        gate = IntakeGate(max_wait=0, clock=FakeClock())
        gate.arrived()
        with anyio.fail_after(1):
            await gate.turn()

    def test_a_negative_wait_is_refused(self) -> None:
        with pytest.raises(ValueError, match="max_wait"):
            IntakeGate(max_wait=-1)


class TestBurst:
    async def test_under_a_burst_one_turn_goes_every_max_wait(self) -> None:
        """Events that never pause let one message through every ``max_wait`` seconds, one
        at a time, the first to ask first."""
        clock = FakeClock()
        gate = IntakeGate(max_wait=10, clock=clock)
        turns = Turns(gate)
        gate.arrived()  # one event always in flight from here on

        def next_event() -> None:
            gate.arrived()
            gate.departed()

        async with anyio.create_task_group() as tg:
            tg.start_soon(turns.wait, "a")
            await settle()
            tg.start_soon(turns.wait, "b")
            await settle()
            clock.advance(9.9)
            next_event()
            await settle()
            assert turns.went == []
            clock.advance(0.1)
            next_event()
            await settle()
            assert turns.went == ["a"]
            clock.advance(9.9)
            next_event()
            await settle()
            assert turns.went == ["a"]
            clock.advance(0.1)
            next_event()
            await settle()
            assert turns.went == ["a", "b"]
            gate.departed()
        assert gate.given_in_bursts == 2

    async def test_a_turn_goes_after_max_wait_even_when_no_event_departs(self) -> None:
        """An event that never departs (a stalled write) holds a turn back ``max_wait`` at
        most: a timer looks again."""
        gate = IntakeGate(max_wait=0.05)  # the system clock: the timer is the only way out
        gate.arrived()
        with anyio.fail_after(5):
            await gate.turn()
        assert gate.given_in_bursts == 1

    async def test_a_cancelled_turn_leaves_the_gate_as_it_was(self) -> None:
        """A waiter cancelled (its session paused, forgotten, stopped) is no longer waited
        for: the next turn under a burst is timed from its own wait."""
        clock = FakeClock()
        gate = IntakeGate(max_wait=10, clock=clock)
        gate.arrived()
        with anyio.move_on_after(0.05):
            await gate.turn()
        clock.advance(100)
        turns = Turns(gate)
        async with anyio.create_task_group() as tg:
            tg.start_soon(turns.wait, "late")
            await settle()
            gate.arrived()
            gate.departed()
            await settle()
            assert turns.went == []  # its own max_wait, not the cancelled one's
            clock.advance(10)
            gate.arrived()
            gate.departed()
            await settle()
        assert turns.went == ["late"]
