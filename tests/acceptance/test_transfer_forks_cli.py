"""``memq fork`` and ``memq transfer`` between a fork and its parent, against the real daemon
(issue 10, item 2, and the fork parts of item 6): the two reported command sequences, a
deleted parent, and a fork's title.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon


def post_session(client: httpx.Client, session_id: str, commands: list[str]) -> None:
    """A prompt, then one Bash tool call per command, for ``session_id``."""
    prompt = {**sample("UserPromptSubmit"), "session_id": session_id}
    prompt |= {"prompt": f"Look after {session_id}", "prompt_id": f"{session_id}-p"}
    assert client.post("/api/events", json=prompt).status_code == 202
    for n, command in enumerate(commands):
        event = sample("PostToolUse.Bash")
        event |= {
            "session_id": session_id,
            "tool_use_id": f"{session_id}-t{n}",
            "tool_input": {"command": command, "description": "look"},
        }
        assert client.post("/api/events", json=event).status_code == 202


def memq_json(daemon: Daemon, *args: str) -> Any:
    result = daemon.memq(*args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def sessions(daemon: Daemon) -> dict[str, Any]:
    """``memq sessions --json``, by key."""
    return {item["key"]: item for item in memq_json(daemon, "sessions")["items"]}


def ok(daemon: Daemon, *args: str) -> str:
    result = daemon.memq(*args)
    assert result.returncode == 0, result.stderr
    return result.stdout


class TestReported:
    def test_a_fork_transferred_into_its_parent(self, daemon: Daemon) -> None:
        """memq fork proj-x --to px-fork; memq transfer px-fork proj-x; memq sessions: the
        parent is nobody's fork, least of all its own, and holds each record once."""
        with daemon.client() as client:
            post_session(client, "proj-x", ["ls src", "cat README.md"])
            daemon.wait_idle()
            ok(daemon, "fork", "proj-x", "--to", "px-fork")
            post_session(client, "px-fork", ["git status"])
            daemon.wait_idle()
            moved = ok(daemon, "transfer", "px-fork", "proj-x")
            assert "to claude-code:proj-x" in moved

            listing = ok(daemon, "sessions")
            assert "fork of" not in listing
            assert "px-fork" not in listing
            listed = sessions(daemon)
            assert list(listed) == ["claude-code:proj-x"]
            assert listed["claude-code:proj-x"]["parent_key"] is None
            assert listed["claude-code:proj-x"]["observation_count"] == 3
            detail = client.get("/api/sessions/proj-x").json()
            assert [p["text"] for p in detail["prompts"]] == [
                "Look after proj-x",
                "Look after px-fork",
            ]
            for word in ("README.md", "status"):
                assert memq_json(daemon, "search", word)["total"] == 1

    def test_a_parent_transferred_into_its_fork(self, daemon: Daemon) -> None:
        """memq fork tools-sess --to tools-fork; memq transfer tools-sess tools-fork: seven
        observations stay seven, and a search of the fork lists the backoff record once."""
        commands = [f"ls src/module_{n}" for n in range(6)] + ["grep -n backoff src/retry.py"]
        with daemon.client() as client:
            post_session(client, "tools-sess", commands)
            daemon.wait_idle()
            ok(daemon, "fork", "tools-sess", "--to", "tools-fork")
            ok(daemon, "transfer", "tools-sess", "tools-fork")

            listed = sessions(daemon)
            assert list(listed) == ["claude-code:tools-fork"]
            assert listed["claude-code:tools-fork"]["observation_count"] == 7
            assert listed["claude-code:tools-fork"]["parent_key"] is None
            page = client.get("/api/sessions/tools-fork/observations?limit=100").json()
            assert page["total"] == 7
            assert len({o["title"] for o in page["items"]}) == 7
            found = memq_json(daemon, "search", "backoff", "--session", "tools-fork")
            assert found["total"] == 1
            assert found["items"][0]["inherited"] is False
            assert memq_json(daemon, "search", "backoff")["total"] == 1


class TestForkLife:
    def test_a_sibling_and_a_deleted_parent(self, daemon: Daemon) -> None:
        """Two forks, one transferred into the other: the parent's records once in it, still
        copies; then the parent deleted: the fork names it no more and shows them itself. The
        fork's title is marked as a fork's all along."""
        with daemon.client() as client:
            post_session(client, "base", ["grep -n quokka src/zoo.py"])
            daemon.wait_idle()
            ok(daemon, "fork", "base", "--to", "left")
            ok(daemon, "fork", "base", "--to", "right")
            assert ok(daemon, "title", "left").strip() == "[fork] Look after base"
            ok(daemon, "transfer", "left", "right")

            listed = sessions(daemon)
            assert sorted(listed) == ["claude-code:base", "claude-code:right"]
            assert listed["claude-code:right"]["parent_key"] == "claude-code:base"
            assert listed["claude-code:right"]["observation_count"] == 1
            assert listed["claude-code:right"]["title"] == "[fork] Look after base"
            hits = memq_json(daemon, "search", "quokka")["items"]
            assert [h["session_key"] for h in hits] == ["claude-code:base"]

            assert client.delete("/api/sessions/base").status_code == 200
            listed = sessions(daemon)
            assert list(listed) == ["claude-code:right"]
            assert listed["claude-code:right"]["parent_key"] is None
            assert listed["claude-code:right"]["forked_at"] is None
            assert "fork of" not in ok(daemon, "sessions")
            hits = memq_json(daemon, "search", "quokka")["items"]
            assert [(h["session_key"], h["inherited"]) for h in hits] == [
                ("claude-code:right", False)
            ]

    def test_a_title_and_a_revert_never_move_updated_at_back(self, daemon: Daemon) -> None:
        """Through the CLI: a new title is a change (updated_at moves on), and reverting the
        newest record leaves updated_at where the title put it, or later."""
        with daemon.client() as client:
            post_session(client, "timed", ["ls src", "ls -la docs"])  # not no-ops: two records
            daemon.wait_idle()

            def updated() -> datetime:
                return datetime.fromisoformat(
                    client.get("/api/sessions/timed").json()["updated_at"]
                )

            written = updated()
            ok(daemon, "title", "timed", "Listing files")
            titled = updated()
            assert titled > written
            ok(daemon, "revert", "timed", "--last", "1")
            assert updated() >= titled
