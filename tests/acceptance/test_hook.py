"""The real ``memq hook`` command, as Claude Code runs it: a fresh process per event."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from memq.env import DEFAULT_SKIP_TOOLS
from tests.acceptance.conftest import FIXTURES, sample, sequence
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import project_env
from tests.helpers.rows import all_rows

MEMQ = Path(sys.executable).with_name("memq")
HEAVY = (
    "anyio",
    "aiosqlite",
    "structlog",
    "starlette",
    "uvicorn",
    "httpx",
    "typing",
    "dataclasses",
    "http.client",
    "subprocess",
    "argparse",
    "hashlib",  # OpenSSL: about 2.5 ms of every hook's start
    "mcp",
    "pydantic",
)


def hook(
    home: Path, port: int, payload: Any, *args: str, **env: str
) -> subprocess.CompletedProcess[bytes]:
    """Run ``memq hook`` with ``payload`` (an object, or raw bytes) on stdin."""
    data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return subprocess.run(
        [str(MEMQ), "hook", *args],
        input=data,
        capture_output=True,
        timeout=30,
        check=False,
        env=project_env({"MEMQ_HOME": str(home), "MEMQ_PORT": str(port), **env}),
    )


def no_spawn(home: Path) -> None:
    """Make the hook believe it started the daemon a moment ago, so it starts none."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "spawn.stamp").write_text("0\n")


def kill_spawned(home: Path) -> None:
    """Stop a daemon a hook started in the background, if any."""
    pidfile = home / "memq.pid"
    deadline = time.monotonic() + 10
    while not pidfile.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    if pidfile.exists():
        pid = json.loads(pidfile.read_text())["pid"]
        os.kill(pid, signal.SIGTERM)
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


