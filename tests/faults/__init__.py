"""Fault scenarios on real daemons, files and disks, shared by the acceptance tests (which assert
that nothing is lost) and ``scripts/faults`` (which prints them as a table).

Each module holds one or more drivers: a function taking a scratch directory (``Path``) that
runs the scenario end to end and returns a ``FaultReport``. A driver that cannot run here (not
root, no tmpfs) raises ``FaultSkipped`` with the reason. What the drivers share (the real
``memq hook`` and CLI, a hook payload, a home a daemon ran in, the queue read from outside) is
in ``kit``.
"""

from __future__ import annotations

from dataclasses import dataclass


class FaultSkipped(Exception):
    """The scenario cannot run on this machine; the message says why."""


@dataclass(frozen=True, slots=True)
class FaultReport:
    """What one scenario did to memq and what memq kept.

    Args:
        scenario: a short name for the table ("WAL deleted, then SIGKILL").
        sent: events handed to ``memq hook`` (or the API).
        acknowledged: of those, how many memq took (the hook exited 0 having stored it in the
            database or the spool, or the API answered 202/200).
        kept: acknowledged events present exactly once after recovery (queue or memory).
        recovery_seconds: from the end of the fault to memq working normally again.
    """

    scenario: str
    sent: int
    acknowledged: int
    kept: int
    recovery_seconds: float

    @property
    def lost(self) -> int:
        """Acknowledged events that are not there after recovery."""
        return self.acknowledged - self.kept
