"""A session whose processor lost its API key across a restart: its events wait, paused with
the reason in ``memq status`` and ``memq config``, and no attempt is spent on them; the key
coming back (a restart with it) or a new setting lets them through (issue 10, item 3)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon
from tests.helpers.fake_llm import FakeLLM, openai_text
from tests.helpers.rows import all_rows

SESSION = "credentials-session"
KEY = f"claude-code:{SESSION}"
OTHER_KEY = "claude-code:other-session"
# Every variable that could hand the daemon a key or a server that needs none.
MODEL_API_VARIABLES = (
    "MEMQ_API_KEY",
    "OPENAI_API_KEY",
    "ANTHROPIC_API_KEY",
    "MEMQ_BASE_URL",
    "OPENAI_BASE_URL",
    "ANTHROPIC_BASE_URL",
    "MEMQ_PROCESSOR",
)
OBSERVATION = {
    "kind": "change",
    "title": "Wrote out.txt (model-made)",
    "subtitle": "by the session's own model",
    "narrative": "A model wrote this record.",
    "facts": [],
    "concepts": [],
    "files_read": [],
    "files_modified": [],
}


def tool_event(n: int, session: str = SESSION) -> dict[str, Any]:
    return {**sample("PostToolUse.Bash"), "session_id": session, "tool_use_id": f"t{n}"}


def counts_of(client: httpx.Client, key: str) -> dict[str, int]:
    sessions = client.get("/api/status").json()["sessions"]
    return next((s["counts"] for s in sessions if s["session_id"] == key), {})


def wait_for(check: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    with FakeLLM.running() as server:
        yield server


def with_key(daemon: Daemon, fake: FakeLLM) -> None:
    """The key is in the daemon's environment (and its endpoint is the fake server)."""
    daemon.env.update({"MEMQ_API_KEY": "k-test", "MEMQ_BASE_URL": f"{fake.url}/v1"})


def without_key(daemon: Daemon) -> None:
    """No key anywhere, and the official endpoint, which needs one."""
    for name in MODEL_API_VARIABLES:
        daemon.env.pop(name, None)


def session_on_openai(tmp_path: Path, fake: FakeLLM) -> Daemon:
    """A daemon (stopped again) that knows SESSION, set to ``processor openai`` while the key
    was there."""
    daemon = Daemon(tmp_path / "home")
    with_key(daemon, fake)
    daemon.start()
    with daemon.client() as client:
        assert client.post("/api/events", json=tool_event(0)).status_code == 202
        daemon.wait_idle()
    configured = daemon.memq("config", SESSION, "processor", "openai")
    assert configured.returncode == 0, configured.stderr
    assert daemon.stop() == 0
    return daemon


def wait_while_paused(daemon: Daemon, client: httpx.Client) -> None:
    """Post two events for SESSION and one for another session; once the other one is
    processed (and a moment more), SESSION's two must still be pending, untried."""
    for n in (1, 2):
        assert client.post("/api/events", json=tool_event(n)).status_code == 202
    assert client.post("/api/events", json=tool_event(9, "other-session")).status_code == 202
    wait_for(lambda: counts_of(client, OTHER_KEY).get("processed") == 1)
    time.sleep(1.0)  # the session's own generator would have tried its messages by now
    assert counts_of(client, KEY) == {"pending": 2, "processing": 0, "processed": 1, "failed": 0}
    waiting = [r for r in all_rows(daemon.home / "memq.db") if r["status"] == "pending"]
    assert [(r["session_id"], r["attempts"]) for r in waiting] == [(KEY, 0), (KEY, 0)]


def assert_pause_is_shown(daemon: Daemon) -> None:
    """``memq status`` (text and JSON) and ``memq config`` name the paused processor, the
    session and the missing key."""
    status = json.loads(daemon.memq("status", "--json").stdout)
    (paused,) = status["paused_processors"]
    assert paused["processor"] == "openai"
    assert paused["sessions"] == [KEY]
    assert "needs an API key" in paused["reason"]
    assert "OPENAI_API_KEY" in paused["reason"]
    assert status["paused"] is False  # the other sessions run
    text = daemon.memq("status").stdout
    line = next(line for line in text.splitlines() if "openai" in line and "API key" in line)
    assert KEY in line

    shown = daemon.memq("config", SESSION)
    assert shown.returncode == 0, shown.stderr
    assert "next message: openai\n" not in shown.stdout
    assert "PAUSED" in shown.stdout
    assert "OPENAI_API_KEY" in shown.stdout
    as_json = json.loads(daemon.memq("config", SESSION, "--json").stdout)
    assert as_json["pause"]["cause"] == "processor"
    assert "needs an API key" in as_json["pause"]["reason"]


class TestMissingKeyAfterRestart:
    def test_the_session_waits_and_runs_once_the_key_is_back(
        self, tmp_path: Path, fake: FakeLLM
    ) -> None:
        daemon = session_on_openai(tmp_path, fake)
        try:
            without_key(daemon)
            daemon.start()
            with daemon.client() as client:
                wait_while_paused(daemon, client)
                assert_pause_is_shown(daemon)
                assert fake.requests == []
            assert daemon.stop() == 0
            # Still paused across a restart that still lacks the key: nothing spent.
            daemon.start()
            with daemon.client() as client:
                time.sleep(1.0)
                assert counts_of(client, KEY)["pending"] == 2
            assert daemon.stop() == 0

            fake.script(*[openai_text(json.dumps(OBSERVATION))] * 2)
            with_key(daemon, fake)
            daemon.start()
            with daemon.client() as client:
                daemon.wait_idle()
                assert counts_of(client, KEY) == {
                    "pending": 0,
                    "processing": 0,
                    "processed": 3,
                    "failed": 0,
                }
                mine = client.get(f"/api/sessions/{SESSION}/observations").json()
                titles = [o["title"] for o in mine["items"]]
                assert titles.count(OBSERVATION["title"]) == 2
                status = client.get("/api/status").json()
                assert status["paused_processors"] == []
            assert len(fake.requests) == 2
            rows = all_rows(daemon.home / "memq.db")
            assert {r["attempts"] for r in rows if r["session_id"] == KEY} == {1}
            with daemon.client() as client:
                assert client.get(f"/api/sessions/{SESSION}/config").json()["pause"] is None
        finally:
            daemon.kill()

    def test_a_new_processor_setting_lets_the_waiting_events_through(
        self, tmp_path: Path, fake: FakeLLM
    ) -> None:
        daemon = session_on_openai(tmp_path, fake)
        try:
            without_key(daemon)
            daemon.start()
            with daemon.client() as client:
                wait_while_paused(daemon, client)
                changed = daemon.memq("config", SESSION, "processor", "extract")
                assert changed.returncode == 0, changed.stderr
                wait_for(lambda: counts_of(client, KEY).get("processed") == 3)
                assert client.get("/api/status").json()["paused_processors"] == []
                shown = json.loads(daemon.memq("config", SESSION, "--json").stdout)
                assert shown["pause"] is None
                assert shown["effective"] == {"processor": "extract", "model": None}
            rows = all_rows(daemon.home / "memq.db")
            assert [r["status"] for r in rows if r["session_id"] == KEY] == ["processed"] * 3
            assert fake.requests == []
        finally:
            daemon.kill()
