"""Queue settings, validated once when the queue opens."""

from __future__ import annotations

from dataclasses import dataclass

from memq.storage.connection import Synchronous


@dataclass(frozen=True, slots=True)
class QueueSettings:
    """How the queue retries, leases, wakes up, commits and prunes.

    Args:
        max_attempts: claims a message gets before it ends ``failed``.
        retry_delay: seconds before the second attempt; each later one waits
            ``retry_backoff`` times longer, up to ``retry_delay_max``.
        lease: seconds a consumer has to settle a claim before it is taken back.
        max_defer: the longest ``Claim.defer`` waits (longer requests are cut to it). A due
            time further ahead than any wait the queue sets is treated as due at once: the
            wall clock was set back since it was stored.
        synchronous: what an acknowledged enqueue survives (see ``Synchronous``).
        busy_timeout: seconds to wait for another process's write lock.
        change_check_interval: seconds between checks for rows written by another process.
        processed_retention / failed_retention: seconds settled rows are kept.
        max_batch / max_batch_bytes: the most one group commit takes at once.
        wal_checkpoint_bytes: WAL size past which maintenance truncates it.
        maintenance_interval: seconds between passes of ``Queue.run_maintenance``.
        file_check_interval: seconds between checks that the files at the database's paths
            are the ones the queue has open (``Queue.check_files``; a few stat calls).
    """

    max_attempts: int = 3
    retry_delay: float = 1.0
    retry_backoff: float = 4.0
    retry_delay_max: float = 30.0
    lease: float = 300.0
    max_defer: float = 600.0
    synchronous: Synchronous = Synchronous.FULL
    busy_timeout: float = 5.0
    change_check_interval: float = 1.0
    processed_retention: float = 24 * 3600.0
    failed_retention: float = 14 * 24 * 3600.0
    max_batch: int = 256
    max_batch_bytes: int = 8 * 1024 * 1024
    wal_checkpoint_bytes: int = 16 * 1024 * 1024
    maintenance_interval: float = 30.0
    file_check_interval: float = 2.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "synchronous", Synchronous(self.synchronous))
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.retry_backoff < 1:
            raise ValueError(f"retry_backoff must be at least 1, not {self.retry_backoff}")
        if self.max_batch < 1 or self.max_batch_bytes < 1:
            raise ValueError("max_batch and max_batch_bytes must be positive")
        for name in (
            "retry_delay",
            "retry_delay_max",
            "max_defer",
            "busy_timeout",
            "processed_retention",
            "failed_retention",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        for name in (
            "lease",
            "change_check_interval",
            "maintenance_interval",
            "file_check_interval",
        ):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")

    def retry_delay_after(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = self.retry_delay * self.retry_backoff ** max(attempt - 1, 0)
        return float(min(delay, self.retry_delay_max))

    @property
    def stored_lease(self) -> float:
        """The lease written to the database: the in-process deadline plus a grace period,
        so the watchdog only takes back claims whose consumer failed to settle them itself."""
        return self.lease + max(1.0, 0.1 * self.lease)

    @property
    def max_wait(self) -> float:
        """The furthest ahead, in seconds, that the queue ever sets a message's due time."""
        return max(self.retry_delay_max, self.retry_delay, self.max_defer)
