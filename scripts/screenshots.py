"""Screenshots of the viewer's main views for the README: ``docs/viewer-*.png``.

Starts a daemon of its own (a temporary MEMQ_HOME), gives it a little memory and a failed
message, logs a headless Chromium in through ``memq open --print`` and shoots each view, wide
and at phone width. Run: ``.venv/bin/python scripts/screenshots.py [--out docs]``.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.support import (  # noqa: E402
    add_failed_message,
    find_chromium,
    login_url,
    sample,
    seed,
)
from tests.helpers.daemon import Daemon, running_daemon  # noqa: E402

VIEWS = ("feed", "queue", "stats", "sessions", "session", "search", "context")
PHONE_VIEWS = ("feed", "queue", "session")
SEEDED = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"  # seed's session


def add_processing_message(daemon: Daemon) -> None:
    """A message claimed 95 s ago and still processing, as a slow model call shows in the
    queue (its lease far ahead: the daemon leaves it be while the screenshots are taken)."""
    now_ms = int(time.time() * 1000)
    conn = sqlite3.connect(daemon.home / "memq.db")
    with conn:
        conn.execute(
            "INSERT INTO pending_messages (session_id, kind, payload, status, attempts,"
            " available_at, created_at, started_at, lease_until) VALUES"
            " ('codex:7f3e2a', 'observation', '{}', 'processing', 1, ?, ?, ?, ?)",
            (now_ms - 96_000, now_ms - 96_000, now_ms - 95_000, now_ms + 3_600_000),
        )
    conn.close()


def use_memory(daemon: Daemon) -> None:
    """A session started in the project (its context injected), then the model's search
    through the MCP server: the Stats view's figures."""
    start = sample("SessionStart", session_id=str(uuid.uuid4()))
    mcp = {"X-Memq-Via": "mcp", "X-Memq-Project": start["cwd"]}
    with daemon.client() as client:
        client.post("/api/events", json=start)
        client.get("/api/search", params={"q": "hello"}, headers=mcp)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs")
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: apt-get install chromium (or set MEMQ_CHROMIUM)")
        return 1
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (a dev dependency)

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, running_daemon(Path(tmp) / "home") as daemon:
        seed(daemon)
        with daemon.client() as client:
            for text in ("why does the build step fail on CI?", "<script>alert(1)</script>"):
                event = sample(
                    "UserPromptSubmit",
                    session_id=str(uuid.uuid4()),
                    prompt_id=str(uuid.uuid4()),
                    prompt=text,
                )
                client.post("/api/events", json=event)
        daemon.wait_idle()
        add_failed_message(daemon, error="processor timed out after 120 s")
        add_processing_message(daemon)
        use_memory(daemon)
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, headless=True)
            for width, suffix in ((1100, ""), (390, "-phone")):
                context = browser.new_context(viewport={"width": width, "height": 760})
                page = context.new_page()
                page.goto(login_url(daemon))
                page.wait_for_selector("body[data-ready=true]")
                for view in VIEWS if not suffix else PHONE_VIEWS:
                    target = f"session/{SEEDED}" if view == "session" else view
                    page.evaluate("view => { location.hash = view; }", target)
                    if view == "search":
                        page.fill("#search-q", "hello")
                        page.press("#search-q", "Enter")
                        page.locator("#search-results li").first.wait_for()
                        page.locator("#search-results li button").first.click()
                        page.locator("#timeline li.anchor").wait_for()
                        page.evaluate("window.scrollTo(0, 0)")
                    if view == "session":
                        page.locator("#config-effective").get_by_text("Next message").wait_for()
                    if view == "stats":
                        page.locator("#stats-project-table").wait_for()
                    if view == "context":
                        page.locator("#context-project").fill("/home/dev/project")
                        page.click("#context-form button")
                        page.locator("#context-size").get_by_text("tokens").wait_for()
                    if view == "queue":
                        page.locator("#failed-list li").first.wait_for()
                        page.locator("#processing-list li").first.wait_for()
                    if view == "feed":
                        page.locator("#feed-list li").first.wait_for()
                    path = args.out / f"viewer-{view}{suffix}.png"
                    page.screenshot(path=str(path), full_page=view in ("queue", "search"))
                    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
