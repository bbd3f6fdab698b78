"""Requests the daemon must refuse, and refuse without writing anything."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon

GOOD = sample("PostToolUse.Bash")


def rows(daemon: Daemon) -> int:
    conn = sqlite3.connect(f"file:{daemon.home / 'memq.db'}?mode=ro", uri=True)
    try:
        return int(conn.execute("SELECT count(*) FROM pending_messages").fetchone()[0])
    finally:
        conn.close()


def post(daemon: Daemon, body: bytes, **headers: str) -> httpx.Response:
    with daemon.client(headers=headers) as client:
        return client.post("/api/events", content=body)


def call(daemon: Daemon, method: str, path: str, **headers: str) -> httpx.Response:
    with daemon.client(headers=headers) as client:
        return client.request(method, path)


CASES: dict[str, tuple[Callable[[Daemon], httpx.Response], int, str]] = {
    "no token": (
        lambda d: httpx.post(f"{d.url}/api/events", json=GOOD),
        401,
        "missing bearer token",
    ),
    "token not as Bearer": (
        lambda d: httpx.post(f"{d.url}/api/events", json=GOOD, headers={"Authorization": d.token}),
        401,
        "missing bearer token",
    ),
    "wrong token": (
        lambda d: httpx.post(
            f"{d.url}/api/events", json=GOOD, headers={"Authorization": "Bearer nope"}
        ),
        401,
        "wrong bearer token",
    ),
    "foreign Host": (
        lambda d: post(d, b"{}", Host="evil.example:80"),
        403,
        "loopback address",
    ),
    "cross-origin POST": (
        lambda d: post(d, b"{}", Origin="https://evil.example"),
        403,
        "cross-origin",
    ),
    "cross-origin GET": (
        lambda d: call(d, "GET", "/api/sessions", Origin="http://evil.example"),
        403,
        "cross-origin",
    ),
    "oversized body": (
        lambda d: post(d, b'{"x":"' + b"a" * (1024 * 1024 + 10) + b'"}'),
        413,
        "limit",
    ),
    "malformed JSON": (lambda d: post(d, b'{"session_id": '), 400, "not valid JSON"),
    "invalid UTF-8": (lambda d: post(d, b'{"session_id": "\xff"}'), 400, "UTF-8"),
    "lone surrogate": (
        lambda d: post(d, b'{"session_id":"s","hook_event_name":"X","p":"\\udc00"}'),
        400,
        "surrogate",
    ),
    "absurd nesting": (lambda d: post(d, b"[" * 100000 + b"]" * 100000), 400, "nest"),
    "NaN": (lambda d: post(d, b'{"session_id":"s","hook_event_name":"X","n":NaN}'), 400, "NaN"),
    "not an object": (lambda d: post(d, b"[1,2]"), 422, "JSON object"),
    "missing session_id": (
        lambda d: post(d, b'{"hook_event_name":"PostToolUse"}'),
        422,
        "session_id",
    ),
    "wrong type": (
        lambda d: post(d, b'{"session_id":12,"hook_event_name":"PostToolUse"}'),
        422,
        "must be a string",
    ),
    "NUL in text": (
        lambda d: post(d, b'{"session_id":"s","hook_event_name":"X","t":"a\\u0000"}'),
        422,
        "NUL",
    ),
    "huge integer": (
        lambda d: post(d, b'{"session_id":"s","hook_event_name":"X","n":' + b"9" * 40 + b"}"),
        422,
        "64 bits",
    ),
    "unknown route": (lambda d: call(d, "GET", "/api/nothing"), 404, "Not Found"),
    "wrong method": (lambda d: call(d, "PUT", "/api/events"), 405, "Method Not Allowed"),
}


class TestRefusals:
    @pytest.mark.parametrize("case", list(CASES))
    def test_is_refused_with_a_json_reason_and_writes_nothing(
        self, daemon: Daemon, case: str
    ) -> None:
        """Each bad request gets its 4xx and a JSON error naming the problem; no row appears."""
        send, status, words = CASES[case]
        before = rows(daemon)
        response = send(daemon)
        assert response.status_code == status, response.text
        body: Any = response.json()
        assert words in body["error"]
        assert rows(daemon) == before

    def test_health_needs_no_token_but_refuses_foreign_origins(self, daemon: Daemon) -> None:
        """Health is open to local tools, not to web pages."""
        assert httpx.get(f"{daemon.url}/api/health").status_code == 200
        foreign = httpx.get(f"{daemon.url}/api/health", headers={"Origin": "http://x.test"})
        assert foreign.status_code == 403

    def test_a_same_origin_loopback_request_is_allowed(self, daemon: Daemon) -> None:
        """The daemon's own origin (e.g. a local UI it serves) is not foreign."""
        with daemon.client(headers={"Origin": daemon.url}) as client:
            assert client.get("/api/status").status_code == 200

    def test_the_token_file_is_private(self, daemon: Daemon) -> None:
        """The token is created 0600 inside a 0700 data directory."""
        assert (daemon.home / "token").stat().st_mode & 0o777 == 0o600
        assert daemon.home.stat().st_mode & 0o777 == 0o700
