"""The viewer steering memq in a real browser: the queue's per-session counts, what is
processing and for how long, the database's size; a session's settings, fork, delete and
export, each asked for in the page's own dialog; search filters and a result's timeline; the
memory-use figures; the assistant of each session."""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import sample
from tests.helpers.daemon import Daemon

if TYPE_CHECKING:
    from playwright.sync_api import Page, Route

SESSION = "c2c6f4bc-4c27-401e-9856-1cd43eb344f3"  # the seeded session: "create out.txt"
KEY = f"claude-code:{SESSION}"
PROJECT = "/home/dev/project"


def visit(page: Page, view: str) -> None:
    page.evaluate("view => { location.hash = view; }", view)


def open_seeded_session(page: Page) -> None:
    visit(page, "feed")
    visit(page, "sessions")
    page.locator("#session-list a").filter(has_text="create out.txt").click()
    page.locator("#session-records li").first.wait_for()
    page.locator("#config-effective").get_by_text("Next message").wait_for()


@pytest.fixture
def processing_row(daemon: Daemon) -> Iterator[int]:
    """A message claimed 90 s ago and still processing (its lease far ahead, so the daemon
    leaves it be), as a slow model call looks; removed afterwards."""
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(daemon.home / "memq.db")
    with conn:
        cursor = conn.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, status, attempts,"
            " available_at, created_at, started_at, lease_until) VALUES"
            " ('codex:slow-one', 'observation', '{}', 'processing', 1, ?, ?, ?, ?)",
            (now_ms - 95_000, now_ms - 95_000, now_ms - 90_000, now_ms + 3_600_000),
        )
    message_id = int(cursor.lastrowid or 0)
    try:
        yield message_id
    finally:
        with conn:
            conn.execute("DELETE FROM pending_messages WHERE id = ?", (message_id,))
        conn.close()


class TestQueue:
    def test_counts_per_session_what_is_processing_and_the_database_size(
        self, page: Page, daemon: Daemon, processing_row: int
    ) -> None:
        visit(page, "feed")
        visit(page, "queue")
        item = page.locator(f'#processing-list li[data-message="{processing_row}"]')
        item.wait_for()
        assert re.search(r"running 1m3\ds", item.inner_text()), item.inner_text()
        assert "codex:slow-one" in item.inner_text()
        assert page.locator("#count-processing").inner_text() == "1"
        # Per session: the slow one's row says 1 processing; the seeded one's its processed.
        slow = page.locator('#session-counts tr[data-key="codex:slow-one"] td')
        assert [slow.nth(i).inner_text() for i in range(6)] == [
            "codex:slow-one",
            "codex",
            "0",
            "1",
            "0",
            "0",
        ]
        seeded = page.locator(f'#session-counts tr[data-key="{KEY}"] td')
        assert seeded.nth(1).inner_text() == "claude-code"
        assert int(seeded.nth(4).inner_text()) >= 3
        storage = page.locator("#queue-storage").inner_text()
        assert re.fullmatch(r"Database \d+(\.\d)? (B|KB|MB) · WAL \d+(\.\d)? (B|KB|MB)", storage)
        with daemon.client() as client:
            status = client.get("/api/status").json()
        (listed,) = status["processing_messages"]
        assert listed["message_id"] == processing_row
        assert 89 <= listed["running_seconds"] < 200

    def test_a_paused_session_is_listed_with_why(self, page: Page, daemon: Daemon) -> None:
        with daemon.client() as client:
            put = client.put(f"/api/sessions/{SESSION}/config/paused", json={"value": True})
            assert put.status_code == 200, put.text
        try:
            visit(page, "feed")
            visit(page, "queue")
            paused = page.locator(f'#paused-list li[data-key="{KEY}"]')
            paused.wait_for()
            assert "paused by its setting" in paused.inner_text()
        finally:
            with daemon.client() as client:
                client.delete(f"/api/sessions/{SESSION}/config/paused")


