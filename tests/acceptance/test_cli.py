"""The daemon's life through the real ``memq`` command."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from pathlib import Path

import httpx

from tests.acceptance.conftest import sample
from tests.helpers.daemon import Daemon


def wait_gone(pid: int, timeout: float = 10) -> bool:
    """Whether ``pid`` has exited (a zombie nobody reaped yet counts as exited)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
            state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
        except (ProcessLookupError, FileNotFoundError):
            return True
        if state == "Z":
            return True
        time.sleep(0.05)
    return False


class TestStartStopStatus:
    def test_start_is_idempotent_status_reports_and_stop_waits(self, tmp_path: Path) -> None:
        """start returns once healthy (and again at once), status shows counts, stop returns
        once the process is gone, and status still reads the database afterwards."""
        daemon = Daemon(tmp_path / "home")
        started = daemon.memq("start")
        assert started.returncode == 0, started.stderr
        assert "started" in started.stdout
        pid = json.loads((daemon.home / "memq.pid").read_text())["pid"]
        try:
            assert httpx.get(f"{daemon.url}/api/health").status_code == 200
            again = daemon.memq("start")
            assert again.returncode == 0
            assert "already running" in again.stdout

            with daemon.client() as client:
                client.post("/api/events", json=sample("PostToolUse.Bash"))
            daemon.wait_idle()
            status = json.loads(daemon.memq("status", "--json").stdout)
            assert status["state"] == "running"
            assert status["pid"] == pid
            assert status["counts"] == {"pending": 0, "processing": 0, "processed": 1, "failed": 0}
            assert status["sessions"][0]["counts"]["processed"] == 1
            assert status["database_bytes"] > 0
            assert (status["has_pending_work"], status["queue_depth"]) == (False, 0)
            assert (status["active_work"], status["processing"]) == (0, False)
            assert status["active_session_count"] == len(status["active_sessions"])
            human = daemon.memq("status").stdout
            assert "memq running" in human
            assert "processed 1" in human
        finally:
            stopped = daemon.memq("stop")
        assert stopped.returncode == 0
        assert f"stopped (pid {pid})" in stopped.stdout
        assert wait_gone(pid, timeout=1)
        assert not (daemon.home / "memq.pid").exists()
        events = [
            json.loads(line)["event"]
            for line in (daemon.home / "logs" / "memq.log").read_text().splitlines()
        ]
        assert events[-1] == "daemon.stopped"  # logged once everything is closed
        assert "queue.closed" in events[events.index("daemon.stopping") :]

        down = json.loads(daemon.memq("status", "--json").stdout)
        assert down["state"] == "stopped"
        assert down["counts"]["processed"] == 1
        assert set(status) - {"active_sessions", "paused", "pause_reason"} <= set(down) | {
            "version",
            "processor",
            "started_at",
            "uptime_seconds",
        }
        assert daemon.memq("stop").stdout.strip() == "memq was not running"

    def test_a_stale_pid_file_does_not_block_a_start(self, tmp_path: Path) -> None:
        """A pid file left by a dead process is ignored."""
        daemon = Daemon(tmp_path / "home")
        daemon.home.mkdir(mode=0o700)
        stale = {"pid": 999_999, "port": daemon.port, "started_at": 0, "version": "0"}
        (daemon.home / "memq.pid").write_text(json.dumps(stale))
        try:
            assert daemon.memq("start").returncode == 0
            assert daemon.memq("status", "--json").stdout.count('"running"') == 1
        finally:
            daemon.memq("stop")

    def test_a_port_held_by_another_program_is_named(self, tmp_path: Path) -> None:
        """The error names the port and the setting that changes it."""
        with socket.socket() as other:
            other.bind(("127.0.0.1", 0))
            other.listen()
            daemon = Daemon(tmp_path / "home", port=other.getsockname()[1])
            result = daemon.memq("serve", "--quiet", timeout=30)
        assert result.returncode == 1
        assert f"port {daemon.port}" in result.stderr
        assert "MEMQ_PORT" in result.stderr

    def test_a_second_daemon_on_the_same_home_says_it_is_running(self, daemon: Daemon) -> None:
        """serve while one runs fails at once with a clear message, not a hang."""
        result = daemon.memq("serve", "--quiet", timeout=30)
        assert result.returncode == 1
        assert "already running" in result.stderr

    def test_a_bad_setting_is_a_usage_error(self, tmp_path: Path) -> None:
        """A broken MEMQ_* value names itself."""
        daemon = Daemon(tmp_path / "home", env={"MEMQ_PORT": "abc"})
        result = daemon.memq("status")
        assert result.returncode == 2
        assert "MEMQ_PORT" in result.stderr


class TestGracefulStop:
    def test_stop_during_processing_leaves_nothing_processing(self, tmp_path: Path) -> None:
        """SIGTERM with a backlog: in-flight messages finish or go back to pending, never
        stuck, and the next start processes the rest."""
        daemon = Daemon(tmp_path / "home", env={"MEMQ_CAPACITY": "1"})
        daemon.start()
        base = sample("PostToolUse.Bash")

        def send(k: int) -> None:
            with daemon.client() as client:
                for i in range(k, 1200, 6):
                    payload = {**base, "session_id": f"s{i % 8}", "tool_use_id": f"t{i}"}
                    assert client.post("/api/events", json=payload).status_code == 202

        threads = [threading.Thread(target=send, args=(k,)) for k in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        with daemon.client() as client:
            backlog = client.get("/api/status").json()["counts"]
        assert backlog["pending"] + backlog["processing"] > 0, "no backlog left to interrupt"
        assert daemon.stop() == 0
        offline = json.loads(daemon.memq("status", "--json").stdout)
        assert offline["counts"]["processing"] == 0
        assert offline["counts"]["failed"] == 0
        assert sum(offline["counts"].values()) == 1200
        daemon.start()
        try:
            assert daemon.wait_idle()["counts"]["processed"] == 1200
        finally:
            daemon.kill()
