"""Secrets never stored: events holding secrets, sent through the real ``memq hook`` with the
daemon up, with it down (the direct write), and through the spool, end in the queue, the
memory records, ``memq export``, the daemon's log and the database file's bytes as markers,
never as themselves. Real processes, real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from memq.redact import BUILT_IN, REDACTED_MARK, Redactor
from tests.helpers.daemon import Daemon, free_port, running_daemon
from tests.helpers.processes import project_env
from tests.helpers.rows import all_rows

MEMQ = Path(sys.executable).with_name("memq")
GITHUB_TOKEN = "ghp_" + "FAKE0fake1FAKE2fake3FAKE4fake5FAKE6f"
STRIPE_KEY = "sk_live_" + "FAKEfake0000EXAMPLE1111fake"
OPENAI_KEY = "sk-proj-" + "FAKEfake0123EXAMPLEexample4567TESTtest89ABabCDcdEFefGHgh"
DB_PASSWORD = "FakePass123"
BEARER = "FAKEopaque0token1for2tests3"
ANTHROPIC_KEY = "sk-ant-api03-" + "FAKE0fake1FAKE2fake3FAKE4fake5FAKE6fake7FAKE8fake9" + "-AA"
SECRETS = (GITHUB_TOKEN, STRIPE_KEY, OPENAI_KEY, DB_PASSWORD, BEARER, ANTHROPIC_KEY)


def session_events(session: str) -> list[dict[str, Any]]:
    """A prompt, a ``cat .env``, a curl with a bearer header and a Stop, each with secrets."""
    base = {"session_id": session, "cwd": "/home/dev/app", "transcript_path": "/nonexistent.jsonl"}
    env_file = (
        f"DATABASE_URL=postgres://app:{DB_PASSWORD}@db.internal:5432/app\n"
        f"STRIPE_SECRET_KEY={STRIPE_KEY}\nOPENAI_API_KEY={OPENAI_KEY}\nDEBUG=true\n"
    )
    return [
        {
            **base,
            "hook_event_name": "UserPromptSubmit",
            "prompt": f"deploy with git push https://{GITHUB_TOKEN}@github.com/acme/app.git",
        },
        {
            **base,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_use_id": f"toolu_{session}_1",
            "tool_input": {"command": "cat .env", "description": "show the settings"},
            "tool_response": {"stdout": env_file, "stderr": "", "interrupted": False},
        },
        {
            **base,
            "hook_event_name": "PostToolUse",
            "tool_name": "Bash",
            "tool_use_id": f"toolu_{session}_2",
            "tool_input": {
                "command": f'curl -H "Authorization: Bearer {BEARER}" https://api.example.com/me'
            },
            "tool_response": {"stdout": '{"login": "dev"}', "stderr": "", "interrupted": False},
        },
        {
            **base,
            "hook_event_name": "Stop",
            "last_user_prompt": "thanks",
            "last_assistant_message": f"Pushed; I exported ANTHROPIC_API_KEY={ANTHROPIC_KEY}.",
        },
    ]


def hook(home: Path, port: int, payload: dict[str, Any], **env: str) -> None:
    """Run the real ``memq hook`` with ``payload``; it must exit 0 and print nothing."""
    done = subprocess.run(
        [str(MEMQ), "hook"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=30,
        check=False,
        env=project_env({"MEMQ_HOME": str(home), "MEMQ_PORT": str(port), **env}),
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, b"", b"")


def no_spawn(home: Path) -> None:
    """Make the hook believe it started the daemon a moment ago, so it starts none."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    (home / "spawn.stamp").write_text("0\n")


def file_bytes(home: Path) -> dict[str, bytes]:
    """Every file under ``home`` (the database and its WAL, the logs, the spool), by name."""
    return {str(p.relative_to(home)): p.read_bytes() for p in home.rglob("*") if p.is_file()}


def assert_nowhere(home: Path, secrets: tuple[str, ...] = SECRETS) -> None:
    """No file in ``home`` holds any of ``secrets``, in any byte."""
    found = [
        (name, secret)
        for name, data in file_bytes(home).items()
        for secret in secrets
        if secret.encode() in data
    ]
    assert found == []


