"""``MEMQ_PROCESSOR=claude-code``: the daemon has the real Claude Code CLI (from npm, as in
``test_claude_code_mcp``) write its records, against a fake Messages API on loopback. memq's
hooks are installed in the same (throwaway) HOME, pointing at the same daemon: they run
inside each ``claude -p`` memq starts, and must do nothing there (``MEMQ_DISABLED=1``), while
the same hooks do report a ``claude -p`` a user runs. Skips, saying why, without the CLI."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_claude_code_mcp import claude_binary, claude_env
from tests.helpers.daemon import Daemon
from tests.helpers.fake_anthropic import FakeAnthropic, Json, Text, Turn, prompt_text
from tests.helpers.processes import run_module
from tests.helpers.rows import table

pytestmark = pytest.mark.slow

SESSION = "cc-processor-session"
OBSERVATION = {
    "kind": "command",
    "title": "Ran the retry tests (written by Claude Code)",
    "narrative": "The tests ran.",
    "facts": ["tests pass"],
    "files_modified": [],
}
SUMMARY = {"request": "run the tests", "completed": "they ran (written by Claude Code)"}


class RecordWriter:
    """The fake model: a record for memq's requests, "ok" for anything else."""

    def __init__(self) -> None:
        self.requests: list[Json] = []

    def __call__(self, request: Json) -> Turn:
        self.requests.append(request)
        system = json.dumps(request.get("system"))
        if "Summarize it for a later session" in system:
            return Turn([Text(json.dumps(SUMMARY))])
        if "memory record" in system:
            return Turn([Text(json.dumps(OBSERVATION))])
        return Turn([Text("ok")])


@pytest.fixture(scope="module")
def claude() -> Path:
    return claude_binary()


@pytest.fixture
def api() -> Iterator[tuple[FakeAnthropic, RecordWriter]]:
    writer = RecordWriter()
    with FakeAnthropic.running(writer) as fake:
        yield fake, writer


def event(name: str, **fields: Any) -> Json:
    return {
        "session_id": SESSION,
        "cwd": "/home/dev/project",
        "transcript_path": "",
        "hook_event_name": name,
        **fields,
    }


def sessions(daemon: Daemon) -> list[str]:
    with daemon.client() as client:
        body = client.get("/api/sessions", params={"limit": 100}).json()
    return sorted(item["key"] for item in body["items"])


def test_claude_code_writes_the_records_and_its_hooks_stay_quiet(
    claude: Path, tmp_path: Path, api: tuple[FakeAnthropic, RecordWriter]
) -> None:
    fake, writer = api
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **claude_env(home, fake.url),
        "MEMQ_PROCESSOR": "claude-code",
        "MEMQ_CLAUDE_BIN": str(claude),
        "MEMQ_LLM_TIMEOUT": "45",
    }
    daemon = Daemon(tmp_path / "memq-home", env=env)
    daemon.env["PATH"] = f"{Path(claude).parent}:{daemon.env['PATH']}"
    # memq's hooks for this HOME's Claude Code, reporting to this daemon.
    installed = run_module("memq", "install", "--no-mcp", env=daemon.env, cwd=tmp_path)
    assert installed.returncode == 0, installed.stderr
    assert "hook" in (home / ".claude" / "settings.json").read_text()
    daemon.start()
    try:
        with daemon.client() as client:
            for body in (
                event("UserPromptSubmit", prompt="run the tests"),
                event(
                    "PostToolUse",
                    tool_name="Bash",
                    tool_input={"command": "pytest -q tests/test_retry.py"},
                    tool_response={"stdout": "4 passed in 0.03s", "stderr": ""},
                    tool_use_id="toolu_cc_1",
                ),
                event("Stop", last_assistant_message="The tests pass."),
            ):
                assert client.post("/api/events", json=body).status_code in (200, 202)
        status = daemon.wait_idle(timeout=120)
        assert status["failed"] == 0, daemon.stderr()

        # Two runs of the CLI, no tools offered, memq's instructions, a small model.
        assert len(writer.requests) == 2, fake.paths
        for request in writer.requests:
            assert not request.get("tools")
            assert "haiku" in request["model"]
        assert "pytest -q tests/test_retry.py" in prompt_text(writer.requests[0])
        with daemon.client() as client:
            key = f"claude-code:{SESSION}"
            observed = client.get(f"/api/sessions/{key}/observations").json()["items"]
            summaries = client.get(f"/api/sessions/{key}/summaries").json()["items"]
        assert [o["title"] for o in observed] == [OBSERVATION["title"]]
        assert [s["completed"] for s in summaries] == [SUMMARY["completed"]]
        rows = table(daemon.home / "memq.db", "SELECT * FROM model_usage ORDER BY id")
        assert [r["processor"] for r in rows] == ["claude-code", "claude-code"]
        assert all(r["model"].startswith("claude-haiku") for r in rows)
        assert all(r["input_tokens"] > 0 for r in rows)

        # The hooks inside memq's runs did nothing: the daemon knows the test's session only.
        assert sessions(daemon) == [f"claude-code:{SESSION}"]

        # The same hooks report a run of the user's own (the guard is MEMQ_DISABLED alone).
        user_run = subprocess.run(
            [str(claude), "-p", "say ok", "--output-format", "json", "--tools", ""],
            cwd=tmp_path,
            env={k: v for k, v in daemon.env.items() if not k.startswith("MEMQ_")}
            | {"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert user_run.returncode == 0, user_run.stderr
        daemon.wait_idle(timeout=60)
        user_session = f"claude-code:{json.loads(user_run.stdout)['session_id']}"
        assert user_session in sessions(daemon)
    finally:
        daemon.kill()
