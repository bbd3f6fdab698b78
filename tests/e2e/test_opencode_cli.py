"""The real OpenCode CLI (``opencode-ai`` from npm) with memq's plugin installed by ``memq install
--assistant opencode --project``, offline: its model is a fake OpenAI-compatible server on
loopback that has it call one tool. memq must store the session, the prompt, the tool's
observation and the turn's summary, and give the next session memq's context in its system
prompt. Skips, saying why, without the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from tests.helpers.app_server import ThreadedServer
from tests.helpers.daemon import Daemon, running_daemon
from tests.helpers.npm_cli import cli_binary
from tests.helpers.processes import project_env, run_module

pytestmark = pytest.mark.slow

PROMPT = "Say hello using the shell"
TOOL_COMMAND = "echo hello-from-tool"
REPLY = "Done: the tool said hello."


class FakeOpenAI:
    """Chat completions, streamed: a request that offers tools and has no tool result yet
    gets one bash call; any other (the answer after it, OpenCode's title requests) text."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.server = ThreadedServer(
            Starlette(routes=[Route("/v1/chat/completions", self.chat, methods=["POST"])]),
            "fake-openai",
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.port}/v1"

    async def chat(self, request: Request) -> Response:
        body = await request.json()
        self.requests.append(body)
        called = any(m.get("role") == "tool" for m in body.get("messages", []))
        call = bool(body.get("tools")) and not called
        return StreamingResponse(_stream(call), media_type="text/event-stream")


def _chunk(delta: dict[str, Any], finish: str | None = None) -> str:
    choice = {"index": 0, "delta": delta, "finish_reason": finish}
    data = {"id": "c1", "object": "chat.completion.chunk", "model": "fake", "choices": [choice]}
    return f"data: {json.dumps(data)}\n\n"


def _stream(call: bool) -> Iterator[str]:
    if call:
        arguments = json.dumps({"command": TOOL_COMMAND, "description": "Print a greeting"})
        function = {"name": "bash", "arguments": arguments}
        tool_call = {"index": 0, "id": "call_1", "type": "function", "function": function}
        yield _chunk({"role": "assistant", "tool_calls": [tool_call]})
        yield _chunk({}, "tool_calls")
    else:
        yield _chunk({"role": "assistant", "content": REPLY})
        yield _chunk({}, "stop")
    yield "data: [DONE]\n\n"


@pytest.fixture(scope="module")
def opencode() -> Path:
    return cli_binary("opencode", "opencode", "MEMQ_OPENCODE", "OpenCode")


@pytest.fixture
def fake() -> Iterator[FakeOpenAI]:
    api = FakeOpenAI()
    api.server.start()
    try:
        yield api
    finally:
        api.server.stop()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "memq") as running:
        yield running


def project(tmp_path: Path, fake: FakeOpenAI) -> Path:
    root = tmp_path / "project"
    root.mkdir()
    provider = {
        "npm": "@ai-sdk/openai-compatible",
        "name": "Fake",
        "options": {"baseURL": fake.url, "apiKey": "unused"},
        "models": {"fake": {"name": "Fake", "tool_call": True}},
    }
    config = {
        "$schema": "https://opencode.ai/config.json",
        "provider": {"fake": provider},
        "model": "fake/fake",
        "small_model": "fake/fake",
        "share": "disabled",
        "autoupdate": False,
    }
    (root / "opencode.json").write_text(json.dumps(config, indent=2))
    # OpenCode takes the project's own config (and .opencode/) from a git worktree.
    subprocess.run(["git", "init", "-q", str(root)], check=True, timeout=30)
    return root


def opencode_env(tmp_path: Path, daemon: Daemon) -> dict[str, str]:
    """A throwaway home for OpenCode, offline, and the daemon's port for the hook."""
    base = tmp_path / "opencode-home"
    return {
        "HOME": str(base),
        "XDG_CONFIG_HOME": str(base / "config"),
        "XDG_DATA_HOME": str(base / "data"),
        "XDG_CACHE_HOME": str(base / "cache"),
        "XDG_STATE_HOME": str(base / "state"),
        "OPENCODE_DISABLE_MODELS_FETCH": "1",
        "OPENCODE_DISABLE_DEFAULT_PLUGINS": "1",
        "OPENCODE_DISABLE_AUTOUPDATE": "1",
        "MEMQ_HOME": str(daemon.home),
        "MEMQ_PORT": str(daemon.port),
    }


def run(opencode: Path, prompt: str, cwd: Path, env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(opencode), "run", prompt],
        cwd=cwd,
        # OpenCode takes its directory from PWD, not from the process's working directory.
        env=project_env({**env, "PWD": str(cwd)}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]


def opencode_sessions(daemon: Daemon) -> list[str]:
    with daemon.client() as client:
        items = client.get("/api/sessions", params={"limit": 100}).json()["items"]
    return sorted(item["key"] for item in items if item["key"].startswith("opencode:"))


def test_opencode_sessions_are_remembered_and_given_memqs_context(
    opencode: Path, fake: FakeOpenAI, daemon: Daemon, tmp_path: Path
) -> None:
    root = project(tmp_path, fake)
    env = opencode_env(tmp_path, daemon)
    installed = run_module(
        "memq", "install", "--assistant", "opencode", "--project", "--no-mcp", env=env, cwd=root
    )
    assert installed.returncode == 0, installed.stderr
    assert (root / ".opencode" / "plugins" / "memq.js").exists()

    run(opencode, PROMPT, root, env)
    daemon.wait_idle()
    (first,) = opencode_sessions(daemon)
    with daemon.client() as client:
        detail = client.get(f"/api/sessions/{first}").json()
        assert PROMPT in detail["prompts"][0]["text"]
        observations = client.get(f"/api/sessions/{first}/observations").json()["items"]
        assert [o["title"] for o in observations] == [f"Ran `{TOOL_COMMAND}`"]
        summaries = client.get(f"/api/sessions/{first}/summaries").json()
        assert summaries["total"] == 1
        assert "the tool said hello" in json.dumps(summaries["items"][0])

    seen = len(fake.requests)
    run(opencode, "What did we do last time?", root, env)
    daemon.wait_idle()
    assert len(opencode_sessions(daemon)) == 2
    later = fake.requests[seen:]
    systems = [
        message["content"]
        for request in later
        if request.get("tools")
        for message in request["messages"]
        if message["role"] == "system"
    ]
    assert any(TOOL_COMMAND in json.dumps(content) for content in systems)