def assert_rows_redacted(home: Path, session: str, count: int, *, processed: bool = False) -> None:
    """The session's queue rows hold markers, not secrets (a processed row may have given
    its payload up already: the database's bytes are checked for those)."""
    rows = [r for r in all_rows(home / "memq.db") if r["session_id"] == f"claude-code:{session}"]
    assert len(rows) == count
    text = "\n".join(r["payload"] or "" for r in rows)
    assert not [secret for secret in SECRETS if secret in text]
    if not processed:
        assert "[redacted:github-token]" in text
        assert "[redacted:stripe-key]" in text
        assert "[redacted:bearer-token]" in text
        assert "[redacted:anthropic-key]" in text


def assert_memory_redacted(daemon: Daemon, session: str) -> None:
    """Processed: the records and ``memq export`` hold markers, not secrets."""
    daemon.wait_idle()
    exported = daemon.memq("export", session)
    assert exported.returncode == 0, exported.stderr
    assert "[redacted:github-token]" in exported.stdout
    assert not [secret for secret in SECRETS if secret in exported.stdout]
    with daemon.client() as client:
        detail = client.get(f"/api/sessions/claude-code:{session}").text
    assert "[redacted:" in detail
    assert not [secret for secret in SECRETS if secret in detail]


class TestThroughTheHook:
    def test_with_the_daemon_up(self, tmp_path: Path) -> None:
        with running_daemon(tmp_path / "home") as daemon:
            for payload in session_events("up"):
                hook(daemon.home, daemon.port, payload)
            assert not (daemon.home / "logs" / "hook.log").exists()
            assert_rows_redacted(daemon.home, "up", 4, processed=True)
            assert_memory_redacted(daemon, "up")
            assert daemon.memq("status").returncode in (0, 1)
        assert_nowhere(daemon.home)

    def test_with_the_daemon_down_the_direct_write_is_redacted(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        no_spawn(home)
        for payload in session_events("down"):
            hook(home, free_port(), payload)
        assert [
            json.loads(line)["event"]
            for line in (home / "logs" / "hook.log").read_text().splitlines()
        ] == ["hook.fallback"] * 4
        assert_rows_redacted(home, "down", 4)
        assert_nowhere(home)
        with running_daemon(home) as daemon:
            assert_memory_redacted(daemon, "down")
        assert_nowhere(home)

    def test_through_the_spool(self, tmp_path: Path) -> None:
        """A database the hook cannot write: the spooled files hold no secret, nor does the
        queue once a daemon took them in."""
        home = tmp_path / "home"
        no_spawn(home)
        (home / "memq.db").write_text("not a database\n")
        for payload in session_events("spooled"):
            hook(home, free_port(), payload)
        spooled = list((home / "spool").glob("*.event"))
        assert len(spooled) == 4
        assert_nowhere(home)
        (home / "memq.db").unlink()
        with running_daemon(home) as daemon:
            assert not list((home / "spool").glob("*.event"))
            assert_rows_redacted(home, "spooled", 4, processed=True)
            assert_memory_redacted(daemon, "spooled")
        assert_nowhere(home)


class TestTheDaemonRedactsToo:
    def test_a_body_posted_without_the_hook(self, tmp_path: Path) -> None:
        """A client other than the hook (or a hook with other settings): the daemon takes
        the secrets out of what it stores, its raw text included."""
        with running_daemon(tmp_path / "home") as daemon, daemon.client() as client:
            for payload in session_events("direct"):
                body = json.dumps(payload, separators=(",", ":"))
                assert client.post("/api/events", content=body).status_code == 202
            assert_rows_redacted(daemon.home, "direct", 4, processed=True)
            assert_memory_redacted(daemon, "direct")
        assert_nowhere(daemon.home)

    def test_a_mark_of_other_rules_is_redacted_again(self, tmp_path: Path) -> None:
        """The hook marks what it redacted with its rules' fingerprint and the daemon skips
        only events with its own: one marked by other rules (a hook with other patterns, an
        older memq), or with a made-up mark, is redacted again."""
        with running_daemon(tmp_path / "home") as daemon, daemon.client() as client:
            for payload in session_events("marked"):
                marked = {**payload, REDACTED_MARK: Redactor(["other"]).fingerprint}
                assert client.post("/api/events", json=marked).status_code == 202
            assert_rows_redacted(daemon.home, "marked", 4, processed=True)
        assert_nowhere(daemon.home)

    def test_the_hooks_own_mark_is_trusted(self, tmp_path: Path) -> None:
        """An event carrying the daemon's own rules' mark is stored as sent: the daemon
        does not walk what the hook already redacted."""
        with running_daemon(tmp_path / "home") as daemon, daemon.client() as client:
            (prompt, *_) = session_events("trusted")
            marked = {**prompt, REDACTED_MARK: BUILT_IN.fingerprint}
            assert client.post("/api/events", json=marked).status_code == 202
        (row,) = all_rows(daemon.home / "memq.db")
        assert GITHUB_TOKEN in row["payload"]


class TestSettings:
    def test_off_stores_what_was_sent(self, tmp_path: Path) -> None:
        """MEMQ_REDACT=off: the hook leaves the event as it came."""
        home = tmp_path / "home"
        no_spawn(home)
        hook(home, free_port(), session_events("off")[0], MEMQ_REDACT="off")
        (row,) = all_rows(home / "memq.db")
        assert GITHUB_TOKEN in row["payload"]

    def test_off_in_the_daemon_stores_what_was_posted(self, tmp_path: Path) -> None:
        """MEMQ_REDACT=off for the daemon: a body posted with a secret keeps it."""
        with running_daemon(tmp_path / "home", env={"MEMQ_REDACT": "off"}) as daemon:
            with daemon.client() as client:
                assert client.post("/api/events", json=session_events("off")[0]).status_code == 202
            daemon.wait_idle()
            assert GITHUB_TOKEN in daemon.memq("export", "off").stdout

    def test_the_users_patterns_from_the_settings_file(self, tmp_path: Path) -> None:
        """``redact_patterns`` in settings.toml: the hook and the daemon both apply it."""
        home = tmp_path / "home"
        home.mkdir(mode=0o700)
        (home / "settings.toml").write_text('redact_patterns = ["ACME-[0-9]{6}"]\n')
        with running_daemon(home) as daemon:
            event = {**session_events("custom")[0], "prompt": "ticket ACME-123456 is done"}
            hook(home, daemon.port, event)
            with daemon.client() as client:
                direct = {**event, "prompt": "and ACME-654321", "memq_event_id": "direct-1"}
                assert client.post("/api/events", json=direct).status_code == 202
            assert len(all_rows(home / "memq.db")) == 2
            daemon.wait_idle()
            exported = daemon.memq("export", "custom").stdout
            assert exported.count("[redacted:custom]") >= 2  # the prompts, and the title
        assert_nowhere(home, ("ACME-123456", "ACME-654321"))

    @pytest.mark.parametrize("value", ["(unclosed"])
    def test_a_bad_pattern_keeps_the_hook_redacting(self, tmp_path: Path, value: str) -> None:
        """The hook cannot use the user's pattern: it logs why and keeps the built-in rules
        (the event is not lost, and its secrets are not stored)."""
        home = tmp_path / "home"
        no_spawn(home)
        hook(home, free_port(), session_events("bad")[0], MEMQ_REDACT_PATTERNS=value)
        (row,) = all_rows(home / "memq.db")
        assert "[redacted:github-token]" in row["payload"]
        problems = [
            json.loads(line) for line in (home / "logs" / "hook.log").read_text().splitlines()
        ]
        assert problems[0]["event"] == "hook.setting_ignored"
        assert "MEMQ_REDACT_PATTERNS" in problems[0]["error"]
        assert "is not a regular expression" in problems[0]["error"]
