"""The real Gemini CLI, offline, with memq's hooks installed by ``memq install --assistant
gemini-cli``.

``gemini -p`` runs in a project with a throwaway HOME against a fake Gemini API on loopback
(``tests.helpers.fake_gemini``, ``GOOGLE_GEMINI_BASE_URL``). The fake model has the CLI run
one shell command, then answers; the test checks what memq stored of that session (its key,
the prompt, the command's observation, the turn's summary with the model's clean text) and
that a second session's first request carried memq's context (``<hook_context>``).

The CLI comes from npm (``scripts/_npm.sh`` installs it into ``.cache/npm/gemini-cli``);
``MEMQ_GEMINI_BIN`` points at another one. Without it the test skips and says why.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.helpers.daemon import Daemon, running_daemon
from tests.helpers.fake_gemini import (
    FakeGemini,
    Json,
    function_responses,
    last_user_text,
    request_text,
)
from tests.helpers.npm_cli import cli_binary
from tests.helpers.processes import run_module
from tests.helpers.rows import all_rows

pytestmark = pytest.mark.slow

MODEL = "gemini-2.5-flash"
PROMPT = "write the zanzibar notes"
COMMAND = "echo zanzibar > quay.txt"
FINAL = "The zanzibar notes are in quay.txt."
SECOND = "where are the notes?"
RUN_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def gemini() -> Path:
    """The CLI, looked for before any daemon starts."""
    return cli_binary("gemini-cli", "gemini", "MEMQ_GEMINI_BIN", "Gemini CLI")


@pytest.fixture
def daemon(gemini: Path, tmp_path: Path) -> Iterator[Daemon]:
    with running_daemon(tmp_path / "memq-home") as running:
        yield running


@dataclass
class ShellModel:
    """Runs the shell command once for the first prompt, then answers with text."""

    requests: list[Json] = field(default_factory=list)

    def __call__(self, request: Json) -> list[Json]:
        self.requests.append(request)
        if function_responses(request):
            return [{"text": FINAL}]
        if last_user_text(request).endswith(PROMPT):
            call = {
                "name": "run_shell_command",
                "args": {"command": COMMAND, "description": "notes"},
            }
            return [{"text": "Writing them."}, {"functionCall": call}]
        return [{"text": "They are in quay.txt."}]


def gemini_env(home: Path, api: str) -> dict[str, str]:
    """A minimal environment, as a user's shell would give the CLI: no ``MEMQ_*`` and no
    ``PYTHONPATH``; offline against the fake API."""
    node = Path(shutil.which("node") or "/usr/bin/node").parent  # the CLI is a node script
    return {
        "PATH": f"{node}:/usr/local/bin:/usr/bin:/bin",
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "GOOGLE_GEMINI_BASE_URL": api,
        "GEMINI_API_KEY": "fake-gemini-key-0123456789",
        "GEMINI_CLI_NO_RELAUNCH": "true",
        "GEMINI_CLI_TRUST_WORKSPACE": "true",
        "GEMINI_TELEMETRY_ENABLED": "false",
    }


def run_gemini(binary: Path, prompt: str, *, cwd: Path, env: dict[str, str]) -> str:
    """``gemini -p PROMPT --approval-mode yolo``; its output. The process group is killed
    when it overruns, so no hook outlives the test."""
    command = [str(binary), "-p", prompt, "--approval-mode", "yolo", "-m", MODEL]
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
        out, err = process.communicate()
        pytest.fail(f"gemini -p ran over {RUN_TIMEOUT} s: {err[-2000:]}")
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
    assert process.returncode == 0, f"gemini -p exited {process.returncode}: {err[-3000:]}"
    return out


def settings(home: Path) -> None:
    """The user's settings before memq's install: API-key auth, nothing phoning home."""
    path = home / ".gemini" / "settings.json"
    path.parent.mkdir(parents=True)
    quiet = {
        "security": {"auth": {"selectedType": "gemini-api-key"}},
        "general": {"disableAutoUpdate": True, "disableUpdateNag": True},
        "privacy": {"usageStatisticsEnabled": False},
        "telemetry": {"enabled": False},
    }
    path.write_text(json.dumps(quiet, indent=2))


def test_gemini_cli_sessions_are_remembered_and_given_context(
    gemini: Path, tmp_path: Path, daemon: Daemon
) -> None:
    project, home = tmp_path / "project", tmp_path / "home"
    project.mkdir()
    home.mkdir()
    (project / ".git").mkdir()
    settings(home)
    installed = run_module(
        "memq",
        "install",
        "--assistant",
        "gemini-cli",
        env={**daemon.env, "HOME": str(home), "GEMINI_CLI_HOME": ""},
        cwd=project,
    )
    assert installed.returncode == 0, installed.stderr
    written = json.loads((home / ".gemini" / "settings.json").read_text())
    assert written["security"]["auth"]["selectedType"] == "gemini-api-key"

    model = ShellModel()
    with FakeGemini.running(model) as api:
        env = gemini_env(home, api.url)
        first = run_gemini(gemini, PROMPT, cwd=project, env=env)
        assert not api.errors, api.errors
        assert FINAL in first
        assert (project / "quay.txt").read_text().strip() == "zanzibar"
        assert daemon.wait_idle()["counts"]["failed"] == 0

        keys = {row["session_id"] for row in all_rows(daemon.home / "memq.db")}
        (session,) = keys
        assert session.startswith("gemini-cli:")
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{session}").json()
            observed = client.get(f"/api/sessions/{session}/observations").json()["items"]
            summaries = client.get(f"/api/sessions/{session}/summaries").json()["items"]
        assert [prompt["text"] for prompt in detail["prompts"]] == [PROMPT]
        assert detail["ended_at"] is not None  # SessionEnd came too
        assert [(o["tool_name"], o["title"]) for o in observed] == [("Bash", f"Ran `{COMMAND}`")]
        (summary,) = summaries
        # The transcript's clean text of the turn's last reply, not the CLI's chunk-joined
        # prompt_response (both replies of the turn, its chunks joined with spaces).
        assert summary["completed"] == FINAL
        assert summary["request"] == PROMPT

        seen = len(model.requests)
        second = run_gemini(gemini, SECOND, cwd=project, env=env)
        assert "quay.txt" in second
        asked = [request_text(r) for r in model.requests[seen:] if SECOND in request_text(r)]
        assert asked, "the second session's prompt never reached the model"
        assert "<hook_context>" in asked[0]
        assert "zanzibar" in asked[0].split("<hook_context>", 1)[1]
        assert not api.errors, api.errors
        assert all(path.startswith(f"/v1beta/models/{MODEL}:") for path in api.paths), api.paths
    daemon.wait_idle()
    sessions = {row["session_id"] for row in all_rows(daemon.home / "memq.db")}
    assert len(sessions) == 2
