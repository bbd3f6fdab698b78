"""The real Codex CLI (from npm: ``scripts/_npm.sh`` installs it into ``.cache/npm/codex``)
with memq installed for it by ``memq install --assistant codex``, offline: ``codex exec``
talks to a fake Responses API on loopback whose model runs one shell command, then answers.

memq must store the session (``codex:<id>``), its prompt, the command's observation and the
turn's summary, and give the next session memq's context (the fake model sees it). The hooks
run without ``--dangerously-bypass-hook-trust``: the trust memq wrote into config.toml is
what lets them run. Skips, saying why, without the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from memq.hooks.installers.codex import edit_tables
from tests.helpers.daemon import Daemon
from tests.helpers.fake_responses import FakeResponses, ShellThenAnswer, input_texts
from tests.helpers.npm_cli import cli_binary
from tests.helpers.processes import run_module

pytestmark = pytest.mark.slow

# It fails (exit 2), so that the observation shows the exit code memq read from the session file.
COMMAND = "echo hello > hello.txt && ls missing-file"
ANSWER = "Created hello.txt with the greeting."
PROVIDER = """model = "gpt-fake-1"
model_provider = "fake"
approval_policy = "never"
sandbox_mode = "danger-full-access"

[model_providers.fake]
name = "fake"
base_url = "{url}/v1"
wire_api = "responses"
env_key = "FAKE_OPENAI_API_KEY"
"""


@pytest.fixture(scope="module")
def codex() -> Path:
    return cli_binary("codex", "codex", "MEMQ_CODEX_BIN", "Codex")


@pytest.fixture
def model() -> Iterator[tuple[FakeResponses, ShellThenAnswer]]:
    script = ShellThenAnswer(COMMAND, ANSWER)
    with FakeResponses.running(script) as fake:
        yield fake, script


def run_codex(
    codex: Path, home: Path, project: Path, prompt: str
) -> subprocess.CompletedProcess[str]:
    env = {
        "HOME": str(home),
        "PATH": os.environ["PATH"],  # node, for the npm package's launcher
        "FAKE_OPENAI_API_KEY": "sk-fake",
        "LANG": "C.UTF-8",
    }
    return subprocess.run(
        [str(codex), "exec", "--skip-git-repo-check", prompt],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def session_id(result: subprocess.CompletedProcess[str]) -> str:
    for line in (result.stdout + result.stderr).splitlines():
        if line.startswith("session id: "):
            return line.removeprefix("session id: ").strip()
    raise AssertionError(f"no session id in codex's output:\n{result.stderr[-2000:]}")


def test_codex_sessions_are_remembered_and_the_next_one_is_told(
    codex: Path, tmp_path: Path, model: tuple[FakeResponses, ShellThenAnswer]
) -> None:
    fake, _ = model
    home, project = tmp_path / "home", tmp_path / "project"
    (home / ".codex").mkdir(parents=True)
    project.mkdir()
    (home / ".codex" / "config.toml").write_text(PROVIDER.format(url=fake.url))
    daemon = Daemon(tmp_path / "memq-home", env={"HOME": str(home)})
    daemon.env.pop("CODEX_HOME", None)
    installed = run_module("memq", "install", "--assistant", "codex", env=daemon.env, cwd=project)
    assert installed.returncode == 0, installed.stderr
    assert "--assistant codex" in (home / ".codex" / "hooks.json").read_text()
    daemon.start()
    try:
        first = run_codex(codex, home, project, "create hello.txt")
        assert first.returncode == 0, first.stderr[-3000:]
        assert (project / "hello.txt").read_text() == "hello\n"
        assert "hook: SessionStart" in first.stderr  # the hooks ran, trusted by memq's entries
        key = f"codex:{session_id(first)}"
        daemon.wait_idle(timeout=60)
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{key}")
            assert detail.status_code == 200, detail.text
            prompts = [p["text"] for p in detail.json()["prompts"]]
            observed = client.get(f"/api/sessions/{key}/observations").json()["items"]
            summaries = client.get(f"/api/sessions/{key}/summaries").json()["items"]
        assert prompts == ["create hello.txt"]
        assert [o["title"] for o in observed] == [f"Ran `{COMMAND}` (exit 2)"]
        assert observed[0]["exit_code"] == 2
        assert "missing-file" in observed[0]["excerpt"]
        (summary,) = summaries
        assert summary["request"] == "create hello.txt"
        assert ANSWER in json.dumps(summary)

        seen = len(fake.requests)
        second = run_codex(codex, home, project, "what did we do here?")
        assert second.returncode == 0, second.stderr[-3000:]
        assert session_id(second) != session_id(first)
        opening = "\n".join(input_texts(fake.requests[seen]))
        assert "<memq-context>" in opening, opening[-3000:]
        assert "create hello.txt" in opening
        assert COMMAND in opening
        assert not any(COMMAND in t for t in input_texts(fake.requests[0]))  # memq's, not Codex's
        daemon.wait_idle(timeout=60)
        with daemon.client() as client:
            keys = [s["key"] for s in client.get("/api/sessions").json()["items"]]
        assert sorted(keys) == sorted([key, f"codex:{session_id(second)}"])

        # Without the trust memq recorded, Codex runs none of the hooks: the entries are
        # what made them run.
        config = home / ".codex" / "config.toml"
        state = tomllib.loads(config.read_text())["hooks"]["state"]
        config.write_text(
            edit_tables(
                config.read_text(), dict.fromkeys([("hooks", "state", name) for name in state])
            )
        )
        untrusted = run_codex(codex, home, project, "once more")
        assert untrusted.returncode == 0, untrusted.stderr[-3000:]
        assert "hook: SessionStart" not in untrusted.stderr
        daemon.wait_idle(timeout=60)
        with daemon.client() as client:
            assert len(client.get("/api/sessions").json()["items"]) == 2
    finally:
        daemon.kill()
