"""The viewer's figures on this machine: time to a usable page (login redirect to the page's
``data-ready``, and the first contentful paint) and live-update latency (an event posted to
the daemon until its item is in the page's feed) and the sessions view's first page, over a
few runs, with a small memory.

With ``--observations N`` the same figures are measured a second time on a large memory: a
database of N observations (plus prompts and summaries, over 1,000 sessions) built before the
daemon starts with ``scripts/bench_memory.py``'s own ``build_database`` (the memory tables'
statements on the SQLite file). The issue's target is a first paint under 300 ms; the
small-memory figures of the same run are the baseline.

Run: ``.venv/bin/python scripts/bench_viewer.py [--runs N] [--observations 100000]`` (needs
Chromium: see README).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))

from tests.browser.support import find_chromium, login_url, sample, seed  # noqa: E402
from tests.helpers.daemon import running_daemon  # noqa: E402

FIRST_PAINT_TARGET = 0.300  # seconds, issue 14


def summary(name: str, values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"{name}: median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms (n={len(ms)})"


def measure(home: Path, chromium: str, runs: int) -> dict[str, list[float]]:
    """Start a daemon on ``home`` (its database as it is), then time ``runs`` page loads."""
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 (a dev dependency)

    figures: dict[str, list[float]] = {
        "ready": [],
        "paint": [],
        "live": [],
        "sessions": [],
        "queue": [],
        "stats": [],
    }
    with running_daemon(home) as daemon:
        seed(daemon)
        with sync_playwright() as driver, daemon.client() as client:
            browser = driver.chromium.launch(executable_path=chromium, headless=True)
            for _ in range(runs):
                context = browser.new_context()
                page = context.new_page()
                url = login_url(daemon)
                started = time.perf_counter()
                page.goto(url)
                page.wait_for_selector("body[data-ready=true]")
                figures["ready"].append(time.perf_counter() - started)
                fcp = page.evaluate(
                    "performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? -1"
                )
                if fcp >= 0:
                    figures["paint"].append(fcp / 1000)
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
                figures["live"].append(time.perf_counter() - started)
                started = time.perf_counter()
                page.evaluate("location.hash = 'sessions'")
                page.locator("#session-list li[data-key]").first.wait_for()
                figures["sessions"].append(time.perf_counter() - started)
                # The queue view (status with its per-session counts, failed messages) and
                # the memory-use figures, each until drawn.
                started = time.perf_counter()
                page.evaluate("location.hash = 'queue'")
                page.locator("#queue-sessions table, #queue-sessions p").first.wait_for()
                figures["queue"].append(time.perf_counter() - started)
                started = time.perf_counter()
                page.evaluate("location.hash = 'stats'")
                page.locator("#stat-injections").wait_for()
                figures["stats"].append(time.perf_counter() - started)
                context.close()
            browser.close()
    return figures


def report(label: str, figures: dict[str, list[float]]) -> None:
    print(f"-- {label}")
    print(summary("login to usable page (data-ready)", figures["ready"]))
    if figures["paint"]:
        print(summary("first contentful paint of the page", figures["paint"]))
    print(summary("event posted to item shown in the live feed", figures["live"]))
    print(summary("sessions view to its first page shown", figures["sessions"]))
    print(summary("queue view shown", figures["queue"]))
    print(summary("stats view shown", figures["stats"]))


def large_home(root: Path, observations: int) -> Path:
    """A memq home whose database already holds ``observations`` observations."""
    from bench_memory import build_database  # noqa: PLC0415 (only with --observations)

    home = root / "large"
    home.mkdir()
    started = time.perf_counter()
    build_database(home / "memq.db", observations)
    # The generated records carry message ids a real queue never handed out: start the queue's
    # ids past them, else new events collide with them (message_id is UNIQUE in memory).
    conn = sqlite3.connect(home / "memq.db")
    with conn:
        conn.execute(
            "INSERT OR REPLACE INTO sqlite_sequence (name, seq) SELECT 'pending_messages',"
            " max((SELECT max(message_id) FROM observations),"
            " (SELECT max(message_id) FROM summaries), (SELECT max(message_id) FROM prompts))"
        )
    conn.close()
    print(f"built {observations:,} observations in {time.perf_counter() - started:.1f} s")
    return home


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument(
        "--observations",
        type=int,
        default=0,
        help="also measure on a memory of this many observations (e.g. 100000)",
    )
    args = parser.parse_args()
    chromium = find_chromium()
    if chromium is None:
        print("no Chromium found: apt-get install chromium (or set MEMQ_CHROMIUM)")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        small = measure(Path(tmp) / "home", chromium, args.runs)
        report("small memory (baseline)", small)
        if args.observations <= 0:
            return 0
        large = measure(large_home(Path(tmp), args.observations), chromium, args.runs)
        report(f"{args.observations:,} observations", large)
    verdict(small, large)
    return 0


def verdict(small: dict[str, Any], large: dict[str, Any]) -> None:
    """The large memory's first paint against the target, beside the baseline's."""
    if not large["paint"]:
        print("first contentful paint: not reported by the browser")
        return
    paint = statistics.median(large["paint"])
    base = statistics.median(small["paint"]) if small["paint"] else float("nan")
    met = "met" if paint < FIRST_PAINT_TARGET else "MISSED"
    print(
        f"first paint at scale: median {paint * 1000:.0f} ms (baseline {base * 1000:.0f} ms),"
        f" target < {FIRST_PAINT_TARGET * 1000:.0f} ms: {met}"
    )


if __name__ == "__main__":
    sys.exit(main())
