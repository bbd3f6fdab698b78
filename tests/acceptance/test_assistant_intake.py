"""The intake's side of the assistants' frame, whatever the assistant: what an unknown name
or a payload tagged for another assistant gets, from the hook and from the API."""

from __future__ import annotations

import json
from pathlib import Path

from tests.acceptance.conftest import sample
from tests.acceptance.test_hook import hook, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.rows import all_rows


class TestTheApi:
    def test_an_unknown_assistant_is_a_422_and_stores_nothing(self, daemon: Daemon) -> None:
        with daemon.client() as client:
            response = client.post("/api/events?assistant=copilot", json=sample("Stop"))
            status = client.get("/api/status").json()
        assert response.status_code == 422
        assert "unknown assistant 'copilot'" in response.json()["error"]
        assert status["counts"]["pending"] + status["counts"]["processed"] == 0

    def test_a_payload_tagged_for_another_assistant_is_refused(self, daemon: Daemon) -> None:
        tagged = {**sample("Stop"), "memq_assistant": "gemini-cli"}
        with daemon.client() as client:
            response = client.post("/api/events?assistant=codex", json=tagged)
            same = client.post("/api/events?assistant=gemini", json=tagged)
        assert response.status_code == 422
        assert "'gemini-cli'" in response.json()["error"]
        assert same.status_code == 202  # the hook's own post, named again: stored as it is
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["session_id"] == f"gemini-cli:{tagged['session_id']}"

    def test_claude_codes_payload_named_as_such_is_stored_as_it_came(self, daemon: Daemon) -> None:
        event = sample("PostToolUse.Bash")
        with daemon.client() as client:
            response = client.post("/api/events?assistant=claude-code", json=event)
        assert response.status_code == 202
        (row,) = all_rows(daemon.home / "memq.db")
        assert (row["session_id"], row["kind"]) == (
            f"claude-code:{event['session_id']}",
            "observation",
        )
        daemon.wait_idle()
        with daemon.client() as client:
            found = client.get(f"/api/sessions/{row['session_id']}/observations").json()
        assert [item["tool_name"] for item in found["items"]] == ["Bash"]


class TestTheHook:
    def test_an_unknown_assistant_still_delivers_the_event_and_says_why(
        self, tmp_path: Path
    ) -> None:
        """A hook command naming an assistant memq does not know: the event is kept (read
        as Claude Code's), and hook.log names the problem."""
        home = tmp_path / "home"
        no_spawn(home)
        result = hook(home, free_port(), sample("UserPromptSubmit"), "--assistant", "copilot")
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        (row,) = all_rows(home / "memq.db")
        assert (row["session_id"].split(":")[0], row["kind"]) == ("claude-code", "prompt")
        log = [json.loads(line) for line in (home / "logs" / "hook.log").read_text().splitlines()]
        problems = [line for line in log if line["event"] == "hook.bad_arguments"]
        assert problems
        assert "unknown assistant 'copilot'" in problems[0]["error"]
