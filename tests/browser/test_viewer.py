"""The viewer in a real browser: log in, see memory, watch the feed, retry, rename, search,
escape untrusted text, and refuse another origin."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.support import add_failed_message, login_url, sample
from tests.helpers.daemon import Daemon, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

SESSION = "c2c6f4bc-4c27-401e-9856-1cd43eb344f3"


def new_prompt(text: str) -> dict[str, Any]:
    """A prompt in a session of its own (a repeated prompt id would be taken for a resend)."""
    return sample(
        "UserPromptSubmit", session_id=str(uuid.uuid4()), prompt_id=str(uuid.uuid4()), prompt=text
    )


def visit(page: Page, view: str) -> None:
    page.evaluate("view => { location.hash = view; }", view)


class TestLogin:
    def test_login_code_leaves_the_address_bar_and_memory_shows(
        self, page: Page, daemon: Daemon
    ) -> None:
        assert page.url == f"{daemon.url}/"
        cookies = page.context.cookies()
        assert [(c["name"], c["httpOnly"], c["sameSite"]) for c in cookies] == [
            (f"memq_session_{daemon.port}", True, "Strict")
        ]
        feed = page.locator("#feed-list")
        feed.get_by_text("Ran `echo hello > out.txt`").wait_for()
        visit(page, "sessions")
        page.locator("#session-list").get_by_text("create out.txt").wait_for()

    def test_a_used_code_does_not_log_in_again(self, browser: Browser, daemon: Daemon) -> None:
        url = login_url(daemon)
        context = browser.new_context()
        try:
            first = context.new_page()
            assert first.goto(url) is not None
            other = browser.new_context()
            try:
                answer = other.new_page().goto(url)
                assert answer is not None
                assert answer.status == 401
            finally:
                other.close()
        finally:
            context.close()

    def test_without_login_the_page_says_run_memq_open(
        self, browser: Browser, daemon: Daemon
    ) -> None:
        context = browser.new_context()
        try:
            fresh = context.new_page()
            fresh.goto(daemon.url)
            banner = fresh.locator("#login-needed")
            banner.wait_for(state="visible")
            assert "memq open" in banner.inner_text()
        finally:
            context.close()


class TestLiveFeed:
    def test_a_new_event_appears_within_a_second_or_two(self, page: Page, daemon: Daemon) -> None:
        visit(page, "feed")
        started = time.monotonic()
        with daemon.client() as client:
            event = new_prompt("rename the build step")
            assert client.post("/api/events", json=event).is_success
        page.locator("#feed-list li").first.get_by_text("rename the build step").wait_for(
            timeout=10_000
        )
        assert time.monotonic() - started < 10

    def test_a_prompt_holding_a_script_shows_as_text(self, page: Page, daemon: Daemon) -> None:
        visit(page, "feed")
        hostile = "<script>window.pwned = 1</script><img src=x onerror=window.pwned=2>"
        with daemon.client() as client:
            event = new_prompt(hostile)
            assert client.post("/api/events", json=event).is_success
        page.locator("#feed-list").get_by_text(hostile).wait_for(timeout=10_000)
        assert page.evaluate("window.pwned") is None
        assert page.locator("#feed-list script, #feed-list img").count() == 0


class TestQueue:
    def test_a_failed_message_is_retried_from_the_page(self, page: Page, daemon: Daemon) -> None:
        add_failed_message(daemon, error="model said no")
        visit(page, "feed")
        visit(page, "queue")
        failed = page.locator("#failed-list li")
        failed.get_by_text("model said no").wait_for()
        assert page.locator("#count-failed").inner_text() == "1"
        failed.get_by_role("button", name="Retry").click()
        page.locator("#failed-empty").wait_for(state="visible")
        deadline = time.monotonic() + 15
        with daemon.client() as client:
            while client.get("/api/failed").json()["total"]:
                assert time.monotonic() < deadline
                time.sleep(0.1)

    def test_a_change_without_the_csrf_header_is_refused(self, page: Page) -> None:
        status = page.evaluate(
            """async () => (await fetch('/api/failed/retry', {
                method: 'POST', headers: {'Content-Type': 'application/json'},
                body: JSON.stringify({id: 1})})).status"""
        )
        assert status == 403


class TestSessions:
    def test_the_title_is_edited(self, page: Page, daemon: Daemon) -> None:
        visit(page, "sessions")
        page.locator("#session-list a").filter(has_text="create out.txt").click()
        page.locator("#session-records li").first.wait_for()
        assert page.locator("#session-records li .kind").first.text_content() == "prompt"
        page.fill("#title-input", "Hello file")
        page.click("#title-form button")
        page.locator("#title-saved").get_by_text("Saved.").wait_for()
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{SESSION}").json()["title"] == "Hello file"
        assert page.locator("#session-h").inner_text() == "Hello file"

    def test_more_loads_the_next_page_of_sessions(self, page: Page, daemon: Daemon) -> None:
        with daemon.client() as client:
            for index in range(55):
                assert client.post("/api/events", json=new_prompt(f"paged {index}")).is_success
        daemon.wait_idle()
        with daemon.client() as client:
            total = client.get("/api/sessions?limit=1").json()["total"]
        assert total > 50
        visit(page, "feed")
        visit(page, "sessions")
        rows = page.locator("#session-list li[data-key]")
        more = page.locator("#sessions-more")
        more.wait_for(state="visible")
        assert rows.count() == 50
        more.focus()  # a plain button: reachable and pressed from the keyboard
        page.keyboard.press("Enter")
        page.wait_for_function(
            "n => document.querySelectorAll('#session-list li[data-key]').length === n", arg=total
        )
        assert more.is_hidden()


class TestSearch:
    def test_search_finds_and_opens_a_record(self, page: Page) -> None:
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.press("#search-q", "Enter")
        result = page.locator("#search-results li").first
        result.locator("mark").first.wait_for()
        assert result.locator("mark").first.inner_text() == "hello"
        result.locator("button").click()
        record = page.locator("#record")
        record.wait_for(state="visible")
        assert "echo hello > out.txt" in record.inner_text()


class TestContext:
    def test_the_preview_shows_the_context_and_its_size(self, page: Page) -> None:
        from playwright.sync_api import expect  # noqa: PLC0415 (may be missing: skipped)

        visit(page, "context")
        expect(page.locator("#context-project")).not_to_have_value("")
        page.click("#context-form button")
        page.locator("#context-size").get_by_text("tokens").wait_for()
        assert "echo hello" in page.locator("#context-text").inner_text()


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[str]:
    """A page on another loopback origin (same site, other port), as any local app may run."""
    (tmp_path / "index.html").write_text("<!doctype html><title>elsewhere</title>")
    handler = partial(_QuietHandler, directory=str(tmp_path))
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class TestOtherOrigin:
    def test_another_loopback_origin_cannot_read_or_change_anything(
        self, page: Page, daemon: Daemon, other_origin: str
    ) -> None:
        """In the logged-in page's own browser context (the SameSite cookie goes along to a
        same-site port): the page reads nothing, and its simple POST (no preflight) changed
        nothing, as the guard refused its Origin."""
        add_failed_message(daemon, error="left alone")
        with daemon.client() as client:
            (failed,) = client.get("/api/failed").json()["items"]
        elsewhere = page.context.new_page()
        try:
            elsewhere.goto(other_origin)
            outcomes = elsewhere.evaluate(
                """async ([base, id]) => {
                    const tries = [
                        [base + '/api/status', {credentials: 'include'}],
                        [base + '/api/session', {credentials: 'include'}],
                        [base + '/api/feed', {credentials: 'include'}],
                        [base + '/api/failed/retry', {method: 'POST', credentials: 'include',
                            body: JSON.stringify({id}), headers: {'Content-Type': 'text/plain'}}],
                    ];
                    const out = [];
                    for (const [url, init] of tries) {
                        try { const r = await fetch(url, init); out.push('read ' + r.status); }
                        catch (e) { out.push('blocked'); }
                    }
                    return out;
                }""",
                [daemon.url, failed["message_id"]],
            )
            assert outcomes == ["blocked"] * 4
        finally:
            elsewhere.close()
        with daemon.client() as client:
            assert client.get("/api/failed").json()["items"] == [failed]
