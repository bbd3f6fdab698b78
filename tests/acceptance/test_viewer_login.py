"""The viewer's login on the real daemon: ``memq open --print`` gives a one-time URL, the
daemon exchanges it for a session cookie that reads the API, changes only with the CSRF
header, and only from the daemon's own origin; the code is never written to a log."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import httpx
import pytest

from memq.worker.page_headers import CONTENT_SECURITY_POLICY
from memq.worker.viewer_logins import cookie_name
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import run_module


def open_url(daemon: Daemon) -> str:
    done = daemon.memq("open", "--print")
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    assert url.startswith(f"{daemon.url}/login?code="), url
    return url


def log_in(daemon: Daemon) -> tuple[str, str]:
    """The session cookie's value and its CSRF token."""
    answer = httpx.get(open_url(daemon))
    assert answer.status_code == 303, answer.text
    session = answer.cookies[cookie_name(daemon.port)]
    csrf = httpx.get(f"{daemon.url}/api/session", headers=cookie(daemon, session))
    assert csrf.status_code == 200, csrf.text
    return session, str(csrf.json()["csrf"])


def cookie(daemon: Daemon, session: str, **more: str) -> dict[str, str]:
    return {"Cookie": f"{cookie_name(daemon.port)}={session}", **more}


class TestLogin:
    def test_the_url_logs_in_once_and_leaves_the_address_bar(self, daemon: Daemon) -> None:
        url = open_url(daemon)
        first = httpx.get(url)
        assert first.status_code == 303
        assert first.headers["location"] == "/"
        again = httpx.get(url)
        assert again.status_code == 401
        assert "memq open" in again.text
        assert again.headers["content-type"].startswith("text/plain")

    def test_the_cookie_is_httponly_strict_and_for_the_whole_origin(self, daemon: Daemon) -> None:
        answer = httpx.get(open_url(daemon))
        set_cookie = answer.headers["set-cookie"]
        attributes = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")}
        assert set_cookie.startswith(f"{cookie_name(daemon.port)}=")
        assert {"httponly", "path", "max-age"} <= attributes
        assert "samesite=strict" in set_cookie.lower()
        assert "path=/;" in set_cookie.lower() + ";"
        assert "domain" not in attributes  # the daemon's host only

    def test_login_answers_carry_the_page_headers(self, daemon: Daemon) -> None:
        for answer in (httpx.get(open_url(daemon)), httpx.get(f"{daemon.url}/login?code=x")):
            assert answer.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
            assert answer.headers["x-content-type-options"] == "nosniff"
            assert answer.headers["referrer-policy"] == "no-referrer"

    def test_the_code_is_in_no_log(self, daemon: Daemon) -> None:
        url = open_url(daemon)
        code = urlsplit(url).query.removeprefix("code=")
        httpx.get(url)
        httpx.get(url)  # refused: a refusal does not name it either
        daemon.stop()
        logs = [daemon.stderr_path, *(p for p in daemon.home.rglob("*") if p.is_file())]
        assert any(p.suffix == ".log" or "log" in p.name for p in logs)
        for path in logs:
            assert code.encode() not in path.read_bytes(), path

    def test_it_opens_the_url_in_the_browser(self, daemon: Daemon, tmp_path: Path) -> None:
        """``memq open`` hands the URL to the user's browser (``BROWSER``, as Python's
        webbrowser reads it; here a script that notes what it was given)."""
        opened = tmp_path / "opened"
        browser = tmp_path / "browser"
        browser.write_text(f'#!/bin/sh\nprintf %s "$1" > {opened}\n')
        browser.chmod(0o755)
        done = run_module("memq", "open", env={**daemon.env, "BROWSER": str(browser)})
        assert done.returncode == 0, done.stderr
        url = opened.read_text()
        assert url.startswith(f"{daemon.url}/login?code=")
        assert url not in done.stdout + done.stderr
        assert httpx.get(url).status_code == 303

    def test_without_a_daemon_it_says_to_start_one(self, tmp_path: Path) -> None:
        done = Daemon(tmp_path / "home").memq("open", "--print")
        assert done.returncode == 1
        assert "memq start" in done.stderr
        assert done.stdout == ""


class TestCookieRequests:
    def test_a_read_works(self, daemon: Daemon) -> None:
        session, _ = log_in(daemon)
        answer = httpx.get(f"{daemon.url}/api/status", headers=cookie(daemon, session))
        assert answer.status_code == 200, answer.text
        same_origin = httpx.get(
            f"{daemon.url}/api/status", headers=cookie(daemon, session, Origin=daemon.url)
        )
        assert same_origin.status_code == 200

    def test_a_change_needs_the_csrf_header(self, daemon: Daemon) -> None:
        session, csrf = log_in(daemon)
        resume = f"{daemon.url}/api/resume"
        missing = httpx.post(resume, json={}, headers=cookie(daemon, session))
        assert missing.status_code == 403
        wrong = httpx.post(
            resume, json={}, headers=cookie(daemon, session, **{"X-Memq-CSRF": csrf + "x"})
        )
        assert wrong.status_code == 403
        right = httpx.post(
            resume, json={}, headers=cookie(daemon, session, **{"X-Memq-CSRF": csrf})
        )
        assert right.status_code == 200, right.text

    @pytest.mark.parametrize("method", ["GET", "POST"])
    def test_another_origin_is_refused_even_with_the_cookie(
        self, daemon: Daemon, method: str
    ) -> None:
        session, csrf = log_in(daemon)
        for origin in (f"http://127.0.0.1:{free_port()}", "http://evil.example"):
            answer = httpx.request(
                method,
                f"{daemon.url}/api/resume" if method == "POST" else f"{daemon.url}/api/status",
                headers=cookie(daemon, session, Origin=origin, **{"X-Memq-CSRF": csrf}),
            )
            assert answer.status_code == 403
            assert "cross-origin" in answer.json()["error"]

    def test_a_rebound_host_is_refused_even_with_the_cookie(self, daemon: Daemon) -> None:
        session, _ = log_in(daemon)
        for path in ("/api/status", "/login?code=x"):
            answer = httpx.get(
                f"{daemon.url}{path}", headers=cookie(daemon, session, Host="evil.example:80")
            )
            assert answer.status_code == 403
            assert "loopback" in answer.json()["error"]

    def test_without_cookie_or_token_the_api_is_closed(self, daemon: Daemon) -> None:
        assert httpx.get(f"{daemon.url}/api/status").status_code == 401
        assert httpx.get(f"{daemon.url}/api/session").status_code == 401
