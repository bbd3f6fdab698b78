"""The real Claude Code CLI, offline, reaching memq's memory through ``memq mcp``.

``memq install --project`` registers the server (``.mcp.json``) and the hooks
(``.claude/settings.json``) in a project; ``claude -p`` runs there with a throwaway HOME
against a fake Messages API on loopback (``tests.helpers.fake_anthropic``). The fake model
asks for ``mcp__memq__search``; Claude Code starts ``memq mcp`` from its own, minimal
environment (no ``MEMQ_*`` variables), calls the tool, and sends back its result, which the
test reads: it must name the record planted through the daemon beforehand.

The CLI comes from npm (``scripts/_npm.sh``, run by ``scripts/test``, installs it into
``.cache/npm/claude-code``); ``MEMQ_CLAUDE_BIN`` points at another one. Without it the test
skips and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from memq.memory.records import RecordType
from memq.memory.refs import format_ref
from tests.faults.kit import keep_hooks_from_spawning
from tests.helpers.daemon import Daemon, running_daemon
from tests.helpers.fake_anthropic import (
    FakeAnthropic,
    Json,
    Text,
    ToolUse,
    Turn,
    result_text,
    tool_names,
    tool_results,
)
from tests.helpers.npm_cli import cli_binary
from tests.helpers.processes import run_module

pytestmark = pytest.mark.slow

TOOL = "mcp__memq__search"
QUERY = "zanzibar"  # a word only the planted record holds
PROMPT = "Where did I put the zanzibar notes?"
FINAL = "The zanzibar notes are in quay.txt."
RUN_TIMEOUT = 45.0  # seconds for the whole claude run; the test's budget is 60


# -- the CLI -----------------------------------------------------------------------------------


def claude_binary() -> Path:
    """The Claude Code CLI to run; skips the test, saying why, when there is none."""
    return cli_binary("claude-code", "claude", "MEMQ_CLAUDE_BIN", "Claude Code")


def claude_env(home: Path, api: str) -> dict[str, str]:
    """A minimal environment, as a user's shell would give Claude Code: no ``MEMQ_*``, no
    ``PYTHONPATH``; offline against the fake API."""
    env = {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": api,
        "ANTHROPIC_API_KEY": "sk-ant-fake-0123456789",
        # Nothing but the fake API: no telemetry, error reports, update checks or other
        # nonessential traffic.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "DISABLE_TELEMETRY": "1",
        "DISABLE_ERROR_REPORTING": "1",
        "DISABLE_AUTOUPDATER": "1",
        # Wait for MCP servers to connect before the first request: by default -p sends it
        # at once and the server's tools join later.
        "MCP_CONNECTION_NONBLOCKING": "false",
        # Offer MCP tools to the model directly: newer versions defer them behind a search
        # tool, which a scripted model would have to drive first.
        "ENABLE_TOOL_SEARCH": "false",
    }
    if os.geteuid() == 0:
        env["IS_SANDBOX"] = "1"  # root may run it only in a sandbox
    return env


def run_claude(binary: Path, prompt: str, *, cwd: Path, env: dict[str, str]) -> Json:
    """``claude -p PROMPT`` with memq's search tool allowed; its JSON result. The process
    group is killed when it overruns, so no MCP server outlives the test."""
    debug = cwd.parent / "claude-debug.log"
    command = [
        str(binary),
        "-p",
        prompt,
        "--output-format",
        "json",
        "--allowedTools",
        TOOL,
        "--debug-file",
        str(debug),
    ]
    process = subprocess.Popen(
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=RUN_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.communicate()
        pytest.fail(f"claude -p ran over {RUN_TIMEOUT} s\n{mcp_lines(debug)}")
    finally:
        _kill_group(process.pid)
    assert process.returncode == 0, f"claude -p exited {process.returncode}: {err}\n{out}"
    try:
        result: Json = json.loads(out)
    except ValueError:
        pytest.fail(f"claude -p printed no JSON result: {out!r} {err!r}")
    return result


def _kill_group(pid: int) -> None:
    """Whatever the CLI left behind in its process group (an MCP server, a hook)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def mcp_lines(debug: Path) -> str:
    """The CLI's debug lines about MCP servers, to explain a failure."""
    if not debug.exists():
        return "(no debug log)"
    lines = debug.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if "MCP" in line)[-4000:]