class TestSessionPage:
    def test_the_assistant_shows_in_the_list_the_page_and_the_feed(self, page: Page) -> None:
        visit(page, "feed")
        page.locator("#feed-list li .assistant").first.wait_for()
        assert page.locator("#feed-list li .assistant").first.inner_text() == "claude-code"
        visit(page, "sessions")
        row = page.locator(f'#session-list li[data-key="{KEY}"]')
        row.wait_for()
        assert row.locator(".assistant").inner_text() == "claude-code"
        open_seeded_session(page)
        assert page.locator("#session-assistant").inner_text() == "claude-code"

    def test_pause_is_set_and_cleared_from_the_page(self, page: Page, daemon: Daemon) -> None:
        open_seeded_session(page)
        assert not page.locator("#config-paused").is_checked()
        page.check("#config-paused")
        page.click("#config-form button[type=submit]")
        page.locator("#config-effective").get_by_text("paused:").wait_for()
        with daemon.client() as client:
            config = client.get(f"/api/sessions/{SESSION}/config").json()
            assert config["config"]["paused"] is True
            assert KEY in client.get("/api/status").json()["paused_sessions"]
        page.reload()
        page.wait_for_selector("body[data-ready=true]")
        page.locator("#config-effective").get_by_text("paused:").wait_for()
        assert page.locator("#config-paused").is_checked()
        page.uncheck("#config-paused")
        page.click("#config-form button[type=submit]")
        page.locator("#config-saved").get_by_text("Saved.").wait_for()
        with daemon.client() as client:
            config = client.get(f"/api/sessions/{SESSION}/config").json()
            assert config["config"]["paused"] is False
            assert "paused" not in config["set"]

    def test_an_unknown_processor_is_refused_with_the_daemons_reason(self, page: Page) -> None:
        open_seeded_session(page)
        page.fill("#config-processor", "no-such-processor")
        page.click("#config-form button[type=submit]")
        error = page.locator("#error")
        error.wait_for(state="visible")
        assert "unknown processor" in error.inner_text()
        assert page.locator("#config-processor").input_value() == ""  # reloaded as stored

    def test_a_session_opened_again_shows_nothing_stale_while_it_loads(self, page: Page) -> None:
        """The page stays on a session between tests; opening it again must not look loaded
        before its answers are in, or a setting typed then is overwritten by them (this
        failed once in CI, with the daemon slow to answer: here its answer is held 0.5 s)."""
        open_seeded_session(page)

        def slow(route: Route) -> None:
            time.sleep(0.5)
            route.continue_()

        page.route("**/config", slow)
        try:
            open_seeded_session(page)
            page.fill("#config-processor", "no-such-processor")
            page.click("#config-form button[type=submit]")
            error = page.locator("#error")
            error.wait_for(state="visible", timeout=10_000)
            assert "unknown processor" in error.inner_text()
        finally:
            page.unroute("**/config")

    def test_fork_then_delete_each_after_confirming(self, page: Page, daemon: Daemon) -> None:
        open_seeded_session(page)
        page.click("#fork-button")
        dialog = page.locator("#confirm")
        dialog.wait_for(state="visible")
        assert "Fork" in page.locator("#confirm-text").inner_text()
        # From the keyboard: Cancel has the focus, Tab reaches the confirming button.
        page.keyboard.press("Tab")
        page.keyboard.press("Enter")
        page.wait_for_function(
            f"() => location.hash.startsWith('#session/') && !location.hash.includes('{SESSION}')"
        )
        child = page.evaluate("decodeURIComponent(location.hash.slice('#session/'.length))")
        page.locator("#session-meta").get_by_text(f"fork of {KEY}").wait_for()
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{child}").json()["parent_key"] == KEY

        page.click("#delete-button")
        dialog.wait_for(state="visible")
        page.keyboard.press("Escape")  # cancelled: nothing happens
        dialog.wait_for(state="hidden")
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{child}").status_code == 200
        page.click("#delete-button")
        dialog.wait_for(state="visible")
        assert child in page.locator("#confirm-text").inner_text()
        page.click("#confirm-ok")
        page.wait_for_function("() => location.hash === '#sessions'")
        page.locator(f'#session-list li[data-key="{KEY}"]').wait_for()
        assert page.locator(f'#session-list li[data-key="{child}"]').count() == 0
        with daemon.client() as client:
            assert client.get(f"/api/sessions/{child}").status_code == 404
            assert client.get(f"/api/sessions/{SESSION}").status_code == 200

    def test_export_downloads_the_sessions_json_lines(self, page: Page) -> None:
        open_seeded_session(page)
        page.click("#export-button")
        page.locator("#confirm").wait_for(state="visible")
        with page.expect_download() as info:
            page.click("#confirm-ok")
        download = info.value
        assert download.suggested_filename == f"claude-code_{SESSION}.jsonl"
        text = Path(download.path()).read_text(encoding="utf-8")
        lines = [json.loads(line) for line in text.splitlines()]
        assert len(lines) > 1
        text = json.dumps(lines)
        assert "create out.txt" in text
        assert "echo hello > out.txt" in text

    def test_revert_to_before_a_prompt_forgets_from_it_on(self, page: Page, daemon: Daemon) -> None:
        """A session of two prompts: reverting to before the second keeps the first."""
        session = str(uuid.uuid4())
        with daemon.client() as client:
            for text in ("first question", "second question"):
                event = sample(
                    "UserPromptSubmit", session_id=session, prompt_id=str(uuid.uuid4()), prompt=text
                )
                assert client.post("/api/events", json=event).is_success
        daemon.wait_idle()
        visit(page, f"session/claude-code:{session}")
        prompts = page.locator("#session-records li").filter(has_text="question")
        prompts.nth(1).wait_for()
        assert prompts.first.get_by_role("button").is_disabled()  # nothing before the first
        prompts.nth(1).get_by_role("button", name="Revert to before this prompt").click()
        page.locator("#confirm").wait_for(state="visible")
        page.click("#confirm-ok")
        page.locator("#action-done").get_by_text("Reverted").wait_for()
        assert page.locator("#session-records li").filter(has_text="second question").count() == 0
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{session}").json()
        assert [p["text"] for p in detail["prompts"]] == ["first question"]


