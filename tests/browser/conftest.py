"""Browser tests: the viewer in a headless Chromium (Debian's, driven by Playwright's Python
API through ``executable_path``; Playwright's own browser download is never used), against a
real daemon subprocess. Without a Chromium or Playwright, every test here skips with one
reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.browser.support import find_chromium, login_url, seed
from tests.helpers.daemon import Daemon, running_daemon

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

CHROMIUM = find_chromium()
try:
    import playwright.sync_api  # noqa: F401

    NO_CHROMIUM = (
        "no Chromium found (/usr/bin/chromium): apt-get install chromium, or set MEMQ_CHROMIUM"
    )
    SKIP_REASON = None if CHROMIUM else NO_CHROMIUM
except ImportError:
    SKIP_REASON = "playwright is not installed (pip install -e '.[dev]')"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if SKIP_REASON is None:
        return
    here = Path(__file__).parent
    for item in items:
        if here in Path(item.path).parents:
            item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {SKIP_REASON}"))


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One daemon for the module, holding a processed session."""
    with running_daemon(tmp_path_factory.mktemp("viewer") / "home") as running:
        seed(running)
        yield running


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (may be missing: skipped)

    with sync_playwright() as driver:
        launched = driver.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def page(browser: Browser, daemon: Daemon) -> Iterator[Page]:
    """A page logged in through ``memq open --print``."""
    context = browser.new_context(viewport={"width": 1100, "height": 800})
    opened = context.new_page()
    opened.goto(login_url(daemon))
    opened.wait_for_selector("body[data-ready=true]")
    try:
        yield opened
    finally:
        context.close()