# -- the model ---------------------------------------------------------------------------------


@dataclass
class SearchingModel:
    """The fake model: asks memq's search tool once, then answers with text."""

    query: str
    results: list[Json] = field(default_factory=list)  # the tool results it was sent
    missing: list[list[str]] = field(default_factory=list)  # tool lists without memq's

    def __call__(self, request: Json) -> Turn:
        names = tool_names(request)
        results = tool_results(request)
        if results:
            self.results.extend(results)
            return Turn([Text(FINAL)])
        if TOOL in names:
            return Turn([ToolUse(TOOL, {"query": self.query})])
        if names:  # the main loop, but memq's tools are not offered
            self.missing.append(names)
        return Turn([Text("ok")])


# -- memory ------------------------------------------------------------------------------------


def plant(daemon: Daemon, project: Path) -> tuple[str, str]:
    """Remember a session in ``project`` through the daemon; the reference and title of the
    observation the query finds."""
    session = "e2e-planted-0001"
    base = {"session_id": session, "cwd": str(project), "transcript_path": ""}
    events: list[Json] = [
        {**base, "hook_event_name": "UserPromptSubmit", "prompt": "write the zanzibar notes"},
        {
            **base,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_input": {"command": "echo zanzibar > quay.txt", "description": "notes"},
            "tool_response": {"stdout": "", "stderr": "", "interrupted": False},
            "tool_use_id": "toolu_planted",
        },
        {**base, "hook_event_name": "Stop"},
    ]
    with daemon.client() as client:
        for event in events:
            assert client.post("/api/events", json=event).status_code in (200, 202)
        daemon.wait_idle()
        found = client.get("/api/search", params={"q": QUERY})
        assert found.status_code == 200, found.text
        items: list[dict[str, Any]] = found.json()["items"]
    observations = [item for item in items if item["record_type"] == "observation"]
    assert observations, f"the planted observation is not found: {items}"
    top = observations[0]
    return format_ref(RecordType(top["record_type"]), int(top["id"])), str(top["title"])


def texts(result: Json) -> str:
    """A tool result's text, with any JSON in it decoded too (Claude Code may pass a tool's
    structured content on as JSON, escaping what the title holds)."""
    text = result_text(result)
    try:
        decoded = json.loads(text)
    except ValueError:
        return text
    return f"{text}\n{json.dumps(decoded, ensure_ascii=False)}\n{_strings(decoded)}"


