"""Forks against the real daemon: Claude Code's --fork-session linked automatically, across
a restart, and ``POST /api/sessions/{id}/fork`` and ``memq fork``."""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import httpx

from memq.events import SUBSCRIBED_EVENTS as EVENTS
from tests.acceptance.conftest import FIXTURES, sample
from tests.helpers.daemon import Daemon
from tests.helpers.rows import table as rows_of

PARENT = "claude-code:c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
CHILD = "claude-code:75d813a0-9e31-4855-b2a6-54f62d4cd8ba"


def steps() -> list[tuple[str, dict[str, Any]]]:
    """Each captured hook payload with the name of its step, in order."""
    lines = (FIXTURES / "hooks.sequence.jsonl").read_text().splitlines()
    return [(item["step"], item["payload"]) for item in map(json.loads, lines)]


def table(daemon: Daemon, sql: str, *params: Any) -> list[dict[str, Any]]:
    """Rows of a query on the daemon's database, read as an outside tool would."""
    return rows_of(daemon.home / "memq.db", sql, *params)


def log_events(daemon: Daemon, name: str) -> list[dict[str, Any]]:
    """The daemon's JSON log lines of one event."""
    lines = (daemon.home / "logs" / "memq.log").read_text().splitlines()
    return [entry for entry in map(json.loads, lines) if entry.get("event") == name]


def replay(daemon: Daemon) -> None:
    """Every step of the captured runs, in order, as memq's hooks deliver them: only the
    events they subscribe to. Before the fork the worker catches up: in a real session the
    parent's last run ended well before it was forked, and a fork copies what memory holds."""
    with daemon.client() as client:
        for step, payload in steps():
            if step == "fork" and payload["hook_event_name"] == "SessionStart":
                daemon.wait_idle()
            if payload["hook_event_name"] in EVENTS:
                answer = client.post("/api/events", json=payload)
                assert answer.status_code in (200, 202), answer.text
    daemon.wait_idle()


def check_fork(client: httpx.Client, daemon: Daemon, own_prompts: list[str]) -> None:
    """The fork names its parent and holds a copy of the parent's prompts and
    observations, marked inherited, followed by its own prompts."""
    fork = client.get(f"/api/sessions/{CHILD}").json()
    parent = client.get(f"/api/sessions/{PARENT}").json()
    assert fork["parent_key"] == PARENT
    assert fork["forked_at"] is not None
    assert parent["parent_key"] is None
    inherited = [p["text"] for p in parent["prompts"]]
    assert len(inherited) >= 8
    assert [p["text"] for p in fork["prompts"]] == inherited + own_prompts
    assert fork["prompt_count"] == len(inherited) + len(own_prompts)

    def titles(session: str) -> list[str]:
        page = client.get(f"/api/sessions/{session}/observations?limit=1000").json()
        return [o["title"] for o in page["items"]]

    assert titles(CHILD) == titles(PARENT)
    assert len(titles(PARENT)) >= 5
    flags = table(
        daemon, "SELECT inherited FROM prompts WHERE session_key = ? ORDER BY number", CHILD
    )
    assert [r["inherited"] for r in flags] == [1] * len(inherited) + [0] * len(own_prompts)
    observations = table(daemon, "SELECT inherited FROM observations WHERE session_key = ?", CHILD)
    assert {r["inherited"] for r in observations} == {1}
    listed = {s["key"]: s for s in client.get("/api/sessions").json()["items"]}
    assert listed[CHILD]["parent_key"] == PARENT

    # Across sessions each record is found once, as the parent's; within the fork, its copy.
    hits = client.get("/api/search", params={"q": "out.txt", "limit": 100}).json()["items"]
    assert hits
    assert {h["session_key"] for h in hits} == {PARENT}
    own = client.get("/api/search", params={"q": "out.txt", "session": CHILD}).json()["items"]
    assert len(own) == len(hits)
    assert {(h["session_key"], h["inherited"]) for h in own} == {(CHILD, True)}


