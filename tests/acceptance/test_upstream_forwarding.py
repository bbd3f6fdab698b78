"""Forwarding to a team server, end to end: the real ``memq serve`` and ``memq hook`` against
a stand-in of the team server's intake on loopback (``tests.helpers.fake_team``), with the
server stopped for a while, the daemon stopped (the hook then writes the database itself),
and an answer lost: every event reaches the server once, in order."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.daemon import Daemon, free_port
from tests.helpers.fake_team import KEY, TeamIntake, TeamServer
from tests.helpers.processes import project_env

MEMQ = Path(sys.executable).with_name("memq")


def repository(root: Path, name: str, remote: str | None) -> Path:
    directory = root / name
    (directory / ".git").mkdir(parents=True)
    config = "[core]\n\tbare = false\n"
    if remote is not None:
        config += f'[remote "origin"]\n\turl = {remote}\n'
    (directory / ".git" / "config").write_text(config)
    return directory


def hook(daemon: Daemon, session: str, n: int, cwd: Path, *, output: str | None = None) -> None:
    """``memq hook`` with one Bash PostToolUse of ``session`` (its output ``output``, else
    the number), as Claude Code runs it."""
    payload = {
        "session_id": session,
        "transcript_path": str(cwd / "transcript.jsonl"),
        "cwd": str(cwd),
        "hook_event_name": "PostToolUse",
        "tool_name": "Bash",
        "tool_input": {"command": f"echo {n}"},
        "tool_response": {
            "stdout": f"{n}\n" if output is None else output,
            "stderr": "",
            "interrupted": False,
        },
        "tool_use_id": f"toolu_{session}_{n:03d}",
    }
    done = subprocess.run(
        [str(MEMQ), "hook"],
        input=json.dumps(payload).encode(),
        capture_output=True,
        timeout=30,
        check=False,
        env=project_env({"MEMQ_HOME": str(daemon.home), "MEMQ_PORT": str(daemon.port)}),
    )
    assert done.returncode == 0
    assert done.stdout == b""
    assert done.stderr == b""


def no_spawn(home: Path) -> None:
    """Make the hook believe it started the daemon a moment ago, so it starts none."""
    (home / "spawn.stamp").write_text("0\n")


def wait_for(what: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = what()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError("never happened")
        time.sleep(0.05)


def rows(home: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(home / "memq.db")
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


@pytest.fixture
def team() -> Iterator[TeamServer]:
    server = TeamServer(TeamIntake(), free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()


def laptop(tmp_path: Path, team: TeamServer, **env: str) -> Daemon:
    home = tmp_path / "home"
    home.mkdir(mode=0o700)
    key = home / "upstream.key"
    key.write_text(KEY + "\n")
    key.chmod(0o600)
    return Daemon(home, env={"MEMQ_UPSTREAM": team.url, **env})


def upstream_status(daemon: Daemon) -> dict[str, Any]:
    with daemon.client() as client:
        status: dict[str, Any] = client.get("/api/status").json()["upstream"]
    return status


def test_every_event_reaches_the_server_once_in_order_through_outages(
    tmp_path: Path, team: TeamServer
) -> None:
    repo = repository(tmp_path, "repo", "git@github.com:Team/Repo.git")
    plain = tmp_path / "plain"
    plain.mkdir()
    daemon = laptop(tmp_path, team)
    intake = team.intake
    daemon.start()
    try:
        # 1. All up: events go through the daemon and on to the server.
        for n in range(4):
            hook(daemon, "a", n, repo)
            hook(daemon, "b", n, repo)
        hook(daemon, "c", 0, plain)  # no git remote: stays here
        wait_for(lambda: len(intake.local_ids()) == 8)
        assert wait_for(lambda: upstream_status(daemon)["local_only"] == 1)

        # 2. The server goes away: events wait in the outbox, and status says so.
        team.stop()
        for n in range(4, 7):
            hook(daemon, "a", n, repo)
            hook(daemon, "b", n, repo)
        status = wait_for(
            lambda: (s := upstream_status(daemon))["reachable"] is False and s["waiting"] == 6 and s
        )
        assert status["url"] == team.url
        assert "ConnectError" in status["last_error"]
        assert status["oldest_waiting_seconds"] >= 0
        text = daemon.memq("status").stdout
        assert f"upstream  {team.url} (both): UNREACHABLE" in text
        assert "6 events waiting" in text
        assert status == status | {"refused": 0, "local_only": 1, "paused": False}
        assert daemon.wait_idle()["counts"]["processed"] == 15  # processed here all along

        # 3. The daemon stops too: the hook writes the database itself, outbox included.
        daemon.stop()
        no_spawn(daemon.home)
        for n in range(7, 10):
            hook(daemon, "a", n, repo)
            hook(daemon, "b", n, repo)
        waiting = rows(daemon.home, "SELECT count(*) FROM upstream_outbox WHERE state = 'waiting'")
        assert waiting == [(12,)]
        text = daemon.memq("status").stdout  # read from the database: no daemon answers
        assert "(both): nothing is sent while the daemon is stopped" in text
        assert "12 events waiting" in text
        assert "last error: " in text
        assert "ConnectError" in text

        # 4. Both come back; the first answer is lost after the server committed.
        intake.drop_answers = 1
        team.start()
        daemon.start()
        wait_for(lambda: upstream_status(daemon)["waiting"] == 0)
    finally:
        daemon.kill()
    ids = rows(daemon.home, "SELECT id FROM pending_messages ORDER BY id")
    local = rows(daemon.home, "SELECT message_id FROM upstream_outbox WHERE state = 'local_only'")
    expected = [i for (i,) in ids if (i,) not in local]
    assert len(expected) == 20
    assert intake.local_ids() == expected  # each once, in id order
    assert intake.duplicates >= 1  # the lost answer's batch was sent again
    for session in ("a", "b"):
        tools = [
            e["payload"]["tool_use_id"]
            for e in intake.stored
            if e["payload"]["session_id"] == session
        ]
        assert tools == [f"toolu_{session}_{n:03d}" for n in range(10)]
    assert {e["project"] for e in intake.stored} == {"github.com/team/repo"}
    assert {e["session_id"] for e in intake.stored} == {"claude-code:a", "claude-code:b"}


def test_forward_mode_leaves_processing_to_the_server(tmp_path: Path, team: TeamServer) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    daemon = laptop(tmp_path, team, MEMQ_UPSTREAM_MODE="forward")
    daemon.start()
    try:
        for n in range(3):
            hook(daemon, "f", n, repo)
        wait_for(lambda: len(team.intake.local_ids()) == 3)
        status = daemon.wait_idle()
        assert status["counts"]["processed"] == 3
        assert status["upstream"]["mode"] == "forward"
        with daemon.client() as client:
            observations = client.get("/api/sessions/f/observations").json()
    finally:
        daemon.kill()
    assert observations["total"] == 0  # nothing was processed here
    assert rows(daemon.home, "SELECT count(*) FROM pending_messages WHERE payload IS NOT NULL") == [
        (0,)
    ]
