"""Screenshots of the viewer's main views for the README: ``docs/viewer-*.png``.

Starts a daemon of its own (a temporary MEMQ_HOME), gives it a little memory and a failed
message, logs a headless Chromium in through ``memq open --print`` and shoots each view, wide
and at phone width. Run: ``.venv/bin/python scripts/screenshots.py [--out docs]``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
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
from tests.helpers.daemon import running_daemon  # noqa: E402

VIEWS = ("feed", "queue", "sessions", "search", "context")


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
        with sync_playwright() as driver:
            browser = driver.chromium.launch(executable_path=chromium, headless=True)
            for width, suffix in ((1100, ""), (390, "-phone")):
                context = browser.new_context(viewport={"width": width, "height": 760})
                page = context.new_page()
                page.goto(login_url(daemon))
                page.wait_for_selector("body[data-ready=true]")
                for view in VIEWS if not suffix else ("feed",):
                    page.evaluate("view => { location.hash = view; }", view)
                    if view == "search":
                        page.fill("#search-q", "hello")
                        page.press("#search-q", "Enter")
                        page.locator("#search-results li").first.wait_for()
                    if view == "context":
                        page.locator("#context-project").fill("/home/dev/project")
                        page.click("#context-form button")
                        page.locator("#context-size").get_by_text("tokens").wait_for()
                    if view == "queue":
                        page.locator("#failed-list li").first.wait_for()
                    if view == "feed":
                        page.locator("#feed-list li").first.wait_for()
                    path = args.out / f"viewer-{view}{suffix}.png"
                    page.screenshot(path=str(path))
                    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)
                context.close()
            browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