class TestClaudeCodeFork:
    def test_a_forked_session_inherits_its_parents_memory(self, daemon: Daemon) -> None:
        """Replaying the captured runs links the fork (75d813a0) to its parent (c2c6f4bc):
        the copy is made once, and still there after a restart, after which the fork's new
        events are its own (it is not linked again)."""
        replay(daemon)
        with daemon.client() as client:
            check_fork(client, daemon, ["FAKE:text forked"])
        (forked,) = log_events(daemon, "session.forked")
        assert forked["session_id"] == CHILD
        assert forked["parent"] == PARENT
        assert forked["automatic"] is True
        assert forked["records"] > 0
        assert [s for s, _ in steps()].count("fork") == 6  # the six lines

        daemon.stop()
        daemon.start()
        with daemon.client() as client:
            check_fork(client, daemon, ["FAKE:text forked"])
            again = {
                **sample("UserPromptSubmit"),
                "session_id": CHILD.partition(":")[2],
                "prompt": "after the restart",
                "prompt_id": "after-restart",
            }
            assert client.post("/api/events", json=again).status_code == 202
            daemon.wait_idle()
            check_fork(client, daemon, ["FAKE:text forked", "after the restart"])
        assert len(log_events(daemon, "session.forked")) == 1

    def test_throw_away_ids_of_unsubscribed_events_are_not_forks(self, daemon: Daemon) -> None:
        """Everything captured, unsubscribed events included: InstructionsLoaded carries a
        fresh id after each resume, and none of those sessions becomes a fork (nor a
        session); the real fork, whose InstructionsLoaded comes first, still is one."""
        with daemon.client() as client:
            for _, payload in steps():
                client.post("/api/events", json=payload)
            daemon.wait_idle()
            sessions = client.get("/api/sessions").json()["items"]
        assert [s["key"] for s in sessions if s["parent_key"]] == [CHILD]
        assert {s["key"] for s in sessions} == {PARENT, CHILD}
        assert [e["session_id"] for e in log_events(daemon, "session.forked")] == [CHILD]


class TestForkRoute:
    def test_fork_answers(self, daemon: Daemon) -> None:
        """201 with the fork; 409 for a target that exists; 404 for an unknown session;
        422 for a bad target; 400 for a body that is not JSON; no body: a new random id."""
        parent = sample("UserPromptSubmit")["session_id"]
        with daemon.client() as client:
            client.post("/api/events", json=sample("UserPromptSubmit"))
            client.post("/api/events", json=sample("PostToolUse.Bash"))
            daemon.wait_idle()
            url = f"/api/sessions/{parent}/fork"
            made = client.post(url, json={"to": "explicit-child"})
            assert made.status_code == 201, made.text
            body = made.json()
            assert body["child"] == "claude-code:explicit-child"
            assert body["parent"] == PARENT
            assert (body["prompts"], body["observations"], body["summaries"]) == (1, 1, 0)
            assert body["forked_at"].endswith("Z")
            child = client.get("/api/sessions/explicit-child").json()
            assert child["parent_key"] == PARENT
            assert [p["text"] for p in child["prompts"]] == ["create out.txt"]

            assert client.post(url, json={"to": "claude-code:explicit-child"}).status_code == 409
            for itself in (parent, PARENT):
                assert client.post(url, json={"to": itself}).status_code == 422
            assert client.post("/api/sessions/nobody/fork", json={}).status_code == 404
            for bad in ({"to": 5}, {"to": ""}, {"to": "  "}, {"to": "x" * 300}):
                assert client.post(url, json=bad).status_code == 422, bad
            assert client.post(url, content=b"{not json").status_code == 400

            fresh = client.post(url)
            assert fresh.status_code == 201
            assistant, _, new_id = fresh.json()["child"].partition(":")
            assert assistant == "claude-code"
            assert uuid.UUID(new_id).version == 4

            # The explicit fork's own events follow its copy.
            event = {
                **sample("UserPromptSubmit"),
                "session_id": "explicit-child",
                "prompt": "go on",
                "prompt_id": "go-on",
            }
            assert client.post("/api/events", json=event).status_code == 202
            daemon.wait_idle()
            child = client.get("/api/sessions/explicit-child").json()
            assert [(p["number"], p["text"]) for p in child["prompts"]] == [
                (1, "create out.txt"),
                (2, "go on"),
            ]
        forked = log_events(daemon, "session.forked")
        assert [(e["session_id"], e["automatic"]) for e in forked] == [
            ("claude-code:explicit-child", False),
            (fresh.json()["child"], False),
        ]


class TestForkCommand:
    def test_memq_fork(self, daemon: Daemon, tmp_path: Path) -> None:
        """memq fork SESSION [--to NEW_ID] [--json]: prints the new session; a taken target
        or an unknown session is an error (exit 1) naming it."""
        parent = sample("UserPromptSubmit")["session_id"]
        with daemon.client() as client:
            client.post("/api/events", json=sample("UserPromptSubmit"))
            client.post("/api/events", json=sample("PostToolUse.Bash"))
        daemon.wait_idle()

        made = daemon.memq("fork", parent, "--to", "cli-child")
        assert made.returncode == 0, made.stderr
        assert "claude-code:cli-child" in made.stdout
        assert "1 prompt(s), 1 observation(s) and 0 summary(ies)" in made.stdout

        as_json = daemon.memq("fork", parent, "--json")
        assert as_json.returncode == 0, as_json.stderr
        body = json.loads(as_json.stdout)
        assert body["parent"] == PARENT
        assert body["child"].startswith("claude-code:")

        taken = daemon.memq("fork", parent, "--to", "cli-child")
        assert taken.returncode == 1
        assert "already exists" in taken.stderr
        unknown = daemon.memq("fork", "nobody")
        assert unknown.returncode == 1
        assert "no session" in unknown.stderr
        with daemon.client() as client:
            assert client.get("/api/sessions/cli-child").json()["parent_key"] == PARENT
