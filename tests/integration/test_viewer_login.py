"""The viewer's login through the real request guard and login routes, with the logins on a
clock the test moves: codes and sessions expire when their time is up, and a cookie counts
only as the guard allows (a probe route stands in for the API)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from memq.worker.http import session_auth
from memq.worker.page_headers import CONTENT_SECURITY_POLICY
from memq.worker.security import RequestGuard
from memq.worker.viewer_logins import CODE_LIFETIME, SESSION_LIFETIME, ViewerLogins, cookie_name
from tests.helpers.clock import FakeClock

PORT = 41234
URL = f"http://127.0.0.1:{PORT}"
TOKEN = "t" * 43
BEARER = {"Authorization": f"Bearer {TOKEN}"}
COOKIE = cookie_name(PORT)


async def probe(request: Request) -> Response:
    return JSONResponse({"auth": request.state.memq_auth, "method": request.method})


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def client(clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    logins = ViewerLogins(clock=clock)
    app = Starlette(
        routes=[*session_auth.ROUTES, Route("/api/probe", probe, methods=["GET", "POST"])]
    )
    app.state.logins = logins
    app.state.session_cookie = COOKIE
    guard = RequestGuard(app, token=TOKEN, port=PORT, body_limit=1 << 20, logins=logins)
    transport = httpx.ASGITransport(app=guard)
    async with httpx.AsyncClient(transport=transport, base_url=URL) as http:
        yield http


async def login_path(client: httpx.AsyncClient) -> str:
    answer = await client.post("/api/login-codes", headers=BEARER)
    assert answer.status_code == 201, answer.text
    path: str = answer.json()["path"]
    return path


async def log_in(client: httpx.AsyncClient) -> tuple[str, str]:
    """The session cookie's value and its CSRF token."""
    answer = await client.get(await login_path(client))
    assert answer.status_code == 303, answer.text
    session = answer.cookies[COOKIE]
    client.cookies.clear()
    csrf = await client.get("/api/session", headers=cookie(session))
    assert csrf.status_code == 200, csrf.text
    return session, csrf.json()["csrf"]


def cookie(session: str, **more: str) -> dict[str, str]:
    return {"Cookie": f"{COOKIE}={session}", **more}


class TestExpiry:
    async def test_a_code_expires_after_its_lifetime(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        early, late = await login_path(client), await login_path(client)
        clock.advance(CODE_LIFETIME - 1)
        assert (await client.get(early)).status_code == 303
        clock.advance(1)
        refused = await client.get(late)
        assert refused.status_code == 401
        assert "expired" in refused.text
        assert COOKIE not in refused.cookies

    async def test_a_session_expires_after_its_lifetime(
        self, client: httpx.AsyncClient, clock: FakeClock
    ) -> None:
        session, _ = await log_in(client)
        clock.advance(SESSION_LIFETIME - 1)
        assert (await client.get("/api/probe", headers=cookie(session))).status_code == 200
        clock.advance(1)
        expired = await client.get("/api/probe", headers=cookie(session))
        assert expired.status_code == 401
        assert "memq open" in expired.json()["error"]


class TestCookie:
    async def test_the_cookie_authenticates_api_reads(self, client: httpx.AsyncClient) -> None:
        session, _ = await log_in(client)
        answer = await client.get("/api/probe", headers=cookie(session))
        assert answer.json() == {"auth": "cookie", "method": "GET"}

    async def test_a_change_needs_the_sessions_csrf_token(self, client: httpx.AsyncClient) -> None:
        session, csrf = await log_in(client)
        _, other_csrf = await log_in(client)
        missing = await client.post("/api/probe", headers=cookie(session))
        assert missing.status_code == 403
        assert "X-Memq-CSRF" in missing.json()["error"]
        for wrong in ("nope", other_csrf):
            answer = await client.post(
                "/api/probe", headers=cookie(session, **{"X-Memq-CSRF": wrong})
            )
            assert answer.status_code == 403
            assert "wrong X-Memq-CSRF" in answer.json()["error"]
        right = await client.post("/api/probe", headers=cookie(session, **{"X-Memq-CSRF": csrf}))
        assert right.json() == {"auth": "cookie", "method": "POST"}

    async def test_the_bearer_token_needs_no_csrf_token(self, client: httpx.AsyncClient) -> None:
        answer = await client.post("/api/probe", headers=BEARER)
        assert answer.json() == {"auth": "token", "method": "POST"}

    async def test_a_cross_site_load_with_the_cookie_is_refused(
        self, client: httpx.AsyncClient
    ) -> None:
        """An <img> or <script> on another loopback port sends the cookie (same site) but
        no Origin; its Sec-Fetch-Site gives it away."""
        session, _ = await log_in(client)
        for site in ("same-site", "cross-site"):
            answer = await client.get(
                "/api/probe", headers=cookie(session, **{"Sec-Fetch-Site": site})
            )
            assert answer.status_code == 403
        for site in ("same-origin", "none"):
            answer = await client.get(
                "/api/probe", headers=cookie(session, **{"Sec-Fetch-Site": site})
            )
            assert answer.status_code == 200

    async def test_a_cookie_cannot_get_login_codes(self, client: httpx.AsyncClient) -> None:
        session, csrf = await log_in(client)
        answer = await client.post(
            "/api/login-codes", headers=cookie(session, **{"X-Memq-CSRF": csrf})
        )
        assert answer.status_code == 403

    async def test_logging_out_ends_the_session(self, client: httpx.AsyncClient) -> None:
        session, csrf = await log_in(client)
        ended = await client.delete(
            "/api/session", headers=cookie(session, **{"X-Memq-CSRF": csrf})
        )
        assert ended.status_code == 200
        assert (await client.get("/api/probe", headers=cookie(session))).status_code == 401

    async def test_a_made_up_cookie_is_refused(self, client: httpx.AsyncClient) -> None:
        assert (await client.get("/api/probe", headers=cookie("made-up"))).status_code == 401


class TestHeaders:
    async def test_login_answers_carry_the_page_headers(self, client: httpx.AsyncClient) -> None:
        for answer in (
            await client.get(await login_path(client)),
            await client.get("/login?code=x"),
        ):
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"
            assert answer.headers["cache-control"] == "no-store"

    async def test_api_answers_are_not_sniffed(self, client: httpx.AsyncClient) -> None:
        answer = await client.get("/api/probe", headers=BEARER)
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert "content-security-policy" not in answer.headers
