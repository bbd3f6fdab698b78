"""A damaged database is found, said and repaired (issue 19, item 3), on real daemons and
real damaged files (the scenarios are ``tests.faults.damaged``'s, which ``scripts/faults``
runs too).

Before: ``memq status`` said "memq stopped" with exit 0, a hook-started daemon died without
a word, a partly damaged database ran on reporting healthy, and there was no ``memq repair``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.faults import damaged
from tests.faults.damaged import DamagedFaultReport
from tests.faults.kit import memq, run_hook
from tests.helpers.daemon import Daemon, free_port, running_daemon

REPAIR_HINT = "memq repair"


def said_damaged(text: str, home: Path) -> bool:
    """Whether ``text`` names the damaged file and the next step."""
    return f"the database {home / 'memq.db'} is damaged" in text and REPAIR_HINT in text


@pytest.mark.parametrize(
    "driver", damaged.SCENARIOS, ids=[driver.__name__ for driver in damaged.SCENARIOS]
)
def test_damage_is_said_repaired_and_nothing_sent_meanwhile_is_lost(
    tmp_path: Path, driver: Callable[[Path], DamagedFaultReport]
) -> None:
    report = driver(tmp_path)
    home = tmp_path / "home"
    assert report.sent == report.acknowledged == damaged.EVENTS_DURING
    assert report.lost == 0, report
    # Said: status and start exit non-zero naming the file and memq repair; a session starts
    # with one line saying so.
    code, text = report.status
    assert code == 1, text
    assert said_damaged(text, home), text
    code, text = report.start
    assert code == 1, text
    assert said_damaged(text, home), text
    lines = report.session_context.splitlines()
    assert len(lines) == 1, lines
    assert "damaged" in lines[0]
    assert "`memq repair`" in lines[0]
    # Repaired: the damaged file kept aside, every readable row saved, the rest counted.
    assert report.repair["outcome"] == "repaired"
    aside = [Path(path) for path in report.repair["kept_aside"]]
    assert aside
    assert all(path.exists() for path in aside)
    assert aside[0].name.startswith("memq.db.damaged-")
    assert oct((home / "memq.db").stat().st_mode & 0o777) == oct(0o600)
    observations = report.repaired("observations")
    queue = report.repaired("pending_messages")
    before = report.rows_before
    if driver is damaged.text_file:
        assert observations["saved"] == 0
        assert observations["lost"] is None
        assert report.search_hits == damaged.EVENTS_DURING  # the spooled events, processed
        return
    lost = report.rows_on_damaged_pages.get("observations", 0)
    assert observations["lost"] == lost
    assert not observations["lost_at_least"]
    assert observations["saved"] == before["observations"] - lost
    # Every queue row: the events before, and those sent meanwhile (with the SessionStart)
    # that the damaged file took; the others were spooled, and the repair took them in.
    assert queue["lost"] == 0
    stored_meanwhile = queue["saved"] - before["pending_messages"]
    assert stored_meanwhile + report.repair["spool"]["taken"] == damaged.EVENTS_DURING + 1
    for table in ("sessions", "prompts", "summaries"):
        assert report.repaired(table)["lost"] == 0
    # Memory is there: search was rebuilt from the saved rows.
    assert report.search_hits == before["observations"] - lost + damaged.EVENTS_DURING


def test_serve_refuses_a_damaged_database_and_says_why(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "memq.db").write_text("not a database\n" * 100)
    daemon = Daemon(home)
    result = daemon.memq("serve", "--quiet", timeout=60)
    assert result.returncode == 1
    assert said_damaged(result.stderr, home), result.stderr
    assert "Traceback" not in result.stderr
    recorded = json.loads((home / "logs" / "startup-error.json").read_text())
    assert recorded["kind"] == "database_damaged"
    assert recorded["database"] == str(home / "memq.db")
    status = daemon.memq("status", "--json")
    assert status.returncode == 1
    body = json.loads(status.stdout)
    assert body["database_check"]["state"] == "damaged"


def test_a_partly_damaged_database_is_not_started_on(tmp_path: Path) -> None:
    """Damaged index pages leave most reads working: the daemon used to start on such a
    file and report healthy. Its check at start finds them."""
    home, port = damaged.ready_home(tmp_path)
    database = home / "memq.db"
    interior, leaves = damaged.btree_pages(database, "observations_session")
    damaged.overwrite_pages(database, interior + leaves, fill="garbage")
    try:
        code, text = memq(home, port, "start", timeout=60)
        assert code == 1
        assert said_damaged(text, home), text
        code, text = memq(home, port, "status")
        assert code == 1
        assert said_damaged(text, home), text
    finally:
        memq(home, port, "stop")


def test_a_hook_started_daemon_says_why_it_did_not_start(tmp_path: Path) -> None:
    """A daemon a hook starts has no terminal: its reason is recorded and status shows it."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "memq.db").write_text("not a database\n" * 100)
    daemon = Daemon(home)
    event = damaged.payload("spawned", 1)
    result = run_hook(home, daemon.port, event, spawning=True)
    assert result.returncode == 0
    assert result.stdout == result.stderr == b""
    reason = wait_for_startup_error(home)
    assert reason["pid"] != os.getpid()
    assert reason["kind"] == "database_damaged"
    status = daemon.memq("status")
    assert status.returncode == 1
    assert said_damaged(status.stdout, home), status.stdout


def test_repair_refuses_while_the_daemon_runs(tmp_path: Path) -> None:
    with running_daemon(tmp_path / "home") as daemon:
        result = daemon.memq("repair")
        assert result.returncode == 1
        assert "memq is running" in result.stderr
        assert "memq stop" in result.stderr
        assert not list(daemon.home.glob("memq.db.damaged-*"))


def test_repair_leaves_a_whole_database_alone(tmp_path: Path) -> None:
    home = tmp_path / "home"
    with running_daemon(home) as daemon:
        with daemon.client() as client:
            client.post("/api/events", json=damaged.payload("whole", 1)).raise_for_status()
        daemon.wait_idle()
        daemon.stop()
        before = (home / "memq.db").read_bytes()
        result = daemon.memq("repair")
        assert result.returncode == 0, result.stderr
        assert "nothing to repair" in result.stdout
        assert (home / "memq.db").read_bytes() == before
        assert not list(home.glob("memq.db.damaged-*"))


def test_a_hook_leaves_the_database_alone_while_a_repair_runs(tmp_path: Path) -> None:
    """While ``memq repair`` replaces the files (its mark names a live process), a hook
    whose daemon does not answer spools its event and does not open the database."""
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    (home / "repairing").write_text(f"{os.getpid()}\n")
    event = damaged.payload("during-repair", 1)
    result = run_hook(home, free_port(), event)
    assert result.returncode == 0
    assert not (home / "memq.db").exists()
    assert len(list((home / "spool").glob("*.event"))) == 1
    logged = [json.loads(line) for line in (home / "logs" / "hook.log").read_text().splitlines()]
    assert logged[-1]["event"] == "hook.spooled"
    assert "memq repair" in logged[-1]["database_error"]


def wait_for_startup_error(home: Path, timeout: float = 30) -> dict[str, object]:
    path = home / "logs" / "startup-error.json"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            try:
                data: dict[str, object] = json.loads(path.read_text())
            except ValueError:
                data = {}
            if data:
                return data
        time.sleep(0.05)
    raise AssertionError(f"no {path} within {timeout} s")
