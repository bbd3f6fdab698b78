"""The viewer's figures on this machine: time to a usable page (login redirect to the page's
``data-ready``, and the first contentful paint) and live-update latency (an event posted to
the daemon until its item is in the page's feed), over a few runs, with a small memory.

Run: ``.venv/bin/python scripts/bench_viewer.py [--runs N]`` (needs Chromium: see README).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.browser.support import find_chromium, login_url, sample, seed  # noqa: E402
from tests.helpers.daemon import running_daemon  # noqa: E402


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{name}: median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms (n={len(ms)})"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: apt-get install chromium (or set MEMQ_CHROMIUM)")
        return 1
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (a dev dependency)

    ready: list[float] = []
    paint: list[float] = []
    live: list[float] = []
    with tempfile.TemporaryDirectory() as tmp, running_daemon(Path(tmp) / "home") as daemon:
        seed(daemon)
        with sync_playwright() as driver, daemon.client() as client:
            browser = driver.chromium.launch(executable_path=chromium, headless=True)
            for _ in range(args.runs):
                context = browser.new_context()
                page = context.new_page()
                url = login_url(daemon)
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                ready.append(time.perf_counter() - started)
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                )
                if fcp >= 0:
                    paint.append(fcp / 1000)
                page.locator("#feed-list li").first.wait_for()
                text = f"live {uuid.uuid4()}"
                event = sample(
                    "UserPromptSubmit",
                    session_id=str(uuid.uuid4()),
                    prompt_id=str(uuid.uuid4()),
                    prompt=text,
                )
                started = time.perf_counter()
                client.post("/api/events", json=event)
                page.locator("#feed-list").get_by_text(text).wait_for()
                live.append(time.perf_counter() - started)
                context.close()
            browser.close()
    print(summary("login to usable page (data-ready)", ready))
    if paint:
        print(summary("first contentful paint of the page", paint))
    print(summary("event posted to item shown in the live feed", live))
    return 0


if __name__ == "__main__":
    sys.exit(main())
