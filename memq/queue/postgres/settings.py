"""What the PostgreSQL queue adds to ``QueueSettings``: heartbeats and wake-up timings."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class PgSettings:
    """Timings of the daemons' shared life, in seconds.

    Args:
        heartbeat_interval: between beats, and between sweeps for expired daemons.
        heartbeat_expiry: a daemon whose last beat (by the server's clock) is older than
            this is declared dead; None is 5 x ``heartbeat_interval``.
        listen_fallback_poll: while the listening connection is down, how often idle streams
            and the session manager look for rows no notification announced.
        reconnect_min / reconnect_max: the listener's backoff between reconnects.
        host / pid / port: how this daemon registers itself (None: this machine, process).
    """

    heartbeat_interval: float = 2.0
    heartbeat_expiry: float | None = None
    listen_fallback_poll: float = 2.0
    reconnect_min: float = 0.1
    reconnect_max: float = 5.0
    host: str | None = None
    pid: int | None = None
    port: int = 0

    def __post_init__(self) -> None:
        for name in ("heartbeat_interval", "listen_fallback_poll", "reconnect_min"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.reconnect_max < self.reconnect_min:
            raise ValueError("reconnect_max must not be below reconnect_min")
        if self.heartbeat_expiry is not None and self.heartbeat_expiry <= self.heartbeat_interval:
            raise ValueError("heartbeat_expiry must be longer than heartbeat_interval")

    @property
    def expiry(self) -> float:
        """Seconds after its last beat that a daemon is declared dead."""
        if self.heartbeat_expiry is not None:
            return self.heartbeat_expiry
        return 5 * self.heartbeat_interval
