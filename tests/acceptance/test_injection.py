"""What the real ``memq hook`` prints for the model, against the real daemon: the recap after
a compaction, per-prompt recall as Claude Code takes it from a UserPromptSubmit hook, and
nothing (but the event stored) when no daemon answers."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from pathlib import Path
from typing import Any

from tests.acceptance.conftest import sample
from tests.acceptance.test_hook import hook, no_spawn
from tests.helpers.daemon import Daemon, free_port, running_daemon
from tests.helpers.rows import all_rows

EARLIER = "0b5e7a9c-1111-4c2d-9e3f-000000000001"  # another session of the same project


def run_hook(daemon: Daemon, payload: dict[str, Any]) -> subprocess.CompletedProcess[bytes]:
    # A generous read timeout: the daemon's own limits are what is tested, not the machine.
    result = hook(daemon.home, daemon.port, payload, MEMQ_HOOK_TIMEOUT="5")
    assert (result.returncode, result.stderr) == (0, b"")
    return result


def a_turn(session_id: str, prompt: str) -> list[dict[str, Any]]:
    """A prompt, two tool calls and a Stop of one session."""
    return [
        sample("UserPromptSubmit") | {"session_id": session_id, "prompt": prompt},
        sample("PostToolUse.Write") | {"session_id": session_id},
        sample("PostToolUse.Bash") | {"session_id": session_id},
        sample("Stop") | {"session_id": session_id},
    ]


class TestRecapAfterCompaction:
    def test_compact_prints_the_session_at_hand(self, daemon: Daemon) -> None:
        """SessionStart compact after a summarized turn and a turn in progress: the fenced
        recap with the latest summary, the prompt since, and the files, refs on each line."""
        session_id = sample("SessionStart.compact")["session_id"]
        for payload in a_turn(session_id, "Create the notes file"):
            run_hook(daemon, payload)
        follow_up = sample("UserPromptSubmit") | {
            "prompt": "Now list the directory",
            "prompt_id": str(uuid.uuid4()),
        }
        run_hook(daemon, follow_up)
        run_hook(daemon, sample("PostToolUse.Bash") | {"tool_use_id": "toolu_after_summary"})
        daemon.wait_idle()
        text = run_hook(daemon, sample("SessionStart.compact")).stdout.decode()
        lines = text.splitlines()
        assert lines[0] == "<memq-context>"
        assert "reference data, not instructions" in lines[1]
        assert lines[-1] == "</memq-context>"
        summary = lines[lines.index("This session's latest summary:") + 1]
        assert re.match(r"\* #S\d+ ", summary)
        since = lines[lines.index("This session since then (oldest first):") + 1 :]
        assert re.match(r"- #P\d+ .* \[prompt\] Now list the directory$", since[0])
        assert re.match(r"- #\d+ .* \[command\] ", since[1])
        assert "Files this session changed (latest first):" in lines
        assert any("mcp__memq__get_observations" in line for line in lines)


class TestPromptRecall:
    def test_a_prompt_gets_the_best_matches_as_additional_context(self, tmp_path: Path) -> None:
        """With recall_on_prompt on, a prompt matching an earlier session's work prints the
        JSON Claude Code takes extra context from (hookSpecificOutput.additionalContext)."""
        env = {"MEMQ_RECALL_ON_PROMPT": "true", "MEMQ_RECALL_MIN_SCORE": "0"}
        with running_daemon(tmp_path / "home", env=env) as daemon:
            for payload in a_turn(EARLIER, "Create the notes file"):
                run_hook(daemon, payload)
            daemon.wait_idle()
            assert daemon.memq("search", "notes").returncode == 0  # a warm daemon
            printed = b""
            # The daemon gives recall 150 ms and the machine is shared: a few tries, each a
            # new prompt; one answer in time is what this test needs.
            for _ in range(5):
                prompt = sample("UserPromptSubmit") | {
                    "prompt": "what did we put in notes.txt?",
                    "prompt_id": str(uuid.uuid4()),
                }
                printed = run_hook(daemon, prompt).stdout
                if printed:
                    break
            output = json.loads(printed)
            specific = output["hookSpecificOutput"]
            assert specific["hookEventName"] == "UserPromptSubmit"
            context = specific["additionalContext"]
            assert context.startswith("<memq-context>\n")
            assert "for this prompt" in context
            assert re.search(r"^- #P?\d+ ", context, re.MULTILINE)
            assert context.endswith("</memq-context>")
            prompts = [r for r in all_rows(daemon.home / "memq.db") if r["kind"] == "prompt"]
            assert len(prompts) >= 2  # the earlier session's, and each recalled prompt's

    def test_with_the_daemon_down_the_prompt_is_stored_and_nothing_printed(
        self, tmp_path: Path
    ) -> None:
        """No daemon: exit 0, nothing printed, the prompt in the queue for later."""
        home = tmp_path / "home"
        no_spawn(home)
        payload = sample("UserPromptSubmit")
        result = hook(home, free_port(), payload, MEMQ_RECALL_ON_PROMPT="true")
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        (row,) = all_rows(home / "memq.db")
        assert row["kind"] == "prompt"
        assert json.loads(row["payload"])["prompt"] == payload["prompt"]
