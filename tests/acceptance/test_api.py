"""The daemon over HTTP: hook payloads in, memory and status out."""

from __future__ import annotations

import json
import sqlite3
import time
from collections import Counter

from memq.env import DEFAULT_SKIP_TOOLS
from tests.acceptance.conftest import sample, sequence
from tests.helpers.daemon import Daemon

SAMPLES = [
    "UserPromptSubmit",
    "PostToolUse.Bash",
    "PostToolUseFailure",
    "PostToolUse.Write",
    "PostToolUse.Agent",
    "PreToolUse.Bash",
    "InstructionsLoaded",
    "Stop",
    "SessionEnd",
]


class TestEvents:
    def test_every_sample_is_accepted_after_commit_and_processed(self, daemon: Daemon) -> None:
        """Each payload answers 202 with its id; all end processed; memory reads back."""
        with daemon.client() as client:
            ids = []
            for name in SAMPLES:
                response = client.post("/api/events", json=sample(name))
                assert response.status_code == 202, (name, response.text)
                assert response.json()["status"] == "queued"
                ids.append(response.json()["message_id"])
            assert ids == sorted(ids)
            status = daemon.wait_idle()
            assert status["counts"]["processed"] == len(SAMPLES)
            assert status["counts"]["failed"] == 0

            session = sample("UserPromptSubmit")["session_id"]
            detail = client.get(f"/api/sessions/{session}").json()
            assert detail["prompts"][0]["text"] == "create out.txt"
            assert detail["prompts"][0]["number"] == 1
            assert detail["ended_at"] is None
            # The SessionStart and SessionEnd samples are Claude Code's setup run, which never
            # had a prompt or a tool call: no session (tests/integration/test_unknown_events.py).
            setup_run = sample("SessionEnd")["session_id"]
            assert client.get(f"/api/sessions/{setup_run}").status_code == 404

            observations = client.get(f"/api/sessions/claude-code:{session}/observations").json()
            assert observations["total"] == 4
            by_tool = Counter(item["tool_name"] for item in observations["items"])
            assert by_tool == {"Bash": 2, "Write": 1, "Agent": 1}
            assert {item["message_id"] for item in observations["items"]} <= set(ids)

            summaries = client.get(f"/api/sessions/{session}/summaries").json()
            assert summaries["total"] == 1
            assert summaries["items"][0]["message_id"] == ids[SAMPLES.index("Stop")]

    def test_session_start_answers_with_the_context_field(self, daemon: Daemon) -> None:
        """SessionStart is recorded and answers 200 with additionalContext."""
        with daemon.client() as client:
            response = client.post("/api/events", json=sample("SessionStart"))
        assert response.status_code == 200
        body = response.json()
        assert set(body) == {"status", "message_id", "additionalContext"}
        assert isinstance(body["additionalContext"], str)

    def test_a_repeat_is_a_duplicate_with_the_first_id(self, daemon: Daemon) -> None:
        """The same tool call reported twice is one message and one observation."""
        with daemon.client() as client:
            first = client.post("/api/events", json=sample("PostToolUse.Bash"))
            again = client.post("/api/events", json=sample("PostToolUse.Bash"))
            assert first.status_code == 202
            assert again.status_code == 200
            assert again.json() == {"status": "duplicate", "message_id": first.json()["message_id"]}
            daemon.wait_idle()
            session = sample("PostToolUse.Bash")["session_id"]
            assert client.get(f"/api/sessions/{session}/observations").json()["total"] == 1

    def test_bookkeeping_tools_are_skipped_and_private_text_never_stored(
        self, daemon: Daemon
    ) -> None:
        """TodoWrite-style tools are not recorded; <private> spans are gone from what is."""
        with daemon.client() as client:
            skipped = client.post("/api/events", json=sample("PostToolUse.TaskCreate"))
            assert skipped.status_code == 200
            assert skipped.json() == {"status": "skipped"}
            secret = {
                **sample("PostToolUse.Bash"),
                "tool_input": {"command": "echo <private>hunter2</private>done"},
            }
            assert client.post("/api/events", json=secret).status_code == 202
            daemon.wait_idle()
        raw = (daemon.home / "memq.db").read_bytes() + (daemon.home / "memq.db-wal").read_bytes()
        assert b"hunter2" not in raw
        with daemon.client() as client:
            session = sample("PostToolUse.Bash")["session_id"]
            (item,) = client.get(f"/api/sessions/{session}/observations").json()["items"]
            assert item["command"] == "echo done"

    def test_private_text_sent_with_escaped_brackets_is_never_stored(self, daemon: Daemon) -> None:
        """A client that writes "<" as a JSON escape (``\\u003c``) has its <private> spans
        removed all the same."""
        secret = {
            **sample("PostToolUse.Bash"),
            "tool_input": {"command": "echo <private>hunter2</private>done"},
        }
        body = json.dumps(secret).replace("<", "\\u003c").replace(">", "\\u003e")
        assert b"<" not in body.encode()
        with daemon.client() as client:
            response = client.post(
                "/api/events", content=body, headers={"Content-Type": "application/json"}
            )
            assert response.status_code == 202
            daemon.wait_idle()
        raw = (daemon.home / "memq.db").read_bytes() + (daemon.home / "memq.db-wal").read_bytes()
        assert b"hunter2" not in raw
        with daemon.client() as client:
            session = sample("PostToolUse.Bash")["session_id"]
            (item,) = client.get(f"/api/sessions/{session}/observations").json()["items"]
            assert item["command"] == "echo done"

    def test_unknown_event_names_are_recorded_not_rejected(self, daemon: Daemon) -> None:
        """A hook event memq has never heard of is accepted and processed."""
        payload = {"session_id": "s-new", "hook_event_name": "SomethingFromTheFuture", "x": [1]}
        with daemon.client() as client:
            assert client.post("/api/events", json=payload).status_code == 202
        assert daemon.wait_idle()["counts"]["processed"] == 1

    def test_the_captured_sequence_gives_one_session_per_real_session(self, daemon: Daemon) -> None:
        """Replaying every captured hook in order: prompts numbered, one observation per tool
        result, one summary per Stop, and sessions keyed by their real ids: those with a
        prompt (the fork, which also holds its parent's copies:
        tests/acceptance/test_replay_sequence.py)."""
        events = sequence()
        with daemon.client() as client:
            for payload in events:
                assert client.post("/api/events", json=payload).status_code in (200, 202)
            daemon.wait_idle()
            sessions = client.get("/api/sessions").json()
            keys = {item["key"] for item in sessions["items"]}
            prompted = [p for p in events if p["hook_event_name"] == "UserPromptSubmit"]
            assert keys == {f"claude-code:{p['session_id']}" for p in prompted}
            for key in keys:
                mine = [p for p in events if f"claude-code:{p['session_id']}" == key]
                detail = client.get(f"/api/sessions/{key}").json()
                if detail["parent_key"]:
                    continue
                prompts = [p["prompt"] for p in mine if p["hook_event_name"] == "UserPromptSubmit"]
                assert [p["text"] for p in detail["prompts"]] == prompts
                assert [p["number"] for p in detail["prompts"]] == list(range(1, len(prompts) + 1))
                tools = [
                    p
                    for p in mine
                    if p["hook_event_name"].startswith("PostToolUse")
                    and p.get("tool_name") not in DEFAULT_SKIP_TOOLS
                ]
                observations = client.get(f"/api/sessions/{key}/observations?limit=500").json()
                assert observations["total"] == len(tools)
                stops = [p for p in mine if p["hook_event_name"] == "Stop"]
                assert client.get(f"/api/sessions/{key}/summaries").json()["total"] == len(stops)


