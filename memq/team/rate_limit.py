"""Request rates on the team server: token buckets in memory, per key or per address.

``RateLimiter``: a key may make ``burst`` requests at once, then ``rate`` per second; a
request beyond that is told how long to wait (the 429's Retry-After). ``FailureLimiter``:
a client address may fail authentication ``failures`` times at once, then ``failures`` per
``window`` seconds; past that its requests are told to wait before any key is checked (a
token sprayer neither tries keys nor writes audit rows at will). In memory only: a restart
forgets the buckets, which at worst lets one burst through again. Buckets are kept for at
most ``max_keys`` keys; a full bucket (a key idle long enough to have refilled) is dropped
first, as it holds nothing to remember.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from memq.queue import Clock

MAX_KEYS: Final = 10_000
_EPSILON: Final = 1e-9


@dataclass(slots=True)
class _Bucket:
    tokens: float
    at: float  # the clock's monotonic time of ``tokens``


class RateLimiter:
    """Token buckets per key.

    Args:
        rate: requests per second a key may make, on average.
        burst: requests a key may make at once (the bucket's size).
        clock: where time is read (``monotonic``).
        max_keys: the most buckets kept.
    """

    def __init__(self, rate: float, burst: int, *, clock: Clock, max_keys: int = MAX_KEYS) -> None:
        if rate <= 0 or burst < 1:
            raise ValueError("rate must be positive and burst at least 1")
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._max_keys = max_keys
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key: str) -> float:
        """Spend one request of ``key``: 0.0 when it may go on, else the seconds until it
        may (nothing is spent then)."""
        bucket = self._bucket(key)
        delay = self._delay(bucket)
        if delay == 0.0:
            bucket.tokens = max(bucket.tokens - 1.0, 0.0)
        return delay

    def wait(self, key: str) -> float:
        """The seconds until ``key`` may spend a request (0.0: now), spending nothing."""
        bucket = self._buckets.get(key)
        if bucket is None:
            return 0.0
        self._refill(bucket, self._clock.monotonic())
        return self._delay(bucket)

    def spend(self, key: str) -> None:
        """Spend one request of ``key`` whether or not it had one (a bucket stays >= 0)."""
        bucket = self._bucket(key)
        bucket.tokens = max(bucket.tokens - 1.0, 0.0)

    def _bucket(self, key: str) -> _Bucket:
        """``key``'s bucket, refilled to now (a new one full)."""
        now = self._clock.monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            self._make_room(now)
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        else:
            self._refill(bucket, now)
        return bucket

    def _delay(self, bucket: _Bucket) -> float:
        # A hair under one token is one: float time sums (0.05 + 0.05) fall just short.
        return 0.0 if bucket.tokens >= 1.0 - _EPSILON else (1.0 - bucket.tokens) / self.rate

    def _refill(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(now - bucket.at, 0.0)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.at = now

    def _make_room(self, now: float) -> None:
        if len(self._buckets) < self._max_keys:
            return
        for key, bucket in list(self._buckets.items()):
            self._refill(bucket, now)
            if bucket.tokens >= self.burst:
                del self._buckets[key]
        if len(self._buckets) >= self._max_keys:
            # Every key is busy: the oldest one's bucket goes (it may burst once more).
            del self._buckets[next(iter(self._buckets))]

    def __len__(self) -> int:
        return len(self._buckets)


class FailureLimiter:
    """Failed authentications per client address (see the module docstring).

    Args:
        failures: failures an address may make at once, and per ``window`` after that.
        window: seconds over which ``failures`` come back.
        clock: where time is read (``monotonic``).
        max_keys: the most addresses remembered.
    """

    def __init__(
        self, failures: int, window: float, *, clock: Clock, max_keys: int = MAX_KEYS
    ) -> None:
        if failures < 1 or window <= 0:
            raise ValueError("failures must be at least 1 and window positive")
        self.failures = failures
        self.window = window
        self._buckets = RateLimiter(failures / window, failures, clock=clock, max_keys=max_keys)

    def wait(self, address: str) -> float:
        """The seconds ``address`` must wait before any request of its is looked at (0.0:
        none)."""
        return self._buckets.wait(address)

    def failed(self, address: str) -> None:
        """``address`` failed to authenticate once more."""
        self._buckets.spend(address)

    def __len__(self) -> int:
        return len(self._buckets)
