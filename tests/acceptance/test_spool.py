"""Issue 19.1: an event neither the daemon nor the database takes goes to the spool, and the
daemon takes it in, once. Real ``memq hook`` processes, real daemons, real broken files."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from memq.events import route_event
from memq.hooks import spool
from memq.storage import schema
from tests.faults import FaultSkipped
from tests.faults.kit import daemon_log, keep_hooks_from_spawning, run_hook
from tests.faults.spool import (
    HOOK_WORST_CASE_SECONDS,
    SCENARIOS,
    SpoolFaultReport,
    event,
    stored_counts,
)
from tests.helpers.daemon import Daemon


def spool_by_hand(home: Path, payload: dict[str, Any]) -> str:
    """Put ``payload`` in the spool as a hook would (its route, its compact JSON body)."""
    route = route_event(payload)
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
    return spool.write_event(str(home), route, body, now_ms=time.time_ns() // 1_000_000)


def taken_in(home: Path) -> list[dict[str, Any]]:
    """The daemon's ``spool.taken_in`` log lines so far."""
    return [line for line in daemon_log(home) if line["event"] == "spool.taken_in"]


def wait_for(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        time.sleep(0.05)


class TestFaultsEndInTheSpool:
    @pytest.mark.parametrize("driver", SCENARIOS, ids=lambda driver: driver.__name__)
    def test_every_acknowledged_event_is_kept_and_no_hook_waits_long(
        self, tmp_path: Path, driver: Callable[[Path], SpoolFaultReport]
    ) -> None:
        """Each hook exits 0 having put its event in the spool (the database could not take
        it), within the bound; after the fault a daemon takes every event in, once."""
        try:
            report = driver(tmp_path)
        except FaultSkipped as why:
            pytest.skip(str(why))
        assert report.acknowledged == report.sent
        assert report.spooled == report.sent, report
        assert report.lost == 0, report
        assert report.worst_hook_seconds < HOOK_WORST_CASE_SECONDS, report.hook_seconds
        if driver.__name__ != "read_only_database_dir":  # there, hook.log cannot be written
            assert set(report.hook_log) == {"hook.spooled"}, report.hook_log


class TestIntake:
    def test_the_daemon_takes_the_spool_in_while_it_runs(self, tmp_path: Path) -> None:
        """A file that appears while the daemon runs is in the queue within a couple of
        seconds, and its file is gone; the log says so."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            assert (daemon.home / "spool").stat().st_mode & 0o777 == 0o700
            payload = event("running", 1)
            spool_by_hand(daemon.home, payload)
            wait_for(lambda: not list((daemon.home / "spool").glob("*.event")))
            assert stored_counts(daemon.home / "memq.db", ["tool:running-1"]) == {
                "tool:running-1": 1
            }
            wait_for(lambda: taken_in(daemon.home) != [])
            assert [line["count"] for line in taken_in(daemon.home)] == [1]
        finally:
            daemon.kill()

    def test_an_event_in_both_the_database_and_the_spool_is_stored_once(
        self, tmp_path: Path
    ) -> None:
        """The daemon stored the event (the hook's answer came too late, say) and the spool
        has it too: one row, and the file is gone."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            payload = event("both", 1)
            code = run_hook(daemon.home, daemon.port, payload).returncode
            assert code == 0
            assert stored_counts(daemon.home / "memq.db", ["tool:both-1"]) == {"tool:both-1": 1}
            spool_by_hand(daemon.home, {**payload, "memq_event_id": "x"})
            wait_for(lambda: not list((daemon.home / "spool").glob("*.event")))
            assert stored_counts(daemon.home / "memq.db", ["tool:both-1"]) == {"tool:both-1": 1}
            # The file goes once its event committed; the log line comes just after.
            wait_for(lambda: taken_in(daemon.home) != [])
            taken = taken_in(daemon.home)
            assert [(line["count"], line["duplicates"]) for line in taken] == [(0, 1)]
        finally:
            daemon.kill()

    def test_a_file_that_cannot_be_parsed_is_kept_aside_and_logged(self, tmp_path: Path) -> None:
        """Never deleted: moved to spool/rejected, logged as spool.rejected, counted by
        ``memq status`` (from the daemon); the good file next to it is taken in."""
        daemon = Daemon(tmp_path / "home")
        daemon.start()
        try:
            bad = daemon.home / "spool" / "0000000000001-1-bad.event"
            bad.write_bytes(b'{"memq_spool": 1, "half a header')
            spool_by_hand(daemon.home, event("beside-bad", 1))
            rejected = daemon.home / "spool" / "rejected" / bad.name
            wait_for(lambda: rejected.exists() and not bad.exists())
            wait_for(lambda: not list((daemon.home / "spool").glob("*.event")))
            assert rejected.read_bytes() == b'{"memq_spool": 1, "half a header'
            assert stored_counts(daemon.home / "memq.db", ["tool:beside-bad-1"]) == {
                "tool:beside-bad-1": 1
            }
            (line,) = [x for x in daemon_log(daemon.home) if x["event"] == "spool.rejected"]
            assert line["file"] == bad.name
            assert "header" in line["reason"]
            with daemon.client() as client:
                assert client.get("/api/status").json()["spool"] == {"waiting": 0, "rejected": 1}
            text = daemon.memq("status")
            assert text.returncode == 0, text.stdout
            assert "1 file(s) could not be taken in" in text.stdout
        finally:
            daemon.kill()


class TestStatus:
    def test_waiting_events_with_no_daemon_make_status_fail_until_memq_start(
        self, tmp_path: Path
    ) -> None:
        """Counted directly with the daemon down (exit 1, naming ``memq start``), by the
        daemon once it runs (nothing waits: exit 0)."""
        daemon = Daemon(tmp_path / "home")
        for index in range(3):
            spool_by_hand(daemon.home, event("status", index))
        down = daemon.memq("status")
        assert down.returncode == 1, down.stdout + down.stderr
        assert f"3 events waiting in {daemon.home}/spool: memq start takes them in" in down.stdout
        as_json = daemon.memq("status", "--json")
        assert as_json.returncode == 1
        assert json.loads(as_json.stdout)["spool"] == {"waiting": 3, "rejected": 0}
        daemon.start()
        try:
            up = daemon.memq("status", "--json")
            assert up.returncode == 0, up.stdout + up.stderr
            body = json.loads(up.stdout)
            assert body["state"] == "running"
            assert body["spool"] == {"waiting": 0, "rejected": 0}
            keys = [f"tool:status-{index}" for index in range(3)]
            assert stored_counts(daemon.home / "memq.db", keys) == dict.fromkeys(keys, 1)
            assert "waiting in" not in daemon.memq("status").stdout
        finally:
            daemon.kill()
        after = daemon.memq("status")
        assert after.returncode == 0, after.stdout


class TestBadSettingValues:
    @pytest.mark.parametrize("where", ["environment", "settings file"])
    def test_a_port_that_is_no_number_costs_no_event(self, tmp_path: Path, where: str) -> None:
        """``MEMQ_PORT=abc`` or ``port = "abc"``: the hook uses the default port, logs the
        value it could not use, and the event is stored (the default port's listener, if
        any, is not this home's daemon: its token is refused and the hook writes directly)."""
        home = tmp_path / "home"
        home.mkdir(mode=0o700)
        keep_hooks_from_spawning(home)
        if where == "environment":
            port = "abc"
        else:
            (home / "settings.toml").write_text('port = "abc"\n')
            port = ""
        payload = event("bad-port", 1)
        result = run_hook(home, port, payload)
        assert result.returncode == 0
        assert result.stdout == result.stderr == b""
        stored = stored_counts(home / "memq.db", ["tool:bad-port-1"])["tool:bad-port-1"]
        spooled = len(list((home / "spool").glob("*.event"))) if (home / "spool").exists() else 0
        assert stored + spooled == 1
        lines = [json.loads(x) for x in (home / "logs" / "hook.log").read_text().splitlines()]
        ignored = [line for line in lines if line["event"] == "hook.setting_ignored"]
        assert len(ignored) == 1
        assert "abc" in ignored[0]["error"]
        assert not [line for line in lines if line["event"] == "hook.failed"]


class TestOlderSchema:
    def test_the_hook_leaves_an_upgrade_to_the_daemon(self, tmp_path: Path) -> None:
        """A database an older memq made, no daemon: the hook does not run the upgrade (it
        may rebuild an index for seconds) but spools the event; the daemon upgrades the
        database at its start and takes the event in."""
        daemon = Daemon(tmp_path / "home")
        daemon.home.mkdir(mode=0o700)
        database = daemon.home / "memq.db"
        older = schema.available_migrations()[:-1]
        with sqlite3.connect(database, isolation_level=None) as conn:
            schema.migrate(conn, older)
        payload = event("older", 1)
        done = run_hook(daemon.home, daemon.port, payload)
        assert done.returncode == 0, done.stderr
        with sqlite3.connect(database) as conn:
            assert schema.current_version(conn) == older[-1].version
            assert conn.execute("SELECT count(*) FROM pending_messages").fetchone() == (0,)
        assert len(list((daemon.home / "spool").glob("*.event"))) == 1
        daemon.start()
        try:
            wait_for(lambda: not list((daemon.home / "spool").glob("*.event")))
            with sqlite3.connect(database) as conn:
                assert schema.current_version(conn) == schema.available_migrations()[-1].version
                (keys,) = conn.execute("SELECT group_concat(dedupe_key) FROM pending_messages")
            assert keys == ("tool:older-1",)
        finally:
            daemon.kill()