class TestSearch:
    def test_a_kind_filter_and_a_results_timeline(self, page: Page) -> None:
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.click("#search-form summary")
        page.check('#search-form input[name="kind"][value="web"]')
        page.click("#search-form button[type=submit]")
        page.locator("#search-total").get_by_text("0 results", exact=True).wait_for()
        page.uncheck('#search-form input[name="kind"][value="web"]')
        page.check('#search-form input[name="kind"][value="command"]')
        page.click("#search-form button[type=submit]")
        page.locator("#search-total").get_by_text("1 result", exact=True).wait_for()
        result = page.locator("#search-results li").first
        assert result.locator(".kind").text_content() == "observation · command"
        ref = result.get_attribute("data-ref")
        result.locator("button").click()
        timeline = page.locator("#record #timeline")
        timeline.locator("li").first.wait_for()
        anchor = timeline.locator("li.anchor")
        assert anchor.count() == 1
        assert anchor.get_attribute("data-ref") == ref
        assert anchor.get_attribute("aria-current") == "true"
        assert timeline.locator("li").count() > 1
        assert "create out.txt" in timeline.inner_text()  # the prompt before it


class TestStats:
    def test_the_figures_of_memory_use_show(self, page: Page, daemon: Daemon) -> None:
        start = sample("SessionStart", session_id=str(uuid.uuid4()))
        mcp = {"X-Memq-Via": "mcp", "X-Memq-Project": PROJECT}
        with daemon.client() as client:
            assert client.post("/api/events", json=start).status_code == 200
            assert client.get("/api/search", params={"q": "hello"}, headers=mcp).is_success
            expected = client.get("/api/stats").json()
        assert expected["overall"]["injections"] >= 1
        visit(page, "stats")
        page.locator("#stat-injections").wait_for()
        shown = int(page.locator("#stat-injections").inner_text().replace(",", ""))
        assert shown == expected["overall"]["injections"]
        assert page.locator("#stat-fetches").inner_text() == str(expected["overall"]["fetches"])
        assert page.locator("#stat-hit_rate").inner_text().endswith("%")
        rows = page.locator("#stats-project-table tbody tr")
        assert PROJECT in rows.first.inner_text()
        assert page.locator("#stats-since").inner_text().startswith("Since")


class TestProjects:
    def test_the_project_pickers_list_every_project(self, page: Page, daemon: Daemon) -> None:
        with daemon.client() as client:
            projects = client.get("/api/projects").json()
        options = page.evaluate(
            "() => [...document.querySelectorAll('#projects option')].map(o => o.value)"
        )
        assert options == [item["project"] for item in projects["items"]]
        assert PROJECT in options
        for field in ("#feed-project", "#search-project", "#context-project"):
            assert page.locator(field).get_attribute("list") == "projects"
