"""Issue 14's live feed against the real daemon: ``GET /api/feed`` streams what memory gains
as Server-Sent Events, resumes after ``Last-Event-ID`` without gaps or duplicates, filters,
and never holds up ``memq stop``."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon

PROMPT = sample("UserPromptSubmit")
SESSION_A = "feed-session-a"
SESSION_B = "feed-session-b"


def post_prompt(daemon: Daemon, text: str, *, session: str = SESSION_A, cwd: str = "") -> None:
    """Post a prompt and wait until it is processed (so the feed's order is the posts')."""
    payload = {**PROMPT, "session_id": session, "prompt": text, "prompt_id": str(uuid.uuid4())}
    if cwd:
        payload["cwd"] = cwd
    with daemon.client() as client:
        assert client.post("/api/events", json=payload).status_code in (200, 202)
    daemon.wait_idle()


class Stream:
    """An open feed stream, read one event at a time (a read blocks until one comes)."""

    def __init__(self, response: httpx.Response) -> None:
        self.response = response
        self._lines = response.iter_lines()

    def next_event(self) -> dict[str, Any]:
        fields: dict[str, str] = {}
        for line in self._lines:
            if not line:
                if "data" in fields:
                    data: dict[str, Any] = json.loads(fields["data"])
                    assert fields["event"] == "record"
                    assert int(fields["id"]) == data["seq"]
                    return data
                fields = {}
                continue
            if line.startswith(":"):
                continue  # a comment: the greeting or a heartbeat
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError("the stream ended")

    def rest(self) -> list[str]:
        """The lines left until the stream ends."""
        return list(self._lines)

    def until(self, title: str) -> list[dict[str, Any]]:
        """The events up to and including the one titled ``title``."""
        seen = [self.next_event()]
        while seen[-1]["title"] != title:
            seen.append(self.next_event())
        return seen


@contextmanager
def feed(
    daemon: Daemon, params: dict[str, str] | None = None, headers: dict[str, str] | None = None
) -> Iterator[Stream]:
    # A read waits at most 30 s: a missing event fails the test instead of hanging it.
    with (
        daemon.client() as client,
        client.stream(
            "GET", "/api/feed", params=params, headers=headers, timeout=httpx.Timeout(10, read=30)
        ) as response,
    ):
        assert response.status_code == 200, response.read()
        assert response.headers["content-type"].startswith("text/event-stream")
        yield Stream(response)


class TestLiveFeed:
    def test_live_items_and_a_reconnect_resumes_without_gaps_or_duplicates(
        self, daemon: Daemon
    ) -> None:
        post_prompt(daemon, "one")
        with feed(daemon) as stream:
            backlog = stream.until("one")  # the newest items come first
            assert [e["title"] for e in backlog] == ["one"]
            assert backlog[0]["ref"].startswith("#P")
            assert backlog[0]["session_key"] == f"claude-code:{SESSION_A}"
            post_prompt(daemon, "two")
            live = stream.next_event()  # pushed when its ack committed
            assert live["title"] == "two"
            assert live["seq"] > backlog[0]["seq"]
            last_id = live["seq"]
        # Disconnected: these are stored while no stream is open.
        post_prompt(daemon, "three")
        post_prompt(daemon, "four")
        with feed(daemon, headers={"Last-Event-ID": str(last_id)}) as stream:
            post_prompt(daemon, "five")
            resumed = stream.until("five")
        assert [e["title"] for e in resumed] == ["three", "four", "five"]
        seqs = [e["seq"] for e in resumed]
        assert seqs == sorted(set(seqs))
        assert seqs[0] > last_id
        # ?after= does the same; the header wins over it (a browser keeps the URL).
        with feed(daemon, params={"after": str(seqs[0])}) as stream:
            assert [e["title"] for e in stream.until("five")] == ["four", "five"]
        with feed(daemon, {"after": "0"}, {"Last-Event-ID": str(seqs[1])}) as stream:
            assert [e["title"] for e in stream.until("five")] == ["five"]

    def test_filters_by_session_and_project(self, daemon: Daemon, tmp_path: Any) -> None:
        other = tmp_path / "other-project"
        other.mkdir()
        post_prompt(daemon, "a1")
        post_prompt(daemon, "b1", session=SESSION_B, cwd=str(other))
        post_prompt(daemon, "a2")
        post_prompt(daemon, "b2", session=SESSION_B, cwd=str(other))
        with feed(daemon, {"session": f"claude-code:{SESSION_B}", "after": "0"}) as stream:
            assert [e["title"] for e in stream.until("b2")] == ["b1", "b2"]
        with feed(daemon, {"session": f"claude-code:{SESSION_A}", "after": "0"}) as stream:
            found = stream.until("a2")
        assert [e["title"] for e in found] == ["a1", "a2"]
        project = found[0]["project"]
        with feed(daemon, {"project": project, "after": "0"}) as stream:
            assert [e["title"] for e in stream.until("a2")] == ["a1", "a2"]
        with feed(daemon, {"project": project, "limit": "1"}) as stream:
            assert [e["title"] for e in stream.until("a2")] == ["a2"]

    def test_bad_positions_and_no_token_are_refused(self, daemon: Daemon) -> None:
        with daemon.client() as client:
            bad = client.get("/api/feed", headers={"Last-Event-ID": "abc"})
            assert bad.status_code == 422
            assert "Last-Event-ID" in bad.json()["error"]
            assert client.get("/api/feed", params={"after": "-1"}).status_code == 422
            assert client.get("/api/feed", params={"limit": "501"}).status_code == 422
        assert httpx.get(f"{daemon.url}/api/feed", timeout=10).status_code == 401

    def test_memq_stop_returns_promptly_with_a_stream_open(self, daemon: Daemon) -> None:
        post_prompt(daemon, "before the stop")
        with feed(daemon) as stream:
            stream.until("before the stop")
            started = time.monotonic()
            stopped = daemon.memq("stop", timeout=30)
            assert stopped.returncode == 0, stopped.stderr
            # The stream ended cleanly with the daemon: no event, no error, no hang.
            assert [line for line in stream.rest() if line.startswith("data")] == []
        assert time.monotonic() - started < 30
        assert daemon.process is not None
        assert daemon.process.wait(timeout=10) == 0
