"""Each API key's token bucket (``memq.team.rate_limit``), on a controlled clock at the
team server's default settings (10 requests a second, bursts of 50)."""

from __future__ import annotations

import pytest

from memq.config import Settings
from memq.queue.testing import ManualClock
from memq.team.rate_limit import RateLimiter

DEFAULTS = Settings()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> RateLimiter:
    return RateLimiter(DEFAULTS.team_rate, DEFAULTS.team_burst, clock=clock)


def test_the_defaults_are_ten_a_second_in_bursts_of_fifty() -> None:
    assert (DEFAULTS.team_rate, DEFAULTS.team_burst) == (10.0, 50)


def test_a_burst_passes_then_the_next_request_waits_for_its_token(
    limiter: RateLimiter, clock: ManualClock
) -> None:
    assert [limiter.take("k1") for _ in range(50)] == [0.0] * 50
    assert limiter.take("k1") == pytest.approx(0.1)
    clock.advance(0.05)
    assert limiter.take("k1") == pytest.approx(0.05)  # a refused request spends nothing
    clock.advance(0.05)
    assert limiter.take("k1") == 0.0
    assert limiter.take("k1") == pytest.approx(0.1)


def test_the_rate_holds_over_a_minute(limiter: RateLimiter, clock: ManualClock) -> None:
    """A client sending as fast as it is let through gets the burst plus rate x time."""
    passed = 0
    for _ in range(60 * 100):  # every 10 ms for a minute
        if limiter.take("k1") == 0.0:
            passed += 1
        clock.advance(0.01)
    assert passed == pytest.approx(50 + 60 * 10, abs=1)


def test_an_idle_key_refills_up_to_its_burst_only(limiter: RateLimiter, clock: ManualClock) -> None:
    for _ in range(50):
        limiter.take("k1")
    clock.advance(3600)
    assert [limiter.take("k1") for _ in range(50)] == [0.0] * 50
    assert limiter.take("k1") > 0


def test_keys_have_buckets_of_their_own(limiter: RateLimiter) -> None:
    for _ in range(50):
        limiter.take("k1")
    assert limiter.take("k1") > 0
    assert limiter.take("k2") == 0.0


def test_buckets_are_bounded_full_ones_dropped_first(clock: ManualClock) -> None:
    limiter = RateLimiter(10.0, 50, clock=clock, max_keys=3)
    for _ in range(50):
        limiter.take("busy")  # empty: must be remembered
    limiter.take("idle-1")
    limiter.take("idle-2")
    clock.advance(1.0)  # the idle ones are full again, "busy" has 10
    limiter.take("new")
    assert len(limiter) == 2  # both full buckets went
    assert [limiter.take("busy") for _ in range(10)] == [0.0] * 10
    assert limiter.take("busy") > 0


def test_bad_settings_are_refused(clock: ManualClock) -> None:
    with pytest.raises(ValueError, match="rate must be positive"):
        RateLimiter(0.0, 5, clock=clock)
    with pytest.raises(ValueError, match="burst at least 1"):
        RateLimiter(1.0, 0, clock=clock)
