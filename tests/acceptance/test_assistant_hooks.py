"""Every captured or documented event of every assistant through the real ``memq hook
--assistant NAME``, with the daemon up: exit 0, nothing on stderr, stored once under the
assistant's session key with the kind its adapter gives, memq's own MCP tool skipped, and
nothing to report in hook.log. (Each assistant's own file tests its turns, its fallback and
its install.)"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from memq.assistants import adapter
from memq.events import route_event
from tests.acceptance.test_hook import hook
from tests.helpers.daemon import Daemon
from tests.helpers.rows import all_rows

FIXTURES = Path(__file__).parents[1] / "fixtures"
# Each assistant's fixture of a call of memq's own MCP search tool.
OWN_TOOL = {
    "codex": "PostToolUse.mcp__memq__search",
    "gemini-cli": "AfterTool.mcp_memq_search",
    "cursor": "afterMCPExecution",
    "opencode": "tool.execute.after.memq_search",
}


def cases() -> list[Any]:
    return [
        pytest.param(assistant, path.stem, id=f"{assistant}-{path.stem}")
        for assistant in OWN_TOOL
        for path in sorted((FIXTURES / assistant).glob("*.json"))
    ]


@pytest.mark.parametrize(("assistant", "name"), cases())
def test_each_fixture_is_delivered_silently_and_stored_once(
    daemon: Daemon, assistant: str, name: str
) -> None:
    payload: dict[str, Any] = json.loads((FIXTURES / assistant / f"{name}.json").read_text())
    result = hook(daemon.home, daemon.port, payload, "--assistant", assistant)
    assert (result.returncode, result.stderr) == (0, b"")
    assert result.stdout == b""  # nothing remembered yet: no context to give
    rows = all_rows(daemon.home / "memq.db")
    if name == OWN_TOOL[assistant]:
        assert rows == []  # memq's own MCP tools are bookkeeping, never memory
        return
    route = route_event(adapter(assistant).to_memq(dict(payload)))
    (row,) = rows
    assert route.session_key.startswith(f"{assistant}:")
    assert (row["session_id"], row["kind"]) == (route.session_key, route.kind)
    if row["payload"] is not None:  # NULL once processed
        stored = json.loads(row["payload"])
        assert (stored["memq_assistant"], stored["hook_event_name"]) == (assistant, route.event)
    assert not (daemon.home / "logs" / "hook.log").exists()
