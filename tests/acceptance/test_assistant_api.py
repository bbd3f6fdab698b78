"""``POST /api/events?assistant=NAME`` for every assistant: its own payload mapped on the
daemon's side, stored under its session key, processed into the observation its tool call
describes, deduplicated when sent again; memq's own MCP tool is skipped whatever the
assistant calls it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import Daemon
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures"

# (assistant as named in the URL, as stored, a tool-call fixture, the observation's title,
# the fixture of a call of memq's own search tool).
CASES = [
    pytest.param(
        "codex",
        "codex",
        "codex/PostToolUse.apply_patch",
        "Edited src/app.py",
        "codex/PostToolUse.mcp__memq__search",
        id="codex",
    ),
    pytest.param(
        "gemini",
        "gemini-cli",
        "gemini-cli/AfterTool.run_shell_command.fail",
        "Ran `echo failing >&2; exit 3` (exit 3)",
        "gemini-cli/AfterTool.mcp_memq_search",
        id="gemini-cli",
    ),
    pytest.param(
        "cursor",
        "cursor",
        "cursor/postToolUse.Shell",
        "Ran `pytest tests/test_cart.py -q` (exit 1)",
        "cursor/afterMCPExecution",
        id="cursor",
    ),
    pytest.param(
        "opencode",
        "opencode",
        "opencode/tool.execute.after.bash",
        "Ran `echo hello-from-tool`",
        "opencode/tool.execute.after.memq_search",
        id="opencode",
    ),
]


def fixture(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / f"{name}.json").read_text())
    return loaded


@pytest.mark.parametrize(("named", "assistant", "tool_call", "title", "own_tool"), CASES)
class TestNativePayloads:
    def test_mapped_stored_processed_and_deduplicated(
        self,
        daemon: Daemon,
        named: str,
        assistant: str,
        tool_call: str,
        title: str,
        own_tool: str,
    ) -> None:
        payload = fixture(tool_call)
        with daemon.client() as client:
            first = client.post(f"/api/events?assistant={named}", json=payload)
            again = client.post(f"/api/events?assistant={assistant}", json=payload)
        assert first.status_code == 202, first.text
        assert again.json()["status"] == "duplicate"
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["session_id"].startswith(f"{assistant}:")
        assert row["kind"] == "observation"
        daemon.wait_idle()
        with daemon.client() as client:
            found = client.get(f"/api/sessions/{row['session_id']}/observations").json()
            session = client.get(f"/api/sessions/{row['session_id']}").json()
        (item,) = found["items"]
        assert item["title"] == title
        assert session["assistant"] == assistant

    def test_memqs_own_tool_is_skipped(
        self,
        daemon: Daemon,
        named: str,
        assistant: str,
        tool_call: str,
        title: str,
        own_tool: str,
    ) -> None:
        with daemon.client() as client:
            answer = client.post(f"/api/events?assistant={named}", json=fixture(own_tool))
        assert answer.json() == {"status": "skipped"}
        assert all_rows(daemon.home / "memq.db") == []
