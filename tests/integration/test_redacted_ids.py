"""Issue 17: a secret or a ``<private>`` part in an event's ids is never stored nor forwarded.

The session id and the dedupe key come from the payload's ids (``session_id``,
``tool_use_id``, ...); they are columns of the queue row, copied to the team outbox
(``upstream_outbox``) and sent to the team server. So every intake routes an event only once
its ``<private>`` parts and secrets are out: the hook (``memq.hooks.run.handle``), the
daemon's ``POST /api/events`` (for a client other than the hook, or a hook with other
rules), and the spool intake (for a file the hook did not clean). The same event taken in
twice, or by two of them, still has one dedupe key: it is stored once.

Run on a real SQLite queue with the outbox on, the daemon's HTTP API in process.
"""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from memq.config import Settings
from memq.events import route_event
from memq.hooks import run, spool
from memq.queue import Queue
from memq.team.outbox import Outbox
from memq.worker.forks import ForkLinker
from memq.worker.spool_intake import QueueTarget, SpoolIntake
from tests.helpers.daemon import free_port
from tests.helpers.rows import table
from tests.helpers.services import api_client, built_services

GITHUB_TOKEN = "ghp_" + "aB3dE6gH9jK2mN5pQ8sT1vW4yZ7bC0eF3hJ6"  # a made-up one
AWS_KEY_ID = "AKIAIOSFODNN7EXAMPLE"  # AWS's own example
SECRETS = (GITHUB_TOKEN, AWS_KEY_ID, "hush-hush")
PRIVATE = "<private>hush-hush</private>"


def tool_call(**ids: str) -> dict[str, Any]:
    """A Bash call whose ids hold a GitHub token, an AWS key id and a private part."""
    return {
        "hook_event_name": "PostToolUse",
        "session_id": f"sess:{GITHUB_TOKEN}",
        "tool_use_id": f"call:{AWS_KEY_ID}:{PRIVATE}1",
        "cwd": "/home/dev/app",
        "tool_name": "Bash",
        "tool_input": {"command": "pytest -q"},
        "tool_response": {"stdout": "1 passed", "exit_code": 0},
        **ids,
    }


SESSION = "claude-code:sess:[redacted:github-token]"
DEDUPE_KEY = "tool:call:[redacted:aws-access-key-id]:1"


def stored(db_path: Path, sql: str) -> list[dict[str, Any]]:
    rows = table(db_path, sql)
    text = json.dumps(rows)
    for secret in SECRETS:
        assert secret not in text, (secret, rows)
    return rows


def assert_clean(db_path: Path, count: int = 1) -> None:
    """``count`` rows in the queue and as many in the outbox, naming the session and the call
    without the secrets, in any column."""
    for name in ("pending_messages", "upstream_outbox"):
        rows = stored(db_path, f"SELECT session_id, dedupe_key, payload FROM {name}")
        assert [(r["session_id"], r["dedupe_key"]) for r in rows] == [(SESSION, DEDUPE_KEY)] * (
            count
        ), name


@pytest.fixture
async def outbox_queue(queue: Queue) -> Queue:
    await Outbox(queue).set_enabled(True)  # what MEMQ_UPSTREAM turns on: rows forwarded
    return queue


@pytest.fixture
async def api(
    tmp_path: Path, outbox_queue: Queue, db_path: Path
) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon's HTTP API in process (redaction on, as by default)."""
    settings = Settings(home=tmp_path / "home", database=db_path, reserve_bytes=0)
    async with (
        built_services(settings, outbox_queue) as built,
        api_client(built.services) as client,
    ):
        yield client


async def pause(api: httpx.AsyncClient) -> None:
    """Pause the session, so that its rows stay as taken in (not processed, not pruned)."""
    answer = await api.put(
        f"/api/sessions/{SESSION}/config/paused", json={"value": True, "create": True}
    )
    assert answer.status_code == 200, answer.text


def spool_raw(home: Path, event: dict[str, Any]) -> None:
    """Spool ``event`` as a writer that neither stripped nor redacted it would: its header
    routed from the raw ids."""
    spool.write_event(str(home), route_event(event), json.dumps(event).encode(), now_ms=1)


def intake(queue: Queue, home: Path) -> SpoolIntake:
    return SpoolIntake(
        home, QueueTarget(queue, ForkLinker(queue), lambda _: None), max_body_bytes=1 << 20
    )


class TestDaemon:
    async def test_the_ids_are_routed_without_their_secrets(
        self, api: httpx.AsyncClient, db_path: Path
    ) -> None:
        await pause(api)
        first = await api.post("/api/events", json=tool_call())
        assert first.status_code == 202, first.text
        assert_clean(db_path)
        # The same event again (a client's retry): the same dedupe key, so a duplicate.
        again = await api.post("/api/events", json=tool_call())
        assert again.status_code == 200, again.text
        assert again.json()["status"] == "duplicate"
        assert_clean(db_path)

    async def test_an_id_that_was_all_private_is_refused(self, api: httpx.AsyncClient) -> None:
        answer = await api.post("/api/events", json=tool_call(session_id=PRIVATE))
        assert answer.status_code == 422, answer.text
        assert "'session_id' is empty" in answer.text

    async def test_the_spool_and_the_daemon_agree_on_the_key(
        self, api: httpx.AsyncClient, outbox_queue: Queue, db_path: Path, tmp_path: Path
    ) -> None:
        """An event posted to the daemon and also spooled (its answer was lost) is one."""
        await pause(api)
        assert (await api.post("/api/events", json=tool_call())).status_code == 202
        spool_raw(tmp_path, tool_call())
        report = await intake(outbox_queue, tmp_path).take_in()
        assert (report.taken, report.duplicates) == (0, 1)
        assert_clean(db_path)


async def test_the_spool_intake_routes_a_raw_file_again(
    outbox_queue: Queue, db_path: Path, tmp_path: Path
) -> None:
    spool_raw(tmp_path, tool_call())
    assert (await intake(outbox_queue, tmp_path).take_in()).taken == 1
    assert_clean(db_path)
    (payload,) = [
        json.loads(r["payload"]) for r in table(db_path, "SELECT payload FROM pending_messages")
    ]
    assert payload["tool_use_id"] == "call:[redacted:aws-access-key-id]:1"
    assert payload["session_id"] == "sess:[redacted:github-token]"


def test_the_hook_routes_without_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The hook strips and redacts before it routes: its direct write (no daemon) stores
    the same session and dedupe key as the daemon would."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "spawn.stamp").write_text("0\n")  # start no daemon: the direct write
    monkeypatch.setenv("MEMQ_HOME", str(home))
    monkeypatch.setenv("MEMQ_PORT", str(free_port()))
    assert run.main([], stdin=io.BytesIO(json.dumps(tool_call()).encode())) == 0
    rows = stored(home / "memq.db", "SELECT session_id, dedupe_key FROM pending_messages")
    assert [(r["session_id"], r["dedupe_key"]) for r in rows] == [(SESSION, DEDUPE_KEY)]
