"""A daemon that cannot start says why, where ``memq start`` and ``memq status`` show it
(issue 19, item 8), on real processes and files.

Before: ``memq start`` printed the last line of the daemon's stderr, which for an
ExceptionGroup is a bare ``+------`` line; a daemon started by a hook (stderr on /dev/null)
left no reason anywhere; a read-only MEMQ_HOME gave tracebacks and a generic ``hook.failed``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.faults import FaultSkipped
from tests.faults.damaged import payload
from tests.faults.kit import run_hook
from tests.faults.spool import read_only_home
from tests.helpers.daemon import Daemon

DECORATION = ("+--", "| ", "Traceback")


def broken_home(tmp_path: Path) -> Path:
    """A home where the daemon fails inside its task group: the pid file's temporary name
    is taken by a directory, so writing the record raises (in an ExceptionGroup)."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "memq.pid.tmp").mkdir()
    return home


def one_clear_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1, text
    assert not any(mark in text for mark in DECORATION), text
    return lines[0]


def test_start_prints_the_leaf_exception_of_an_exception_group(tmp_path: Path) -> None:
    home = broken_home(tmp_path)
    daemon = Daemon(home)
    started = daemon.memq("start")
    assert started.returncode == 1
    line = one_clear_line(started.stderr)
    assert line.startswith("memq: the daemon could not start: "), line
    assert "Is a directory" in line
    assert str(home / "memq.pid.tmp") in line
    served = daemon.memq("serve", "--quiet")
    assert served.returncode == 1
    assert "Is a directory" in one_clear_line(served.stderr)
    # In the foreground its log is on the console too: still no traceback's frame lines.
    foreground = daemon.memq("serve")
    assert foreground.returncode == 1
    assert not any(mark in foreground.stderr for mark in DECORATION), foreground.stderr
    last = foreground.stderr.strip().splitlines()[-1]
    assert last.startswith("memq: cannot start: Is a directory"), foreground.stderr


def test_status_shows_why_until_a_good_start(tmp_path: Path) -> None:
    home = broken_home(tmp_path)
    daemon = Daemon(home)
    assert daemon.memq("start").returncode == 1
    status = daemon.memq("status")
    assert status.returncode == 1
    assert "the daemon could not start at " in status.stdout
    assert "Is a directory" in status.stdout
    as_json = daemon.memq("status", "--json")
    assert as_json.returncode == 1
    failure = json.loads(as_json.stdout)["startup_error"]
    assert failure["phase"] == "start"
    assert "Is a directory" in failure["reason"]
    (home / "memq.pid.tmp").rmdir()
    assert daemon.memq("start").returncode == 0
    try:
        assert not (home / "logs" / "startup-error.json").exists()
        assert daemon.memq("status").returncode == 0
    finally:
        daemon.memq("stop")
    assert daemon.memq("status").returncode == 0


def test_a_daemon_started_by_a_hook_leaves_its_reason(tmp_path: Path) -> None:
    """The hook starts the daemon with stderr on /dev/null: the reason is recorded."""
    home = broken_home(tmp_path)
    daemon = Daemon(home)
    result = run_hook(home, daemon.port, payload("spawned", 1), spawning=True)
    assert result.returncode == 0
    path = home / "logs" / "startup-error.json"
    deadline = time.monotonic() + 30
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    recorded = json.loads(path.read_text())
    assert recorded["pid"] != os.getpid()
    assert "Is a directory" in recorded["reason"]
    status = daemon.memq("status")
    assert status.returncode == 1
    assert "Is a directory" in status.stdout


@contextmanager
def read_only(home: Path, side: Path) -> Iterator[None]:
    """``home`` read-only (a read-only bind mount as root, else mode 0555), its ``logs``
    still writable: hook.log can say what happened."""
    try:
        with read_only_home(home, home / "logs", side):
            if os.access(home, os.W_OK):
                pytest.skip("this user can write to a read-only directory")
            yield
    except FaultSkipped as why:
        pytest.skip(str(why))


def test_a_read_only_home_is_named_by_start_serve_status_and_the_hook(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "logs").mkdir(mode=0o700)
    daemon = Daemon(home)
    with read_only(home, tmp_path / "side"):
        for command in (("start",), ("serve", "--quiet")):
            result = daemon.memq(*command)
            assert result.returncode == 1, command
            line = one_clear_line(result.stderr)
            assert f"MEMQ_HOME {home}" in line
            assert "read-only" in line
        status = daemon.memq("status")
        assert status.returncode == 1
        assert "read-only" in status.stdout
        assert run_hook(home, daemon.port, payload("read-only", 1)).returncode == 0
        logged = [json.loads(x) for x in (home / "logs" / "hook.log").read_text().splitlines()]
    assert [line for line in logged if line["event"] == "hook.failed"] == []
    said = [line for line in logged if "read-only" in str(line.get("problem", ""))]
    assert said, logged
    assert f"MEMQ_HOME {home}" in said[-1]["problem"]