class TestSessionsApi:
    def test_pagination_and_bare_or_full_ids(self, daemon: Daemon) -> None:
        """limit/offset page through observations; totals stay whole."""
        base = sample("PostToolUse.Bash")
        with daemon.client() as client:
            for i in range(5):
                client.post("/api/events", json={**base, "tool_use_id": f"toolu_{i}"})
            daemon.wait_idle()
            sid = base["session_id"]
            page = client.get(f"/api/sessions/{sid}/observations?limit=2&offset=2").json()
            assert page["total"] == 5
            assert len(page["items"]) == 2
            bad = client.get(f"/api/sessions/{sid}/observations?limit=0")
            assert bad.status_code == 422
            assert "limit" in bad.json()["error"]
            assert client.get("/api/sessions/nope").status_code == 404

    def test_delete_forgets_queue_rows_and_memory(self, daemon: Daemon) -> None:
        """DELETE removes the session everywhere; others are untouched."""
        gone, kept = sample("PostToolUse.Bash"), {**sample("PostToolUse.Bash"), "session_id": "k"}
        with daemon.client() as client:
            client.post("/api/events", json=gone)
            client.post("/api/events", json=kept)
            daemon.wait_idle()
            response = client.delete(f"/api/sessions/{gone['session_id']}")
            assert response.status_code == 200
            assert response.json()["queue_rows"] == 1
            assert client.get(f"/api/sessions/{gone['session_id']}").status_code == 404
            assert client.get("/api/sessions/k").status_code == 200
            assert client.delete(f"/api/sessions/{gone['session_id']}").status_code == 404
            status = client.get("/api/status").json()
            assert [s["session_id"] for s in status["sessions"]] == ["claude-code:k"]

    def test_failed_messages_are_listed_and_retried(self, daemon: Daemon) -> None:
        """A failed row (written here as an outside tool would find it) is listed with its
        error and, once retried, processed."""
        with daemon.client() as client:
            client.post("/api/events", json=sample("PostToolUse.Bash"))
            daemon.wait_idle()
            conn = sqlite3.connect(daemon.home / "memq.db")
            with conn:
                conn.execute(
                    "INSERT INTO pending_messages (session_id, kind, payload, status, attempts,"
                    " available_at, created_at, finished_at, last_error) VALUES"
                    " ('claude-code:f', 'observation', ?, 'failed', 3, 0, 0, 1, 'boom')",
                    (json.dumps({**sample("PostToolUse.Write"), "session_id": "f"}),),
                )
            conn.close()
            listed = client.get("/api/failed").json()
            assert [(i["session_id"], i["last_error"]) for i in listed["items"]] == [
                ("claude-code:f", "boom")
            ]
            (failed_id,) = [i["message_id"] for i in listed["items"]]
            assert client.post("/api/failed/retry", json={"ids": "x"}).status_code == 422
            retried = client.post("/api/failed/retry", json={"id": failed_id}).json()
            assert retried == {"retried": [failed_id]}
            deadline = time.monotonic() + 10
            while client.get("/api/failed").json()["total"] or (
                client.get("/api/status").json()["counts"]["processed"] < 2
            ):
                assert time.monotonic() < deadline
                time.sleep(0.05)
            assert client.get("/api/sessions/f/observations").json()["total"] == 1
