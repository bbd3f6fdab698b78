"""The viewer's login codes and sessions in the daemon's memory, on a clock the test moves."""

from __future__ import annotations

import pytest

from memq.worker import viewer_logins
from memq.worker.viewer_logins import (
    CODE_LIFETIME,
    SESSION_LIFETIME,
    ViewerLogins,
    cookie_name,
)
from tests.helpers.clock import FakeClock


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def logins(clock: FakeClock) -> ViewerLogins:
    return ViewerLogins(clock=clock)


class TestCodes:
    def test_a_code_logs_in_once(self, logins: ViewerLogins) -> None:
        code = logins.new_code()
        session = logins.redeem(code)
        assert session is not None
        assert logins.session(session) is not None
        assert logins.redeem(code) is None

    def test_a_code_is_good_until_its_lifetime_ends(
        self, logins: ViewerLogins, clock: FakeClock
    ) -> None:
        early, late = logins.new_code(), logins.new_code()
        clock.advance(CODE_LIFETIME - 0.5)
        assert logins.redeem(early) is not None
        clock.advance(0.5)
        assert logins.redeem(late) is None

    def test_unknown_codes_are_refused(self, logins: ViewerLogins) -> None:
        logins.new_code()
        assert logins.redeem("") is None
        assert logins.redeem("not-a-code") is None

    def test_codes_are_random(self, logins: ViewerLogins) -> None:
        codes = {logins.new_code() for _ in range(20)}
        assert len(codes) == 20
        assert all(len(code) >= 32 for code in codes)

    def test_the_oldest_codes_go_beyond_the_cap(self, logins: ViewerLogins) -> None:
        first = logins.new_code()
        for _ in range(viewer_logins.MAX_CODES):
            logins.new_code()
        assert logins.redeem(first) is None


class TestSessions:
    def test_a_session_expires(self, logins: ViewerLogins, clock: FakeClock) -> None:
        session = logins.redeem(logins.new_code())
        assert session is not None
        clock.advance(SESSION_LIFETIME - 1)
        assert logins.session(session) is not None
        clock.advance(1)
        assert logins.session(session) is None

    def test_the_csrf_token_belongs_to_its_session(self, logins: ViewerLogins) -> None:
        one = logins.redeem(logins.new_code())
        other = logins.redeem(logins.new_code())
        assert one is not None
        assert other is not None
        one_csrf = logins.session(one)
        assert one_csrf is not None
        assert logins.csrf_matches(one, one_csrf.csrf)
        assert not logins.csrf_matches(other, one_csrf.csrf)
        assert not logins.csrf_matches(one, "")
        assert not logins.csrf_matches("no-such-session", one_csrf.csrf)

    def test_a_session_can_be_ended(self, logins: ViewerLogins) -> None:
        session = logins.redeem(logins.new_code())
        assert session is not None
        assert logins.end(session)
        assert logins.session(session) is None
        assert not logins.end(session)


def test_each_port_has_its_own_cookie() -> None:
    """Browsers keep cookies per host, not per port: two daemons must not share one."""
    assert cookie_name(37778) != cookie_name(40000)