def _strings(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        return "\n".join(_strings(item) for item in value.values())
    if isinstance(value, list):
        return "\n".join(_strings(item) for item in value)
    return ""


@pytest.fixture(scope="module")
def claude() -> Path:
    """The CLI, looked for before any daemon starts."""
    return claude_binary()


@pytest.fixture
def daemon(claude: Path, tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "memq-home") as running:
        yield running


# -- the test ----------------------------------------------------------------------------------


def test_claude_code_calls_memq_search_and_gets_the_planted_record(
    claude: Path, tmp_path: Path, daemon: Daemon
) -> None:
    """memq install --project registers memq mcp; Claude Code starts it with a minimal
    environment, calls mcp__memq__search for the fake model, and sends back a result naming
    the record planted through the daemon; the hooks memq installed report the session."""
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / ".git").mkdir()  # a project root, as in a repository
    ref, title = plant(daemon, project)

    # The daemon's environment (its MEMQ_HOME and port): install records what the hook and
    # the server need, as a user's `memq install` would.
    installed = run_module(
        "memq",
        "install",
        "--project",
        env={**daemon.env, "HOME": str(home), "CLAUDE_CONFIG_DIR": ""},
        cwd=project,
    )
    assert installed.returncode == 0, installed.stderr
    config = json.loads((project / ".mcp.json").read_text())
    entry = config["mcpServers"]["memq"]
    assert entry["env"] == {"MEMQ_HOME": str(daemon.home)}
    assert os.path.isabs(entry["command"])
    # Approve the project's server as a user does once in an interactive session: -p does
    # not ask today, and the approval keeps the test from depending on that.
    (home / ".claude").mkdir()
    (home / ".claude" / "settings.json").write_text(json.dumps({"enabledMcpjsonServers": ["memq"]}))

    model = SearchingModel(QUERY)
    with FakeAnthropic.running(model) as api:
        result = run_claude(
            claude,
            PROMPT,
            cwd=project,
            env=claude_env(home, api.url),
        )
    debug = mcp_lines(tmp_path / "claude-debug.log")
    assert not api.errors, api.errors
    assert not model.missing, f"Claude Code offered no {TOOL}: {model.missing}\n{debug}"
    assert len(model.results) == 1, f"no tool result came back: {result}\n{debug}"
    tool_result = model.results[0]
    sent = texts(tool_result)
    assert not tool_result.get("is_error"), f"the tool failed: {sent}\n{debug}"
    assert any(ref in line.split() and title in line for line in sent.splitlines()), (
        f"no line of the tool result names {ref} {title!r}: {sent}"
    )
    assert result["is_error"] is False, result
    assert result["result"] == FINAL

    # The hooks memq installed beside the server told the daemon about the session: its
    # start and end, the prompt, the tool call and the stop that summarised it.
    daemon.wait_idle()
    session = f"claude-code:{result['session_id']}"
    with daemon.client() as client:
        detail = client.get(f"/api/sessions/{session}")
        assert detail.status_code == 200, f"no hook reached the daemon: {detail.text}"
        observed = client.get(f"/api/sessions/{session}/observations").json()["items"]
    facts = detail.json()
    assert [prompt["text"] for prompt in facts["prompts"]] == [PROMPT]
    # The model's call of memq's own search tool is not remembered (skipped by default):
    # memq stats counts it instead.
    assert [item["tool_name"] for item in observed] == []
    assert facts["summary_count"] == 1
    assert facts["ended_at"] is not None


def test_claude_code_reads_the_user_scope_registration(claude: Path, tmp_path: Path) -> None:
    """After memq install (user scope, ~/.claude.json), `claude mcp get memq` shows memq's
    server as the user's and connects to it; after memq uninstall Claude Code knows no memq."""
    home, project = tmp_path / "home", tmp_path / "project"
    home.mkdir()
    project.mkdir()
    data = tmp_path / "memq-home"
    shell = {"HOME": str(home), "CLAUDE_CONFIG_DIR": "", "MEMQ_HOME": str(data)}
    installed = run_module("memq", "install", env=shell, cwd=project)
    assert installed.returncode == 0, installed.stderr
    # The hooks memq installed fire inside `claude` too; with no daemon they would start
    # one that outlives the test.
    keep_hooks_from_spawning(data)
    env = claude_env(home, "http://127.0.0.1:9")  # no model call is made

    def get() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(claude), "mcp", "get", "memq"],
            cwd=project,
            env=env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT,
            check=False,
        )

    shown = get()
    assert shown.returncode == 0, shown.stderr
    assert "User config" in shown.stdout, shown.stdout
    assert "Connected" in shown.stdout, shown.stdout
    assert f"MEMQ_HOME={data}" in shown.stdout

    removed = run_module("memq", "uninstall", env=shell, cwd=project)
    assert removed.returncode == 0, removed.stderr
    gone = get()
    assert gone.returncode != 0
    assert "memq" in gone.stdout + gone.stderr
