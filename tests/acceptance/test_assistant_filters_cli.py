"""Issue 15: one project worked on by Claude Code and by Codex, read through the real CLI
(daemon up, then down) and the real ``memq mcp``: every listing names each session's or
record's assistant, ``--assistant`` / ``assistant`` filters by it, and the context labels
the lines of a project whose memory mixes assistants."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon
from tests.helpers.mcp import call, call_error, mcp_client

CLAUDE_ID = "6e0c2c1a-0000-4000-8000-00000000c1a0"
CODEX_ID = "019a0c2c-0000-7000-8000-0000000c0dex"
LABEL = re.compile(r"^[-*] #[SP]?\d+ \[([a-z-]+)\] ", re.MULTILINE)


def events(project: Path, session_id: str, assistant: str | None, work: str) -> list[Any]:
    """A prompt, a shell command and a Stop of one session in ``project``; ``assistant``
    marks them as that assistant's (as its adapter does)."""
    where: dict[str, Any] = {"session_id": session_id, "cwd": str(project)}
    if assistant is not None:
        where["memq_assistant"] = assistant
    return [
        sample("UserPromptSubmit") | where | {"prompt": f"{work}: make the retry back off"},
        sample("PostToolUse.Bash")
        | where
        | {
            "tool_use_id": f"toolu_{session_id[:8]}",
            "tool_input": {"command": f"pytest tests/test_{work}.py", "description": "run"},
        },
        sample("Stop") | where | {"last_assistant_message": f"{work} backoff done."},
    ]


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("assistants") / "service"
    (root / ".git").mkdir(parents=True)
    return root


@pytest.fixture(scope="module")
def daemon(project: Path) -> Iterator[Daemon]:
    """A daemon whose memory holds a Claude Code session, then a Codex session, of
    ``project``."""
    running = Daemon(project.parent / "home")
    running.start()
    try:
        with running.client() as client:
            for payload in [
                *events(project, CLAUDE_ID, None, "claudework"),
                *events(project, CODEX_ID, "codex", "codexwork"),
            ]:
                answer = client.post("/api/events", json=payload)
                assert answer.status_code in (200, 202), answer.text
        running.wait_idle()
        yield running
    finally:
        running.kill()


def ok(daemon: Daemon, *args: str) -> str:
    result = daemon.memq(*args)
    assert result.returncode == 0, (args, result.stderr)
    return result.stdout


class TestCli:
    def test_sessions_show_and_filter_the_assistant(self, daemon: Daemon) -> None:
        table = ok(daemon, "sessions")
        header, *rows = table.splitlines()
        assert header.split()[:2] == ["SESSION", "ASSISTANT"]
        assert [row.split()[:2] for row in rows if ":" in row.split()[0]] == [
            [f"codex:{CODEX_ID}", "codex"],
            [f"claude-code:{CLAUDE_ID}", "claude-code"],
        ]
        codex = json.loads(ok(daemon, "sessions", "--assistant", "codex", "--json"))
        assert [(s["key"], s["assistant"]) for s in codex["items"]] == [
            (f"codex:{CODEX_ID}", "codex")
        ]
        claude = ok(daemon, "sessions", "--assistant", "claude")  # an alias
        assert f"claude-code:{CLAUDE_ID}" in claude
        assert "codex:" not in claude
        assert "(1 sessions)" in claude
        both = json.loads(
            ok(daemon, "sessions", "--assistant", "codex", "--assistant", "claude-code", "--json")
        )
        assert both["total"] == 2

    def test_an_unknown_assistant_is_a_usage_error(self, daemon: Daemon) -> None:
        for command in (("sessions",), ("search", "retry"), ("context",)):
            result = daemon.memq(*command, "--assistant", "nope")
            assert result.returncode == 2, command
            assert "unknown assistant 'nope'" in result.stderr

    def test_search_shows_and_filters_the_assistant(self, daemon: Daemon) -> None:
        every = json.loads(ok(daemon, "search", "backoff", "--json"))
        assert {item["assistant"] for item in every["items"]} == {"claude-code", "codex"}
        codex = json.loads(ok(daemon, "search", "backoff", "--assistant", "codex", "--json"))
        assert codex["items"]
        assert {item["session_key"] for item in codex["items"]} == {f"codex:{CODEX_ID}"}
        table = ok(daemon, "search", "backoff", "--assistant", "codex")
        header, *rows = table.splitlines()
        column = header.index("ASSISTANT")
        hits = [row for row in rows if re.match(r"\s*\d+ ", row)]
        assert hits
        assert all(row[column:].startswith("codex ") for row in hits)

    def test_context_labels_mixed_work_and_filters(self, daemon: Daemon, project: Path) -> None:
        mixed = ok(daemon, "context", "--cwd", str(project))
        assert set(LABEL.findall(mixed)) == {"claude-code", "codex"}
        assert "claudework" in mixed
        assert "codexwork" in mixed
        codex = ok(daemon, "context", "--cwd", str(project), "--assistant", "codex")
        assert "codexwork" in codex
        assert "claudework" not in codex
        assert LABEL.findall(codex) == []
        none = daemon.memq("context", "--cwd", str(project), "--assistant", "cursor")
        assert none.returncode == 0
        assert none.stdout == ""
        assert "memq has no memory of" in none.stderr

    def test_the_daemon_down_prints_the_same(self, daemon: Daemon, project: Path) -> None:
        commands = [
            ("sessions", "--assistant", "codex", "--utc"),
            ("sessions", "--utc"),
            ("search", "backoff", "--assistant", "claude", "--utc"),
            ("context", "--cwd", str(project), "--assistant", "codex"),
            ("context", "--cwd", str(project)),
        ]
        through_daemon = {command: ok(daemon, *command) for command in commands}
        assert daemon.stop() == 0
        try:
            for command in commands:
                result = daemon.memq(*command)
                assert result.returncode == 0, (command, result.stderr)
                assert "reading" in result.stderr  # answered from the file
                assert result.stdout == through_daemon[command], command
        finally:
            daemon.start()


class TestMcp:
    async def test_tools_take_an_assistant_and_name_it(self, daemon: Daemon, project: Path) -> None:
        env = {"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)}
        async with mcp_client(env, cwd=project) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
            for name in ("search", "timeline", "recent_context"):
                described = tools[name].input_schema["properties"]["assistant"]["description"]
                assert "codex" in described, name
                assert len(described) < 120, name  # short: every session pays for it

            mixed = await call(client, "search", query="backoff")
            labelled = re.findall(r"^#[SP]?\d+ \[([a-z-]+)\]", mixed, re.MULTILINE)
            assert set(labelled) == {"claude-code", "codex"}, mixed

            codex = await call(client, "search", query="backoff", assistant="codex")
            assert "codex sessions" in codex.splitlines()[0]
            assert "codexwork" in codex
            assert "claudework" not in codex

            around = await call(client, "timeline", query="backoff", assistant="claude")
            assert f"claude-code:{CLAUDE_ID}" in around.splitlines()[0]

            context = await call(client, "recent_context", assistant="codex")
            assert "codexwork" in context
            assert "claudework" not in context
            whole = await call(client, "recent_context")
            assert set(LABEL.findall(whole)) == {"claude-code", "codex"}

            assert "unknown assistant 'nope'" in await call_error(
                client, "search", query="backoff", assistant="nope"
            )
            assert "unknown assistant 'nope'" in await call_error(
                client, "recent_context", assistant="nope"
            )
