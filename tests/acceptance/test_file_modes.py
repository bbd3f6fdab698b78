"""memq's files hold prompts and code: the database and its WAL, the logs and the spool are the
user's alone (0600, their directories 0700), whatever the umask memq was started with; files
an older memq left readable are repaired at start; a home others can write to is refused.

Seen before: memq.db, its -wal and -shm, and the logs were created 0644.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.faults.kit import hook_output, ran_home, run_hook
from tests.faults.planted_files import EVENTS_PER_SCENARIO, event, world_writable_home
from tests.helpers.daemon import Daemon, free_port

REFUSAL = "can be written by other users"


@pytest.fixture(autouse=True)
def usual_umask() -> Iterator[None]:
    """memq's processes start with the umask most systems give (022), as the test's children."""
    old = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def loose_files(home: Path) -> dict[str, str]:
    """Every file or directory under ``home`` that others could read, with its mode."""
    loose: dict[str, str] = {}
    for folder, dirs, files in os.walk(home):
        for name in dirs + files:
            path = Path(folder) / name
            if not path.is_symlink() and mode(path) & 0o077:
                loose[str(path.relative_to(home))] = f"{mode(path):03o}"
    return loose


def test_a_daemon_run_creates_every_file_private(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "home")
    daemon.start()
    try:
        for index in range(3):
            code = run_hook(
                daemon.home, daemon.port, event("modes", index), spawning=True
            ).returncode
            assert code == 0
        daemon.wait_idle()
        present = {path.name for path in daemon.home.iterdir()}
        assert {"memq.db", "memq.db-wal", "memq.db-shm", "token"} <= present
        assert (daemon.home / "logs" / "memq.log").exists()
        assert loose_files(daemon.home) == {}
    finally:
        daemon.stop()
    assert mode(daemon.home) == 0o700
    assert loose_files(daemon.home) == {}


def test_a_hook_fallback_creates_its_files_private(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    code = run_hook(home, free_port(), event("fallback", 0)).returncode
    assert code == 0
    assert (home / "memq.db").exists()
    assert (home / "logs" / "hook.log").exists()  # it says why it fell back
    assert loose_files(home) == {}


def test_the_daemon_repairs_files_an_older_memq_left_readable(tmp_path: Path) -> None:
    daemon = ran_home(tmp_path)
    home = daemon.home
    outside = tmp_path / "outside.log"
    outside.write_text("not memq's\n")
    outside.chmod(0o644)
    (home / "logs" / "linked.log").symlink_to(outside)
    for path in [home / "memq.db", *(home / "logs").iterdir()]:
        if not path.is_symlink():
            path.chmod(0o644)
    (home / "logs").chmod(0o755)
    assert loose_files(home) != {}
    daemon.start()
    try:
        assert loose_files(home) == {}
        assert mode(outside) == 0o644  # a link is not followed
        lines = (home / "logs" / "memq.log").read_text().splitlines()
        repaired = [json.loads(line) for line in lines if "files.made_private" in line]
        assert repaired
        assert str(home / "memq.db") in repaired[-1]["files"]
    finally:
        daemon.stop()


class TestAHomeOthersCanWriteTo:
    @pytest.fixture
    def daemon(self, tmp_path: Path) -> Iterator[Daemon]:
        daemon = ran_home(tmp_path)
        daemon.home.chmod(0o777)
        try:
            yield daemon
        finally:
            daemon.home.chmod(0o700)

    @pytest.mark.parametrize(
        "command", [("start",), ("serve", "--quiet"), ("status",), ("search", "x")]
    )
    def test_the_cli_refuses_with_the_fix(self, daemon: Daemon, command: tuple[str, ...]) -> None:
        done = daemon.memq(*command, timeout=30)
        assert done.returncode != 0
        assert REFUSAL in done.stderr
        assert f"chmod 700 {daemon.home}" in done.stderr
        assert not (daemon.home / "memq.pid").exists()

    def test_hooks_write_nothing_there_and_send_nothing(self, tmp_path: Path) -> None:
        report = world_writable_home(tmp_path)
        assert report.sent == EVENTS_PER_SCENARIO
        assert report.written == ()
        assert report.requests == 0
        assert report.lost == 0

    def test_a_session_start_says_why(self, daemon: Daemon) -> None:
        payload = {"hook_event_name": "SessionStart", "session_id": "s", "source": "startup"}
        done = run_hook(daemon.home, daemon.port, payload, spawning=True)
        code, printed = done.returncode, hook_output(done)
        assert code == 0
        assert REFUSAL in printed
        assert "chmod 700" in printed
        assert not (daemon.home / "logs" / "hook.log").exists()
