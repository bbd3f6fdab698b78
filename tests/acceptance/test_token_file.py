"""A token file that is not memq's own: never followed, never sent, never quoted, its target
left alone; and the events of the meantime kept.

Seen before: with MEMQ_HOME/token a symlink to another file, the daemon chmodded the target
to 0600, ``memq status`` printed the target's contents in a traceback, and ``memq hook`` sent
them in its Authorization header to whatever listened on MEMQ_PORT.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

import pytest

from tests.faults.kit import hook_output, ran_home, run_hook
from tests.faults.planted_files import (
    SECRET_MODE,
    TOKEN_SHAPED_SECRET,
    event,
    plant_token_link,
    planted_token_symlink,
    target_unchanged,
)
from tests.helpers.daemon import Daemon
from tests.helpers.listener import recording_listener

# Prose with a newline: a header cannot carry it, so the old CLI failed with it in a traceback.
PROSE_SECRET = "my ssh passphrase is hunter2\nand the bank pin 1234\n"


@pytest.fixture
def planted(tmp_path: Path, request: pytest.FixtureRequest) -> tuple[Daemon, Path, str]:
    """A home a daemon ran in, its token now a link to another file (the param's text)."""
    daemon = ran_home(tmp_path)
    target = tmp_path / "elsewhere"
    contents: str = request.param
    plant_token_link(daemon.home, target, contents)
    return daemon, target, contents


SECRETS = pytest.mark.parametrize(
    "planted", [TOKEN_SHAPED_SECRET, PROSE_SECRET], ids=["token-shaped", "prose"], indirect=True
)


def test_hooks_send_nothing_and_every_event_is_kept(tmp_path: Path) -> None:
    report = planted_token_symlink(tmp_path)
    assert report.acknowledged == report.sent
    assert report.lost == 0
    assert report.leaks == 0
    assert report.requests == 0  # the hook stores the event itself instead
    assert not report.target_changed


@SECRETS
def test_the_hook_says_why_in_its_log_without_quoting(planted: tuple[Daemon, Path, str]) -> None:
    daemon, target, contents = planted
    with recording_listener(daemon.port) as listener:
        done = run_hook(daemon.home, daemon.port, event("log", 0))
        received = listener.received()
    code, printed = done.returncode, hook_output(done)
    assert code == 0
    assert printed == ""
    assert contents.encode() not in received
    log = (daemon.home / "logs" / "hook.log").read_text()
    assert "symbolic link" in log
    assert "hunter2" not in log
    assert TOKEN_SHAPED_SECRET not in log
    assert target_unchanged(target, contents)


def assert_refused_unquoted(done: subprocess.CompletedProcess[str], contents: str) -> None:
    output = done.stdout + done.stderr
    assert done.returncode != 0, output
    assert "symbolic link" in output
    assert "Traceback" not in output
    assert contents.strip() not in output
    assert "hunter2" not in output


@SECRETS
def test_the_cli_refuses_with_the_reason_and_sends_nothing(
    planted: tuple[Daemon, Path, str],
) -> None:
    """Whatever listens on the port is asked nothing: the token is refused first."""
    daemon, target, contents = planted
    with recording_listener(daemon.port) as listener:
        for command in (("search", "anything"), ("failed",), ("context", "--cwd", "/p")):
            assert_refused_unquoted(daemon.memq(*command), contents)
        received = listener.received()
    assert received == b""
    assert target_unchanged(target, contents)


@SECRETS
def test_status_of_a_running_daemon_whose_token_was_replaced(
    tmp_path: Path, request: pytest.FixtureRequest, planted: tuple[Daemon, Path, str]
) -> None:
    """The issue's case: the daemon runs, its token becomes a link, ``memq status``."""
    daemon, target, contents = planted
    (daemon.home / "token").unlink()
    daemon.start()  # a new token of its own
    try:
        (daemon.home / "token").unlink()
        (daemon.home / "token").symlink_to(target)
        assert_refused_unquoted(daemon.memq("status"), contents)
    finally:
        daemon.kill()
    assert target_unchanged(target, contents)


@SECRETS
def test_the_daemon_refuses_to_start_and_leaves_the_target_alone(
    planted: tuple[Daemon, Path, str],
) -> None:
    daemon, target, contents = planted
    done = daemon.memq("serve", "--quiet", timeout=30)
    assert done.returncode != 0
    assert "symbolic link" in done.stderr
    assert "hunter2" not in done.stderr
    assert TOKEN_SHAPED_SECRET not in done.stderr
    assert stat.S_IMODE(target.stat().st_mode) == SECRET_MODE
    assert target_unchanged(target, contents)


def test_a_token_file_of_the_wrong_shape_is_neither_sent_nor_quoted(tmp_path: Path) -> None:
    """A regular file at the token's path holding something else (a person pasted a note
    there): the hook falls back and the CLI says the file holds no token."""
    daemon = ran_home(tmp_path)
    token = daemon.home / "token"
    token.write_text(PROSE_SECRET)
    with recording_listener(daemon.port) as listener:
        hooked = run_hook(daemon.home, daemon.port, event("shape", 0))
        done = daemon.memq("search", "anything")
        received = listener.received()
    code, printed = hooked.returncode, hook_output(hooked)
    assert code == 0
    assert printed == ""
    assert b"hunter2" not in received
    assert done.returncode != 0
    assert "does not hold a memq token" in done.stderr
    assert "hunter2" not in done.stdout + done.stderr
    assert token.read_text() == PROSE_SECRET  # left for the person to look at
