"""What stands before the team server's key check (``memq.team.server.AuthGuard``): failed
authentications per client address on a controlled clock at the default settings (20 at
once, then 20 a minute), where that address is read (X-Forwarded-For only behind the
declared proxy), and the settings' checks."""

from __future__ import annotations

import math

import pytest
from starlette.requests import Request

from memq.config import SettingError, Settings
from memq.queue.testing import ManualClock
from memq.team.rate_limit import FailureLimiter
from memq.team.server import client_address

DEFAULTS = Settings()
A = "198.51.100.7"


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def limiter(clock: ManualClock) -> FailureLimiter:
    return FailureLimiter(DEFAULTS.team_auth_failures, DEFAULTS.team_auth_window, clock=clock)


def test_the_defaults_are_twenty_failures_a_minute_and_ninety_days_of_audit() -> None:
    assert (DEFAULTS.team_auth_failures, DEFAULTS.team_auth_window) == (20, 60.0)
    assert DEFAULTS.team_audit_days == 90


class TestFailureLimiter:
    def test_past_the_failures_an_address_waits_a_window_share(
        self, limiter: FailureLimiter, clock: ManualClock
    ) -> None:
        for _ in range(20):
            assert limiter.wait(A) == 0.0
            limiter.failed(A)
        assert limiter.wait(A) == pytest.approx(3.0)  # 60 s / 20 failures
        assert limiter.wait("203.0.113.9") == 0.0  # another address is not held
        clock.advance(2.9)
        assert limiter.wait(A) == pytest.approx(0.1)  # waiting spends nothing
        clock.advance(0.1)  # 3 s: 3000 ms, not 3 ms
        assert limiter.wait(A) == 0.0
        limiter.failed(A)
        assert limiter.wait(A) == pytest.approx(3.0)

    def test_a_window_later_the_address_may_fail_as_often_again(
        self, limiter: FailureLimiter, clock: ManualClock
    ) -> None:
        for _ in range(20):
            limiter.failed(A)
        clock.advance(60)  # a minute: every failure is back
        for _ in range(20):
            assert limiter.wait(A) == 0.0
            limiter.failed(A)
        assert limiter.wait(A) > 0

    def test_an_address_that_never_failed_costs_no_memory(self, limiter: FailureLimiter) -> None:
        for n in range(100):
            assert limiter.wait(f"10.0.0.{n}") == 0.0
        assert len(limiter) == 0

    def test_bad_arguments_are_refused(self, clock: ManualClock) -> None:
        with pytest.raises(ValueError, match="failures"):
            FailureLimiter(0, 60, clock=clock)
        with pytest.raises(ValueError, match="window"):
            FailureLimiter(5, 0, clock=clock)


def request(peer: str, *forwarded: str) -> Request:
    headers = [(b"x-forwarded-for", value.encode()) for value in forwarded]
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/api/team/v1/events",
        "headers": headers,
        "client": (peer, 50000),
    }
    return Request(scope)


class TestClientAddress:
    def test_without_the_proxy_the_header_is_ignored(self) -> None:
        """Any client could write X-Forwarded-For: trusted, it would pick a fresh bucket
        per try."""
        assert client_address(request(A, "203.0.113.9"), proxy=False) == A

    def test_behind_the_proxy_its_last_address_counts(self) -> None:
        """The proxy appends the address it saw; what the client wrote comes before it."""
        assert client_address(request("10.0.0.2", "1.2.3.4, 203.0.113.9"), proxy=True) == (
            "203.0.113.9"
        )
        two_headers = request("10.0.0.2", "1.2.3.4", "203.0.113.9")
        assert client_address(two_headers, proxy=True) == "203.0.113.9"
        assert client_address(request("10.0.0.2"), proxy=True) == "10.0.0.2"  # no header

    def test_an_ipv6_host_counts_by_its_64(self) -> None:
        one = client_address(request("2001:db8:1:2::1"), proxy=False)
        assert one == client_address(request("2001:db8:1:2:ffff::9"), proxy=False)
        assert one == "2001:db8:1:2::/64"
        assert client_address(request("2001:db8:1:3::1"), proxy=False) != one
        assert client_address(request("::ffff:198.51.100.7"), proxy=False) == A

    def test_what_is_no_address_is_kept_short(self) -> None:
        assert client_address(request("10.0.0.2", "x" * 5000), proxy=True) == "x" * 100
        assert client_address(request(""), proxy=False) == "unknown"


class TestSettings:
    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("MEMQ_TEAM_AUTH_FAILURES", "0"),
            ("MEMQ_TEAM_AUTH_FAILURES", "many"),
            ("MEMQ_TEAM_AUTH_WINDOW", "0"),
            ("MEMQ_TEAM_AUTH_WINDOW", "60s"),
            ("MEMQ_TEAM_AUTH_WINDOW", "0.06"),  # milliseconds meant as seconds: refused
            ("MEMQ_TEAM_AUTH_WINDOW", "86401"),
            ("MEMQ_TEAM_AUDIT_DAYS", "0"),
            ("MEMQ_TEAM_AUDIT_DAYS", "90d"),
        ],
    )
    def test_a_bad_value_names_its_variable(self, name: str, value: str) -> None:
        with pytest.raises(SettingError, match=name):
            Settings.from_env({name: value})

    def test_values_are_read(self) -> None:
        env = {
            "MEMQ_TEAM_AUTH_FAILURES": "5",
            "MEMQ_TEAM_AUTH_WINDOW": "300",
            "MEMQ_TEAM_AUDIT_DAYS": "30",
        }
        settings = Settings.from_env(env)
        assert (settings.team_auth_failures, settings.team_auth_window) == (5, 300.0)
        assert settings.team_audit_days == 30
        assert math.isclose(settings.team_auth_window / settings.team_auth_failures, 60.0)
