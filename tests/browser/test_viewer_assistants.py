"""The viewer with sessions of two assistants: each list shows whose a session is, and every
filter (feed, sessions, search, context) narrows to one assistant."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.helpers.daemon import Daemon

if TYPE_CHECKING:
    from playwright.sync_api import Page

CODEX = Path(__file__).parents[1] / "fixtures" / "codex"
CODEX_SESSION = "01a23f3b-0973-7de1-8be8-a7cf3bff3d1d"  # the fixtures' session: "create hello.txt"
CLAUDE_SESSION = "c2c6f4bc-4c27-401e-9856-1cd43eb344f3"  # the seeded one: "create out.txt"


def codex(name: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((CODEX / f"{name}.json").read_text())
    return {**data, **changes}


@pytest.fixture(scope="module", autouse=True)
def codex_session(daemon: Daemon) -> None:
    """A Codex session beside the seeded Claude Code one, posted as Codex gives its events."""
    with daemon.client() as client:
        for name in ("SessionStart", "UserPromptSubmit", "PostToolUse.Bash", "Stop"):
            response = client.post("/api/events?assistant=codex", json=codex(name))
            assert response.is_success, response.text
    daemon.wait_idle()


def visit(page: Page, view: str) -> None:
    page.evaluate("view => { location.hash = view; }", view)


def keys(page: Page, selector: str, attribute: str) -> set[str]:
    found = page.locator(selector).evaluate_all(
        f"items => items.map(item => item.getAttribute('{attribute}'))"
    )
    return set(found)


class TestFilters:
    def test_the_sessions_list_names_and_filters_the_assistant(self, page: Page) -> None:
        visit(page, "feed")
        visit(page, "sessions")
        page.locator(f'#session-list li[data-key="codex:{CODEX_SESSION}"]').wait_for()
        assert keys(page, "#session-list li[data-key]", "data-key") == {
            f"codex:{CODEX_SESSION}",
            f"claude-code:{CLAUDE_SESSION}",
        }
        row = page.locator(f'#session-list li[data-key="codex:{CODEX_SESSION}"] .assistant')
        assert row.inner_text() == "codex"
        page.select_option("#sessions-assistant", "codex")
        page.locator("#sessions-filter button[type=submit]").click()
        page.locator(f'#session-list li[data-key="claude-code:{CLAUDE_SESSION}"]').wait_for(
            state="detached"
        )
        assert keys(page, "#session-list li[data-key]", "data-key") == {f"codex:{CODEX_SESSION}"}

    def test_search_narrows_to_one_assistant(self, page: Page) -> None:
        visit(page, "search")
        page.fill("#search-q", "hello")
        page.select_option("#search-assistant", "")
        page.locator("#search-form button[type=submit]").click()
        page.locator("#search-results li").first.wait_for()
        both = page.locator("#search-results .assistant").all_inner_texts()
        assert {"codex", "claude-code"} <= set(both)
        page.select_option("#search-assistant", "claude-code")
        page.locator("#search-form button[type=submit]").click()
        page.wait_for_function(
            "() => [...document.querySelectorAll('#search-results .assistant')]"
            ".every(e => e.textContent === 'claude-code')"
        )
        assert set(page.locator("#search-results .assistant").all_inner_texts()) == {"claude-code"}

    def test_the_live_feed_shows_only_the_chosen_assistant(
        self, page: Page, daemon: Daemon
    ) -> None:
        visit(page, "feed")
        page.select_option("#feed-assistant", "codex")
        page.locator("#feed-filter button[type=submit]").click()
        page.wait_for_function("() => document.getElementById('feed-state').textContent === 'live'")
        page.locator("#feed-list li").first.wait_for()
        assert set(page.locator("#feed-list .assistant").all_inner_texts()) == {"codex"}
        with daemon.client() as client:
            prompt = codex("UserPromptSubmit", turn_id="turn-live", prompt="zanzibar live")
            assert client.post("/api/events?assistant=codex", json=prompt).is_success
        page.locator("#feed-list li").filter(has_text="zanzibar live").wait_for()
        assert set(page.locator("#feed-list .assistant").all_inner_texts()) == {"codex"}

    def test_the_context_preview_can_leave_an_assistant_out(self, page: Page) -> None:
        visit(page, "context")
        page.fill("#context-project", "/home/dev/project")
        page.select_option("#context-assistant", "")
        page.locator("#context-form button[type=submit]").click()
        page.wait_for_function("() => document.getElementById('context-text').textContent")
        mixed = page.locator("#context-text").inner_text()
        assert "[codex]" in mixed
        assert "[claude-code]" in mixed
        page.select_option("#context-assistant", "codex")
        page.locator("#context-form button[type=submit]").click()
        page.wait_for_function(
            "() => !document.getElementById('context-text').textContent.includes('claude-code')"
        )
        assert "hello.txt" in page.locator("#context-text").inner_text()
