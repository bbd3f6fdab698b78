"""A session's history for prompting, through the real daemon and CLI: what the route
answers, and that it answers the same after a restart."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon

SESSION_ID = "5d0f7e52-hist-4c1b-9a57-history00001"
KEY = f"claude-code:{SESSION_ID}"


def prompt(text: str, n: int) -> dict[str, Any]:
    return {
        **sample("UserPromptSubmit"),
        "session_id": SESSION_ID,
        "prompt": text,
        "prompt_id": f"prompt-{n}",
    }


def tool(command: str) -> dict[str, Any]:
    return {
        **sample("PostToolUse.Bash"),
        "session_id": SESSION_ID,
        "tool_input": {"command": command},
        "tool_use_id": f"toolu_{command.replace(' ', '_')}",
    }


def stop() -> dict[str, Any]:
    return {**sample("Stop"), "session_id": SESSION_ID}


def two_turns(daemon: Daemon) -> int:
    """A summarized first turn and an open second one; the Stop's message id."""
    with daemon.client() as client:

        def post(payload: dict[str, Any]) -> int:
            response = client.post("/api/events", json=payload)
            assert response.status_code == 202, response.text
            message_id: int = response.json()["message_id"]
            return message_id

        post(prompt("first task", 1))
        post(tool("echo one"))
        stop_id = post(stop())
        post(prompt("second task", 2))
        for command in ("echo two", "echo three", "echo four"):
            post(tool(command))
    daemon.wait_idle()
    return stop_id


def check_history(client: httpx.Client, stop_id: int) -> None:
    whole = client.get(f"/api/sessions/{SESSION_ID}/history")
    assert whole.status_code == 200, whole.text
    body = whole.json()
    assert body["session_id"] == KEY
    assert body["after_summary"] == stop_id
    assert body["omitted"] == 0
    assert [item["type"] for item in body["items"]] == ["prompt", *["observation"] * 3]
    assert body["items"][0]["text"] == "second task"
    assert [item["command"] for item in body["items"][1:]] == [
        "echo two",
        "echo three",
        "echo four",
    ]
    assert all(item["message_id"] > stop_id for item in body["items"])

    # Three newest are tool results: their prompt leads instead of the oldest of them.
    cut = client.get(f"/api/sessions/{KEY}/history", params={"max": 3}).json()
    assert [item.get("text") or item["command"] for item in cut["items"]] == [
        "second task",
        "echo three",
        "echo four",
    ]
    assert cut["omitted"] == 1
    assert cut["after_summary"] == stop_id


class TestHistoryRoute:
    def test_history_after_processing_and_after_a_restart(self, daemon: Daemon) -> None:
        """The route starts at a prompt, leaves out the summarized turn, and gives the same
        answer from the database after the daemon restarts."""
        stop_id = two_turns(daemon)
        with daemon.client() as client:
            check_history(client, stop_id)
        assert daemon.stop() == 0
        daemon.start()
        with daemon.client() as client:
            check_history(client, stop_id)

    def test_unknown_session_and_bad_max(self, daemon: Daemon) -> None:
        """404 for a session memory does not know; 422 naming max for a bad one."""
        two_turns(daemon)
        with daemon.client() as client:
            assert client.get("/api/sessions/nope/history").status_code == 404
            for bad in ("0", "1001", "-1", "ten", "2.5"):
                response = client.get(f"/api/sessions/{SESSION_ID}/history?max={bad}")
                assert response.status_code == 422, bad
                assert "max" in response.json()["error"]
            assert client.get(f"/api/sessions/{SESSION_ID}/history?max=1000").status_code == 200

    def test_needs_the_token(self, daemon: Daemon) -> None:
        """Like every memory read, history is refused without the bearer token."""
        two_turns(daemon)
        response = httpx.get(f"{daemon.url}/api/sessions/{SESSION_ID}/history", timeout=10)
        assert response.status_code == 401


class TestHistoryCli:
    def test_lines_with_prompts_marked_and_json(self, daemon: Daemon) -> None:
        """memq history prints one line per entry, prompts marked; --json is the API's
        answer; an unknown session is an error on stderr."""
        stop_id = two_turns(daemon)
        shown = daemon.memq("history", SESSION_ID, "--max", "3")
        assert shown.returncode == 0, shown.stderr
        lines = shown.stdout.splitlines()
        assert KEY in lines[0]
        assert f"summary {stop_id}" in lines[0]
        assert "1 earlier entry left out" in shown.stdout
        entries = [line for line in lines if line.startswith("  ") and "left out" not in line]
        assert len(entries) == 3
        assert "> prompt 2: second task" in entries[0]
        assert "echo three" in entries[1]
        assert "echo four" in entries[2]
        assert not any(">" in line for line in entries[1:])

        as_json = daemon.memq("history", KEY, "--json")
        assert as_json.returncode == 0, as_json.stderr
        with daemon.client() as client:
            assert json.loads(as_json.stdout) == client.get(f"/api/sessions/{KEY}/history").json()

        missing = daemon.memq("history", "nope")
        assert missing.returncode == 1
        assert "no session" in missing.stderr
