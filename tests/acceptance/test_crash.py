"""The daemon killed with SIGKILL again and again while events stream in.

2,000 events over 20 sessions are sent by concurrent clients while the daemon is killed at
least five times at random moments and started again. At the end every event that got a 202
(or a duplicate answer) is processed exactly once: one observation per accepted tool event,
no message id twice, nothing stuck; events that got no answer were stored once or not at all.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon

pytestmark = pytest.mark.slow

EVENTS = 2000
SESSIONS = 20
KILLS = 5
CLIENTS = 8


def event(i: int) -> dict[str, Any]:
    """The i-th tool event: its own tool_use_id, spread over the sessions."""
    payload = sample("PostToolUse.Bash")
    return {
        **payload,
        "session_id": f"crash-{i % SESSIONS}",
        "tool_use_id": f"toolu_crash_{i}",
        "tool_input": {"command": f"echo {i}", "description": f"event {i}"},
    }


class Sender:
    """Sends events from several threads; records the id of every event that was answered
    (202 or 200 duplicate). An event whose request failed is retried until answered, as the
    hook's fallback would eventually deliver it."""

    def __init__(self, daemon: Daemon) -> None:
        self.daemon = daemon
        self.accepted: dict[int, int] = {}
        self.unanswered: set[int] = set()
        self.lock = threading.Lock()

    def run(self, indexes: list[int]) -> None:
        client = httpx.Client(base_url=self.daemon.url, timeout=2)
        try:
            for i in indexes:
                self._deliver(client, i)
        finally:
            client.close()

    def _deliver(self, client: httpx.Client, i: int) -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                token = self.daemon.token
                response = client.post(
                    "/api/events", json=event(i), headers={"Authorization": f"Bearer {token}"}
                )
            except (httpx.HTTPError, OSError):
                with self.lock:
                    self.unanswered.add(i)  # maybe stored, maybe not: the retry decides
                time.sleep(0.05)
                continue
            if response.status_code in (200, 202):
                with self.lock:
                    self.accepted[i] = response.json()["message_id"]
                return
            time.sleep(0.05)  # 503 while stopping: try again
        raise AssertionError(f"event {i} was never accepted")


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        return list(conn.execute(sql))
    finally:
        conn.close()


class TestCrashLoop:
    def test_every_accepted_event_is_processed_exactly_once(self, tmp_path: Path) -> None:
        """SIGKILL at random moments loses nothing that was acknowledged and duplicates
        nothing."""
        rng = random.Random(20261121)
        daemon = Daemon(tmp_path / "home", env={"MEMQ_LINGER": "0.5"})
        daemon.start()
        sender = Sender(daemon)
        order = list(range(EVENTS))
        threads = [
            threading.Thread(target=sender.run, args=(order[k::CLIENTS],), daemon=True)
            for k in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        kills = 0
        try:
            while kills < KILLS or any(t.is_alive() for t in threads):
                time.sleep(rng.uniform(0.2, 1.0))
                if kills < KILLS:
                    daemon.kill()
                    kills += 1
                    time.sleep(rng.uniform(0.0, 0.3))
                    daemon.start()
            for thread in threads:
                thread.join(timeout=120)
            status = daemon.wait_idle(timeout=120)
        finally:
            daemon.kill()

        db = daemon.home / "memq.db"
        # The kills cut requests off: they hit the intake, not only the processing after it.
        assert sender.unanswered
        assert len(sender.accepted) == EVENTS
        assert status["counts"]["processing"] == 0
        assert status["counts"]["failed"] == 0
        # One queue row per event (the retries of unanswered ones were duplicates).
        keys = rows(db, "SELECT dedupe_key, id FROM pending_messages")
        assert len(keys) == EVENTS
        by_key = dict(keys)
        for i, message_id in sender.accepted.items():
            assert by_key[f"tool:toolu_crash_{i}"] == message_id
        # Exactly one observation per accepted event, from the right message.
        observed = rows(db, "SELECT message_id FROM observations")
        counts = Counter(message_id for (message_id,) in observed)
        assert len(observed) == EVENTS
        assert max(counts.values()) == 1
        assert set(counts) == set(sender.accepted.values())
        assert status["counts"]["processed"] == EVENTS
