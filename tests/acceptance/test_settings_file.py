"""MEMQ_HOME/settings.toml through the real CLI, hook and daemon.

``memq install`` run from a shell with MEMQ_HOME and MEMQ_PORT must leave a hook that finds
that home and port when the assistant starts it from an environment without them; the daemon
and the CLI read the file too; ``memq status`` says where each setting came from; and a
command refuses only a bad setting it uses, naming it and where it was set.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.acceptance.test_hook import kill_spawned, no_spawn
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.processes import PROJECT_ROOT
from tests.helpers.rows import all_rows

HEAVY = ("typing", "dataclasses", "tomllib", "anyio", "httpx", "argparse", "subprocess")


def clean_env(user: Path, **variables: str) -> dict[str, str]:
    """This process's environment without any MEMQ_* variable, with ``user`` as HOME (so
    neither the real ~/.memq nor ~/.claude is touched), plus ``variables``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("MEMQ_")}
    return {**env, "HOME": str(user), "PYTHONPATH": str(PROJECT_ROOT), **variables}


def memq(
    env: dict[str, str], *args: str, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``memq`` CLI with exactly ``env``."""
    return subprocess.run(
        [sys.executable, "-m", "memq", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def installed_command(user: Path) -> str:
    """The one hook command memq installed into ``user``'s Claude Code settings."""
    settings = json.loads((user / ".claude" / "settings.json").read_text())
    commands = {
        entry["command"]
        for groups in settings["hooks"].values()
        for group in groups
        for entry in group["hooks"]
    }
    assert len(commands) == 1, commands
    return str(commands.pop())


def run_as_claude_code(
    command: str, env: dict[str, str], payload: dict[str, Any], cwd: Path
) -> subprocess.CompletedProcess[str]:
    """Run a hook command as Claude Code does: through ``sh -c``, the payload on stdin."""
    return subprocess.run(
        ["/bin/sh", "-c", command],
        input=json.dumps(payload),
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def prompt(session: str, text: str, cwd: Path) -> dict[str, Any]:
    return {
        "session_id": session,
        "transcript_path": str(cwd / "transcript.jsonl"),
        "cwd": str(cwd),
        "hook_event_name": "UserPromptSubmit",
        "prompt": text,
    }


class TestInstallRecordsWhereMemqLives:
    def test_the_hook_finds_the_home_and_port_without_memq_home(self, tmp_path: Path) -> None:
        """Installed from a shell with MEMQ_HOME and MEMQ_PORT, the hook run from an
        environment without them stores the event in that home, starts the daemon there on
        that port, then delivers to it; no second home (or daemon) appears in ~/.memq."""
        user, project = tmp_path / "user", tmp_path / "project"
        user.mkdir()
        project.mkdir()
        home, port = tmp_path / "memq data", free_port()
        shell = clean_env(user, MEMQ_HOME=str(home), MEMQ_PORT=str(port), MEMQ_LINGER="0.2")
        claude_code = clean_env(user)  # started from the desktop: no MEMQ_* at all
        try:
            installed = memq(shell, "install", cwd=project)
            assert installed.returncode == 0, installed.stderr
            command = installed_command(user)

            first = run_as_claude_code(
                command, claude_code, prompt("s1", "first", project), project
            )
            assert (first.returncode, first.stdout, first.stderr) == (0, "", "")
            assert [row["session_id"] for row in all_rows(home / "memq.db")] == ["claude-code:s1"]
            daemon = Daemon(home, port=port)  # the one the hook started, on the recorded port
            daemon.wait_healthy()

            second = run_as_claude_code(
                command, claude_code, prompt("s1", "second", project), project
            )
            assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
            daemon.wait_idle()
            with daemon.client() as client:
                detail = client.get("/api/sessions/claude-code:s1").json()
            assert [p["text"] for p in detail["prompts"]] == ["first", "second"]
            fallbacks = (home / "logs" / "hook.log").read_text().count("hook.fallback")
            assert fallbacks == 1  # the second event went over HTTP
            assert not (user / ".memq").exists()
            record = json.loads((home / "memq.pid").read_text())
            assert record["port"] == port
            assert command.startswith("MEMQ_HOME=")  # the home in the command, the port in the file
            assert "port = " in installed.stdout
            assert "port = " in (home / "settings.toml").read_text()
        finally:
            memq(shell, "stop")
            if (user / ".memq").exists():  # a hook that missed the home started one there
                kill_spawned(user / ".memq")

    def test_a_bad_variable_installs_nothing(self, tmp_path: Path) -> None:
        """Install would record MEMQ_LINGER=-1 for every session: it refuses, and says which."""
        home = tmp_path / "home"
        env = clean_env(tmp_path, MEMQ_HOME=str(home), MEMQ_LINGER="-1")
        result = memq(env, "install", cwd=tmp_path)
        assert result.returncode == 2
        assert "MEMQ_LINGER=-1 must be a finite non-negative number" in result.stderr
        assert "(set in the environment)" in result.stderr
        assert not (tmp_path / ".claude").exists()
        assert not home.exists()

    def test_the_default_home_needs_no_memq_home(self, tmp_path: Path) -> None:
        """Installed for ~/.memq, the command is as before, and no settings file is made."""
        result = memq(clean_env(tmp_path), "install", cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert not installed_command(tmp_path).startswith("MEMQ_HOME=")
        assert not (tmp_path / ".memq").exists()


class TestStatusSaysWhereSettingsCameFrom:
    def test_default_file_and_environment(self, tmp_path: Path) -> None:
        """status --json: a value and a source per setting, as this command sees them while
        no daemon runs, and as the daemon started with them once one does."""
        home, port = tmp_path / "home", free_port()
        env = clean_env(tmp_path, MEMQ_HOME=str(home))
        assert memq(env, "config", "--global", "port", str(port)).returncode == 0
        assert memq(env, "config", "--global", "linger", "0.2").returncode == 0
        shell = {**env, "MEMQ_LINGER": "0.3"}
        try:
            stopped = json.loads(memq(shell, "status", "--json").stdout)
            assert stopped["settings_view"] == "cli"
            assert stopped["settings_file"] == str(home / "settings.toml")
            settings = stopped["settings"]
            assert settings["port"] == {
                "value": port,
                "source": "settings file",
                "variable": "MEMQ_PORT",
            }
            assert settings["linger"] == {
                "value": 0.3,
                "source": "environment",
                "variable": "MEMQ_LINGER",
            }
            assert settings["capacity"]["source"] == "default"
            assert settings["home"]["source"] == "environment"

            started = memq(shell, "start")
            assert started.returncode == 0, started.stderr
            assert f"127.0.0.1:{port}" in started.stdout  # the port from the file
            running = json.loads(memq(env, "status", "--json").stdout)
            assert (running["state"], running["port"]) == ("running", port)
            assert running["settings_view"] == "daemon"
            assert running["settings"]["linger"]["value"] == 0.3  # the daemon's, not this one's

            changed = memq(env, "config", "--global", "capacity", "2")
            assert "the running daemon read its settings when it started" in changed.stdout
            hook_only = memq(env, "config", "--global", "hook_timeout", "0.8")
            assert "running daemon" not in hook_only.stdout  # the hook reads it every time

            text = memq(env, "status").stdout
            assert "as the daemon runs with them" in text
            assert "environment (MEMQ_LINGER)" in text
            assert any(
                line.split()[:3] == ["port", str(port), "settings"] for line in text.splitlines()
            )
        finally:
            memq(env, "stop")


class TestACommandChecksOnlyWhatItUses:
    def test_status_runs_despite_a_bad_linger_and_shows_it(self, tmp_path: Path) -> None:
        env = clean_env(tmp_path, MEMQ_HOME=str(tmp_path / "home"), MEMQ_LINGER="-1")
        result = memq(env, "status")
        assert result.returncode == 0, result.stderr
        assert "not usable: MEMQ_LINGER=-1 must be a finite" in result.stdout
        assert json.loads(memq(env, "status", "--json").stdout)["counts"]["pending"] == 0

    def test_the_daemon_refuses_it_naming_variable_and_source(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        env = clean_env(tmp_path, MEMQ_HOME=str(home), MEMQ_PORT=str(free_port()))
        from_env = memq({**env, "MEMQ_LINGER": "-1"}, "serve", "--quiet")
        assert from_env.returncode == 2
        assert "MEMQ_LINGER=-1 must be a finite non-negative number (set in the environment)" in (
            from_env.stderr
        )

        home.mkdir()
        (home / "settings.toml").write_text("linger = -1\n")
        from_file = memq(env, "serve", "--quiet")
        assert from_file.returncode == 2
        assert (
            f"linger = -1 must be a finite non-negative number (set in {home}/settings.toml)"
            in (from_file.stderr)
        )

    def test_a_bad_port_stops_what_needs_the_port(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        (home / "settings.toml").write_text("port = 'abc'\n")
        result = memq(clean_env(tmp_path, MEMQ_HOME=str(home)), "status")
        assert result.returncode == 2
        assert f"port = 'abc' is not a whole number (set in {home}/settings.toml)" in result.stderr


class TestConfigGlobal:
    def test_set_show_refuse_and_unset(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        path = home / "settings.toml"
        env = clean_env(tmp_path, MEMQ_HOME=str(home))

        result = memq(env, "config", "--global", "linger", "2.5")
        assert result.returncode == 0, result.stderr
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert stat.S_IMODE(home.stat().st_mode) == 0o700
        assert "linger = 2.5" in path.read_text()
        assert memq(env, "config", "--global", "linger").stdout.strip() == (
            "linger = 2.5  (settings file)"
        )
        before = path.read_bytes()

        unknown = memq(env, "config", "--global", "lingr", "3")
        assert unknown.returncode == 2
        assert "no setting is called 'lingr' (known: port, processor," in unknown.stderr
        bad = memq(env, "config", "--global", "linger", "-1")
        assert bad.returncode == 2
        assert "linger = -1 must be a finite non-negative number" in bad.stderr
        home_key = memq(env, "config", "--global", "home", "/elsewhere")
        assert home_key.returncode == 2
        assert "set MEMQ_HOME" in home_key.stderr
        assert path.read_bytes() == before

        overridden = memq({**env, "MEMQ_LINGER": "1"}, "config", "--global", "linger", "3")
        assert overridden.returncode == 0
        assert "MEMQ_LINGER is set in this environment and overrides it" in overridden.stdout
        shown = json.loads(memq(env, "config", "--global", "linger", "--json").stdout)
        assert shown == {
            "name": "linger",
            "value": 3.0,
            "source": "settings file",
            "variable": "MEMQ_LINGER",
        }

        removed = memq(env, "config", "--global", "linger", "--unset")
        assert removed.returncode == 0
        assert "now 5.0 (default)" in removed.stdout
        assert "linger" not in path.read_text()
        every = json.loads(memq(env, "config", "--global", "--json").stdout)
        assert every["file"] == str(path)
        assert every["settings"]["linger"]["source"] == "default"

    def test_a_stray_key_warns_and_can_be_removed(self, tmp_path: Path) -> None:
        home = tmp_path / "home"
        home.mkdir()
        (home / "settings.toml").write_text("prot = 40000\n")
        env = clean_env(tmp_path, MEMQ_HOME=str(home))
        status = memq(env, "status")
        assert status.returncode == 0
        assert "warning:" in status.stderr
        assert "no setting is called prot" in status.stderr
        removed = memq(env, "config", "--global", "prot", "--unset")
        assert removed.returncode == 0, removed.stderr
        assert "warning" not in memq(env, "status").stderr

    def test_session_config_is_still_a_session_command(self, tmp_path: Path) -> None:
        """Without --global, config is about a session, and needs one."""
        env = clean_env(tmp_path, MEMQ_HOME=str(tmp_path / "home"), MEMQ_PORT=str(free_port()))
        missing = memq(env, "config")
        assert missing.returncode == 2
        assert "config needs a SESSION" in missing.stderr
        session = memq(env, "config", "some-session", "paused", "true")
        assert session.returncode == 1
        assert "daemon" in session.stderr  # it went to the session API, which is down
        assert not (tmp_path / "home" / "settings.toml").exists()


class TestTheHookAndTheFile:
    def test_an_unchanged_file_costs_the_hook_no_toml_parser(self, tmp_path: Path) -> None:
        """After `memq config --global`, the hook reads the file's cache: none of the heavier
        modules (tomllib and the typing it pulls in) on its path."""
        home, port = tmp_path / "home", free_port()
        env = clean_env(tmp_path, MEMQ_HOME=str(home))
        assert memq(env, "config", "--global", "port", str(port)).returncode == 0
        no_spawn(home)  # the fallback writes, and starts no daemon
        result = subprocess.run(
            [sys.executable, "-X", "importtime", "-m", "memq", "hook"],
            input=json.dumps(prompt("s2", "cached", tmp_path)).encode(),
            env=env,
            capture_output=True,
            timeout=30,
            check=True,
        )
        imported = {
            line.rsplit("|", 1)[-1].strip()
            for line in result.stderr.decode().splitlines()
            if line.startswith("import time:")
        }
        assert "memq.hooks.run" in imported
        assert sorted(m for m in imported if m.split(".")[0] in HEAVY) == []
        assert [row["session_id"] for row in all_rows(home / "memq.db")] == ["claude-code:s2"]

    def test_a_broken_file_loses_no_event(self, tmp_path: Path) -> None:
        """A settings file that is not TOML: the hook still stores the event in the home, by
        the environment's settings, and says why in hook.log."""
        home = tmp_path / "home"
        home.mkdir()
        (home / "settings.toml").write_text("port = \n")
        no_spawn(home)
        env = clean_env(tmp_path, MEMQ_HOME=str(home), MEMQ_PORT=str(free_port()))
        command = f"{shlex.quote(sys.executable)} -m memq hook"
        result = run_as_claude_code(command, env, prompt("s3", "x", tmp_path), tmp_path)
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
        assert [row["session_id"] for row in all_rows(home / "memq.db")] == ["claude-code:s3"]
        log = (home / "logs" / "hook.log").read_text()
        assert "hook.settings_file" in log
        assert "not valid TOML" in log
        assert "hook.fallback" in log
        status = memq(env, "status")
        assert status.returncode == 2
        assert "not valid TOML" in status.stderr
