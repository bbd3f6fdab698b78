"""A local event carrying its own ``memq_origin`` (who sent it to a team server, which only
the team intake writes) is stored without it, whichever way it came in: the daemon's
``POST /api/events``, the hook (and so its direct write and spool), the spool intake. Its
record is then this machine's own (no author)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from memq.events import route_event
from memq.hooks import run, spool
from memq.queue import Queue
from memq.worker.forks import ForkLinker
from memq.worker.spool_intake import QueueTarget, SpoolIntake
from tests.helpers.daemon import Daemon, free_port
from tests.helpers.rows import all_rows

FORGED = {"key": "alice", "machine": "alices-laptop", "local_id": 7, "project": "github.com/a/b"}


def prompt(n: int, **extra: Any) -> dict[str, Any]:
    return {
        "hook_event_name": "UserPromptSubmit",
        "session_id": "forger",
        "cwd": "/tmp",
        "prompt": f"prompt {n}",
        "prompt_id": f"forged-{n}",
        "memq_origin": FORGED,
        **extra,
    }


def stored_payloads(home: Path) -> list[dict[str, Any]]:
    return [json.loads(r["payload"]) for r in all_rows(home / "memq.db")]


def test_the_daemon_drops_it(tmp_path: Path) -> None:
    daemon = Daemon(tmp_path / "home")
    daemon.start()
    try:
        with daemon.client() as client:
            # Pause the session so its payloads are still there to read.
            body = {"value": True, "create": True}
            put = client.put("/api/sessions/claude-code:forger/config/paused", json=body)
            assert put.status_code == 200, put.text
            for n, extra in enumerate(({}, {"note": "<private>x</private>"})):
                answer = client.post("/api/events", json=prompt(n, **extra))
                assert answer.status_code == 202, answer.text
    finally:
        daemon.kill()
    payloads = stored_payloads(daemon.home)
    assert len(payloads) == 2
    assert [p.get("memq_origin") for p in payloads] == [None, None]
    assert payloads[0]["prompt"] == "prompt 0"  # the rest kept


def test_the_hook_drops_it_before_its_fallback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "spawn.stamp").write_text("0\n")  # start no daemon: the direct write
    monkeypatch.setenv("MEMQ_HOME", str(home))
    monkeypatch.setenv("MEMQ_PORT", str(free_port()))
    assert run.main([], stdin=io.BytesIO(json.dumps(prompt(1)).encode())) == 0
    (payload,) = stored_payloads(home)
    assert "memq_origin" not in payload
    assert payload["prompt"] == "prompt 1"


async def test_the_spool_intake_drops_it(queue: Queue, tmp_path: Path) -> None:
    event = prompt(2)
    body = json.dumps(event).encode()
    spool.write_event(str(tmp_path), route_event(event), body, now_ms=1)
    intake = SpoolIntake(
        tmp_path, QueueTarget(queue, ForkLinker(queue), lambda _: None), max_body_bytes=1 << 20
    )
    assert (await intake.take_in()).taken == 1
    (payload,) = stored_payloads(tmp_path)
    assert "memq_origin" not in payload