class TestWithTheDaemonUp:
    @pytest.mark.parametrize("name", sorted(p.stem for p in FIXTURES.glob("*.json")))
    def test_each_sample_is_delivered_silently(self, daemon: Daemon, name: str) -> None:
        """Exit 0, nothing on stdout or stderr, and the event is in the queue (or skipped)."""
        payload = sample(name)
        result = hook(daemon.home, daemon.port, payload)
        assert result.returncode == 0
        assert result.stderr == b""
        assert result.stdout == b""  # a fresh daemon remembers nothing: no context to print
        rows = all_rows(daemon.home / "memq.db")
        if payload.get("tool_name") in DEFAULT_SKIP_TOOLS:
            assert rows == []
            return
        (row,) = rows
        assert row["session_id"] == f"claude-code:{payload['session_id']}"
        stored = json.loads(row["payload"]) if row["payload"] else None
        if stored is not None:
            assert stored["hook_event_name"] == payload["hook_event_name"]
        assert not (daemon.home / "logs" / "hook.log").exists()

    def test_the_captured_sequence_through_the_hook(self, daemon: Daemon) -> None:
        """Every captured event through the real hook: one session per real session, with
        its prompts, observations and summaries; none for the throw-away ids of events memq
        does not subscribe to. (The fork, which also holds its parent's copies:
        tests/acceptance/test_replay_sequence.py.)"""
        events = sequence()
        for payload in events:
            assert hook(daemon.home, daemon.port, payload).returncode == 0
        daemon.wait_idle()
        with daemon.client() as client:
            for key in {f"claude-code:{p['session_id']}" for p in events}:
                mine = [p for p in events if f"claude-code:{p['session_id']}" == key]
                answer = client.get(f"/api/sessions/{key}")
                if not any(p["hook_event_name"] == "UserPromptSubmit" for p in mine):
                    assert answer.status_code == 404, key
                    continue
                detail = answer.json()
                if detail["parent_key"]:
                    continue
                prompts = [p["prompt"] for p in mine if p["hook_event_name"] == "UserPromptSubmit"]
                assert [p["text"] for p in detail["prompts"]] == prompts
                tools = [
                    p
                    for p in mine
                    if p["hook_event_name"].startswith("PostToolUse")
                    and p.get("tool_name") not in DEFAULT_SKIP_TOOLS
                ]
                observations = client.get(f"/api/sessions/{key}/observations?limit=500")
                assert observations.json()["total"] == len(tools)
                stops = [p for p in mine if p["hook_event_name"] == "Stop"]
                assert client.get(f"/api/sessions/{key}/summaries").json()["total"] == len(stops)

    def test_stop_carries_the_last_prompt_and_reply(self, daemon: Daemon, tmp_path: Path) -> None:
        """The hook adds the transcript's last user prompt; the payload's own last assistant
        message is kept."""
        transcript = tmp_path / "t.jsonl"
        lines = [
            {"type": "user", "message": {"role": "user", "content": "fix the retry logic"}},
            {
                "type": "assistant",
                "message": {"role": "assistant", "content": [{"type": "text", "text": "on it"}]},
            },
        ]
        transcript.write_text("".join(json.dumps(line) + "\n" for line in lines))
        stop = {**sample("Stop"), "transcript_path": str(transcript)}
        assert hook(daemon.home, daemon.port, stop).returncode == 0
        (row,) = all_rows(daemon.home / "memq.db")
        stored = json.loads(row["payload"]) if row["payload"] else None
        if stored is None:  # already processed: the summary carries it
            daemon.wait_idle()
            with daemon.client() as client:
                summary = client.get(f"/api/sessions/{stop['session_id']}/summaries").json()
            assert "fix the retry logic" in json.dumps(summary)
        else:
            assert stored["last_user_prompt"] == "fix the retry logic"
            assert stored["last_assistant_message"] == sample("Stop")["last_assistant_message"]

    def test_private_text_never_leaves_the_hook(self, daemon: Daemon) -> None:
        """A prompt's <private> span is gone before anything is stored."""
        prompt = {**sample("UserPromptSubmit"), "prompt": "deploy <private>pw=hunter2</private>now"}
        assert hook(daemon.home, daemon.port, prompt).returncode == 0
        daemon.wait_idle()
        with daemon.client() as client:
            detail = client.get(f"/api/sessions/{prompt['session_id']}").json()
        assert detail["prompts"][0]["text"] == "deploy now"

    def test_imports_only_the_standard_library(self, daemon: Daemon) -> None:
        """python -X importtime shows none of the daemon's libraries on the hook path."""
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "memq", "hook"],
            input=json.dumps(sample("PostToolUse.Bash")).encode(),
            capture_output=True,
            timeout=30,
            check=True,
            env={**os.environ, "MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)},
        )
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.decode().splitlines()
            if line.startswith("import time:")
        }
        assert "memq.hooks.run" in imported
        assert sorted(m for m in imported if m.split(".")[0] in HEAVY or m in HEAVY) == []
        assert all_rows(daemon.home / "memq.db")

    @pytest.mark.parametrize(
        ("assistant", "fixture"),
        [
            ("claude-code", "claude-code/PostToolUse.Bash.json"),
            ("codex", "codex/PostToolUse.Bash.json"),
            ("gemini-cli", "gemini-cli/AfterTool.run_shell_command.json"),
            ("cursor", "cursor/postToolUse.Shell.json"),
            ("opencode", "opencode/tool.execute.after.bash.json"),
        ],
    )
    def test_no_adapter_brings_a_heavy_import(
        self, daemon: Daemon, assistant: str, fixture: str
    ) -> None:
        """Every module loaded by the time the hook is done, adapters included (loaded
        through importlib, which -X importtime does not list): none of the daemon's."""
        script = (
            "import sys; from memq.cli import main; code = main(sys.argv[1:]); "
            "print(' '.join(sorted(sys.modules)), file=sys.stderr); raise SystemExit(code)"
        )
        result = subprocess.run(
            [sys.executable, "-c", script, "hook", "--assistant", assistant],
            input=(FIXTURES.parent / fixture).read_bytes(),
            capture_output=True,
            timeout=30,
            check=True,
            env={**os.environ, "MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)},
        )
        loaded = set(result.stderr.decode().split())
        assert f"memq.assistants.{assistant.replace('-', '_')}" in loaded
        assert sorted(m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY) == []
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["session_id"].startswith(f"{assistant}:")


class TestWithTheDaemonDown:
    def test_events_go_straight_into_the_queue_and_are_processed_later(
        self, tmp_path: Path
    ) -> None:
        """With no daemon, the hook writes the rows itself (creating MEMQ_HOME and the schema);
        the daemon processes them when it starts; a later HTTP resend is a duplicate."""
        home = tmp_path / "missing" / "home"
        port = free_port()
        no_spawn(home)
        names = ["UserPromptSubmit", "PostToolUse.Bash", "PostToolUseFailure", "Stop"]
        payloads = [sample(name) for name in names]
        payloads[-1]["memq_event_id"] = "stop-1"  # as the hook sent it before timing out
        for payload in payloads:
            result = hook(home, port, payload)
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        rows = all_rows(home / "memq.db")
        assert [r["kind"] for r in rows] == ["prompt", "observation", "observation", "summarize"]
        assert {r["status"] for r in rows} == {"pending"}
        assert "hook.fallback" in (home / "logs" / "hook.log").read_text()

        daemon = Daemon(home, port=port)
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == 4
            with daemon.client() as client:
                for payload, row in zip(payloads[1:], rows[1:], strict=True):
                    again = client.post("/api/events", json=payload)
                    assert again.status_code == 200, payload["hook_event_name"]
                    assert again.json() == {"status": "duplicate", "message_id": row["id"]}
                sid = payloads[0]["session_id"]
                assert client.get(f"/api/sessions/{sid}/observations").json()["total"] == 2
        finally:
            daemon.kill()

    def test_the_hook_starts_the_daemon_in_the_background(self, tmp_path: Path) -> None:
        """The first event with no daemon starts one, without waiting for it."""
        home, port = tmp_path / "home", free_port()
        started = time.monotonic()
        result = hook(home, port, sample("SessionStart"))
        took = time.monotonic() - started
        try:
            assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
            assert took < 5  # it did not wait for the daemon to come up
            Daemon(home, port=port).wait_healthy(20)  # the daemon the hook started answers
            again = hook(home, port, sample("SessionStart"))
            assert (again.returncode, again.stderr) == (0, b"")
        finally:
            kill_spawned(home)

    def test_the_event_argument_overrides_the_payload(self, tmp_path: Path) -> None:
        """``memq hook Stop`` routes as Stop whatever the payload says."""
        home = tmp_path / "home"
        no_spawn(home)
        result = hook(home, free_port(), sample("SessionEnd"), "Stop")
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        (row,) = all_rows(home / "memq.db")
        assert row["kind"] == "summarize"
        assert json.loads(row["payload"])["hook_event_name"] == "Stop"

    def test_disabled_is_a_no_op(self, tmp_path: Path) -> None:
        """MEMQ_DISABLED=1: nothing written, nothing started."""
        home = tmp_path / "home"
        result = hook(home, free_port(), sample("PostToolUse.Bash"), MEMQ_DISABLED="1")
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        assert not home.exists()


class TestNeverBreaksTheAssistant:
    @pytest.mark.parametrize(
        "body",
        [b"", b"not json", b"[1,2]", b'{"hook_event_name": "Stop"}', b"\xff\xfe", b"[" * 9999],
    )
    def test_a_broken_payload_exits_zero_silently_and_is_logged(
        self, tmp_path: Path, body: bytes
    ) -> None:
        """Garbage on stdin: exit 0, no output, a line in hook.log."""
        home = tmp_path / "home"
        result = hook(home, free_port(), body)
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
        assert "hook.failed" in (home / "logs" / "hook.log").read_text()

    def test_an_unwritable_data_dir_exits_zero_silently(self, tmp_path: Path) -> None:
        """When MEMQ_HOME cannot be created (here: under a file), the hook still exits 0."""
        blocker = tmp_path / "file"
        blocker.write_text("x")
        result = hook(blocker / "home", free_port(), sample("PostToolUse.Bash"))
        assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")

    def test_an_oversized_event_is_cut_to_fit_not_lost(self, daemon: Daemon) -> None:
        """A tool output far over the body limit arrives shortened, not refused."""
        big = {**sample("PostToolUse.Bash"), "tool_response": {"stdout": "x" * 3_000_000}}
        assert hook(daemon.home, daemon.port, big).returncode == 0
        (row,) = all_rows(daemon.home / "memq.db")
        assert row["kind"] == "observation"
