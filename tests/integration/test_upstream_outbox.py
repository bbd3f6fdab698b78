"""The laptop's outbox to the team server on a real SQLite file: the trigger fills it in the
transaction of every insert (the hook's direct one included) while forwarding is on, and the
forwarder sends it upstream in order, exactly once from the server's view, backing off on a
controlled clock at its real settings."""

from __future__ import annotations

import functools
import json
import random
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from memq.events import route_event
from memq.hooks import fallback
from memq.queue import Clock, Queue, span
from memq.queue.testing import ManualClock
from memq.team.forwarder import Forwarder, ForwardSettings
from memq.team.outbox import Outbox
from memq.team.upstream_client import UpstreamClient
from tests.helpers.fake_team import KEY, TeamIntake

PROJECT = "github.com/team/repo"


def repository(root: Path, name: str, remote: str | None) -> Path:
    """A working directory in a git repository with ``remote`` as origin (or none)."""
    directory = root / name
    (directory / ".git").mkdir(parents=True)
    config = "[core]\n\tbare = false\n"
    if remote is not None:
        config += f'[remote "origin"]\n\turl = {remote}\n'
    (directory / ".git" / "config").write_text(config)
    return directory


def event(session: str, n: int, cwd: Path, **extra: Any) -> dict[str, Any]:
    return {
        "hook_event_name": "PostToolUse",
        "session_id": session,
        "tool_name": "Bash",
        "tool_use_id": f"{session}-t{n}",
        "tool_input": {"command": f"echo {n}"},
        "tool_response": {"stdout": f"{n}\n"},
        "cwd": str(cwd),
        **extra,
    }


def outbox_rows(db_path: Path) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT message_id, session_id, state, attempts, next_attempt_at, last_error"
            " FROM upstream_outbox ORDER BY message_id"
        ).fetchall()
    finally:
        conn.close()


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return repository(tmp_path, "repo", "git@github.com:Team/Repo.git")


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream.key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


@pytest.fixture
async def clocked_queue(db_path: Path, clock: ManualClock) -> AsyncIterator[Queue]:
    """The queue on the test's clock, with forwarding switched on."""
    queue = await Queue.open(db_path, clock=clock)
    await Outbox(queue).set_enabled(True)
    yield queue
    await queue.close()


class Laptop:
    """A forwarder on the queue, talking to ``intake`` through httpx's mock transport."""

    def __init__(
        self,
        queue: Queue,
        intake: TeamIntake,
        key_file: Path,
        clock: Clock,
        *,
        forward_only: bool = False,
    ) -> None:
        self.queue = queue
        self.client = UpstreamClient("http://team.test", transport=intake.transport())
        self.outbox = Outbox(queue, forward_only=forward_only)
        self.forwarder = Forwarder(
            self.outbox,
            self.client,
            ForwardSettings(key_file=key_file),
            clock=clock,
            machine="laptop-a",
            jitter=random.Random(7).random,
        )

    async def drain(self) -> float | None:
        """Step until the forwarder has nothing to do now: its wait (None: idle)."""
        while (delay := await self.forwarder.step()) == 0:
            pass
        return delay

    async def close(self) -> None:
        await self.client.aclose()


@pytest.fixture
def intake() -> TeamIntake:
    return TeamIntake()


@pytest.fixture
async def laptop(
    clocked_queue: Queue, intake: TeamIntake, key_file: Path, clock: ManualClock
) -> AsyncIterator[Laptop]:
    made = Laptop(clocked_queue, intake, key_file, clock)
    yield made
    await made.close()


async def enqueue(queue: Queue, payload: dict[str, Any]) -> int:
    route = route_event(payload)
    enqueued = await queue.enqueue(route.session_key, route.kind, payload, route.dedupe_key)
    return enqueued.message_id


class TestTheTrigger:
    """Every insert fills the outbox in its own transaction, while forwarding is on."""

    async def test_the_hooks_direct_insert_fills_the_outbox_when_enabled(
        self, tmp_path: Path, repo: Path
    ) -> None:
        queue = await Queue.open(tmp_path / "memq.db")
        await Outbox(queue).set_enabled(True)
        await queue.close()  # the daemon is down: the hook writes the row itself
        payload = event("s1", 1, repo)
        body = json.dumps(payload, separators=(",", ":")).encode()
        message_id = fallback.store_directly(str(tmp_path), route_event(payload), body, 5.0)
        again = fallback.store_directly(str(tmp_path), route_event(payload), body, 5.0)
        assert again == message_id  # a duplicate fires nothing
        rows = outbox_rows(tmp_path / "memq.db")
        assert [(r[0], r[1], r[2]) for r in rows] == [(message_id, "claude-code:s1", "waiting")]
        conn = sqlite3.connect(tmp_path / "memq.db")
        (copied,) = conn.execute("SELECT payload FROM upstream_outbox").fetchone()
        conn.close()
        assert copied == body.decode()

    async def test_nothing_is_kept_when_forwarding_is_off(self, tmp_path: Path, repo: Path) -> None:
        queue = await Queue.open(tmp_path / "memq.db")
        await Outbox(queue).set_enabled(True)
        await Outbox(queue).set_enabled(False)  # the daemon started without MEMQ_UPSTREAM
        await enqueue(queue, event("s1", 1, repo))
        await queue.close()
        payload = event("s1", 2, repo)
        body = json.dumps(payload).encode()
        fallback.store_directly(str(tmp_path), route_event(payload), body, 5.0)
        assert outbox_rows(tmp_path / "memq.db") == []

    async def test_the_event_and_its_outbox_row_are_one_transaction(
        self, tmp_path: Path, repo: Path
    ) -> None:
        """An outbox row that cannot be written takes the event with it: never one alone."""
        queue = await Queue.open(tmp_path / "memq.db")
        await Outbox(queue).set_enabled(True)
        first = await enqueue(queue, event("s1", 1, repo))
        await queue.close()
        conn = sqlite3.connect(tmp_path / "memq.db")
        with conn:  # the next event's outbox row is taken already
            conn.execute(
                "INSERT INTO upstream_outbox (message_id, session_id, kind, payload, created_at)"
                " VALUES (?, 'x', 'observation', '{}', 0)",
                (first + 1,),
            )
        conn.close()
        payload = event("s1", 2, repo)
        with pytest.raises(sqlite3.IntegrityError):
            fallback.store_directly(
                str(tmp_path), route_event(payload), json.dumps(payload).encode(), 5.0
            )
        conn = sqlite3.connect(tmp_path / "memq.db")
        (count,) = conn.execute("SELECT count(*) FROM pending_messages").fetchone()
        conn.close()
        assert count == 1


class TestForwarding:
    """In id order, batched, exactly once from the server's view."""

    async def test_events_go_in_id_order_in_batches_and_leave_the_outbox(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, db_path: Path
    ) -> None:
        ids = [await enqueue(laptop.queue, event(f"s{n % 3}", n, repo, seq=n)) for n in range(250)]
        assert await laptop.drain() is None
        assert intake.local_ids() == ids
        assert [len(r) for r in intake.requests] == [100, 100, 50]
        for session in ("s0", "s1", "s2"):
            seen = [
                e["payload"]["seq"] for e in intake.stored if e["payload"]["session_id"] == session
            ]
            assert seen == sorted(seen)
        first = intake.stored[0]
        assert first["project"] == PROJECT
        assert first["session_id"] == "claude-code:s0"
        assert first["kind"] == "observation"
        assert first["dedupe_key"] == "tool:s0-t0"
        assert first["machine"] == "laptop-a"
        assert outbox_rows(db_path) == []
        assert laptop.forwarder.forwarded == 250

    async def test_a_batch_whose_answer_was_lost_is_a_duplicate_when_sent_again(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, clock: ManualClock
    ) -> None:
        ids = [await enqueue(laptop.queue, event("s1", n, repo)) for n in range(5)]
        intake.drop_answers = 1  # the server commits, and the answer never arrives
        delay = await laptop.drain()
        assert delay is not None
        assert delay >= 1.0
        assert intake.local_ids() == ids
        clock.advance(delay)
        assert await laptop.drain() is None
        assert intake.local_ids() == ids  # each once
        assert intake.duplicates == 5
        assert (await laptop.outbox.counts()).waiting == 0

    async def test_a_refused_event_is_marked_and_the_rest_go_on(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, tmp_path: Path, db_path: Path
    ) -> None:
        secret = repository(tmp_path, "secret", "https://github.com/team/secret.git")
        intake.refuse_projects = {"github.com/team/secret"}
        first = await enqueue(laptop.queue, event("s1", 1, repo))
        refused = await enqueue(laptop.queue, event("s2", 1, secret))
        last = await enqueue(laptop.queue, event("s1", 2, repo))
        assert await laptop.drain() is None
        assert intake.local_ids() == [first, last]
        assert [(r[0], r[2], r[5]) for r in outbox_rows(db_path)] == [
            (refused, "refused", "project out of scope")
        ]
        status = await laptop.forwarder.status()
        assert status["refused"] == 1
        assert status["last_error"] == "project out of scope"

    async def test_an_event_with_no_git_remote_stays_local(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, tmp_path: Path, db_path: Path
    ) -> None:
        plain = tmp_path / "plain"
        plain.mkdir()
        unshared = repository(tmp_path, "unshared", None)
        kept = [
            await enqueue(laptop.queue, event("s1", 1, plain)),
            await enqueue(laptop.queue, event("s2", 1, unshared)),
        ]
        sent = await enqueue(laptop.queue, event("s3", 1, repo))
        assert await laptop.drain() is None
        assert intake.local_ids() == [sent]
        assert all(kept_id not in r for r in intake.requests for kept_id in kept)
        assert [(r[0], r[2]) for r in outbox_rows(db_path)] == [
            (kept[0], "local_only"),
            (kept[1], "local_only"),
        ]
        assert (await laptop.forwarder.status())["local_only"] == 2

    async def test_an_event_without_a_cwd_takes_its_sessions_project(
        self, laptop: Laptop, intake: TeamIntake, repo: Path
    ) -> None:
        await enqueue(laptop.queue, event("s1", 1, repo))
        bare = event("s1", 2, repo)
        del bare["cwd"]
        await enqueue(laptop.queue, bare)
        assert await laptop.drain() is None
        assert [e["project"] for e in intake.stored] == [PROJECT, PROJECT]

    async def test_a_request_refused_whole_is_sent_one_by_one(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, db_path: Path
    ) -> None:
        ids = [await enqueue(laptop.queue, event("s1", n, repo)) for n in range(3)]
        big = await enqueue(laptop.queue, event("s1", 9, repo, blob="x" * 20_000))
        after = await enqueue(laptop.queue, event("s1", 10, repo))
        intake.max_events_bytes = 10_000  # the server takes no body this large: 413
        assert await laptop.drain() is None
        assert intake.local_ids() == [*ids, after]
        rows = outbox_rows(db_path)
        assert [(r[0], r[2]) for r in rows] == [(big, "refused")]
        assert "413" in rows[0][5]


class TestWaiting:
    """Backoff on a controlled clock at the real settings (1 s .. 300 s), kept over restarts;
    a refused key pauses."""

    async def test_a_server_that_is_down_is_tried_with_growing_jittered_waits(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, clock: ManualClock, db_path: Path
    ) -> None:
        ids = [await enqueue(laptop.queue, event("s1", n, repo)) for n in range(3)]
        intake.down = True
        delays = []
        for attempt in range(1, 13):
            delay = await laptop.drain()
            assert delay is not None
            base = min(300.0, 2.0 ** (attempt - 1))
            assert max(1.0, base / 2) <= delay <= base, (attempt, delay)
            rows = outbox_rows(db_path)
            assert {r[3] for r in rows} == {attempt}  # attempts, stored
            assert {r[4] for r in rows} == {clock.now() + span(delay)}  # next_attempt_at
            assert "503" in rows[0][5]
            requests = len(intake.requests)
            half_ms = span(delay) // 2
            clock.advance(half_ms / 1000)
            left = (span(delay) - half_ms) / 1000
            assert await laptop.forwarder.step() == pytest.approx(left)
            assert len(intake.requests) == requests  # no request before it is due
            clock.advance(left)
            delays.append(delay)
        assert 150.0 <= delays[-1] <= 300.0  # the cap, in seconds
        assert len(set(delays[-3:])) == 3  # jittered, not one value
        status = await laptop.forwarder.status()
        assert status["reachable"] is False
        assert status["waiting"] == 3
        assert "503" in status["last_error"]
        intake.down = False
        assert await laptop.drain() is None
        assert intake.local_ids() == ids

    async def test_a_restarted_daemon_does_not_try_before_the_stored_time(
        self,
        db_path: Path,
        clock: ManualClock,
        intake: TeamIntake,
        key_file: Path,
        repo: Path,
    ) -> None:
        queue = await Queue.open(db_path, clock=clock)
        await Outbox(queue).set_enabled(True)
        await enqueue(queue, event("s1", 1, repo))
        intake.down = True
        first = Laptop(queue, intake, key_file, clock)
        for _ in range(8):  # the waits grow to 64..128 s
            delay = await first.drain()
            assert delay is not None
            clock.advance(delay)
        delay = await first.drain()
        assert delay is not None
        assert delay >= 64
        await first.close()
        await queue.close()
        intake.down = False
        clock.advance(delay - 10)
        queue = await Queue.open(db_path, clock=clock)
        second = Laptop(queue, intake, key_file, clock)
        try:
            requests = len(intake.requests)
            assert await second.drain() == pytest.approx(10.0, abs=0.002)
            assert len(intake.requests) == requests
            clock.advance(10)
            assert await second.drain() is None
            assert len(intake.stored) == 1
        finally:
            await second.close()
            await queue.close()

    async def test_a_refused_key_pauses_forwarding_until_it_is_tried_again(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, clock: ManualClock
    ) -> None:
        ids = [await enqueue(laptop.queue, event("s1", n, repo)) for n in range(2)]
        known = intake.keys
        intake.keys = {}  # revoked
        assert await laptop.drain() == 300.0
        status = await laptop.forwarder.status()
        assert status["paused"] is True
        assert status["paused_reason"].startswith("key refused")
        assert "401" in status["paused_reason"]
        assert status["reachable"] is True
        requests = len(intake.requests)
        clock.advance(299)
        assert await laptop.drain() == pytest.approx(1.0)
        assert len(intake.requests) == requests
        intake.keys = known
        clock.advance(1)
        assert await laptop.drain() is None
        assert intake.local_ids() == ids
        assert (await laptop.forwarder.status())["paused"] is False

    async def test_no_key_file_pauses_with_where_to_put_it(
        self, laptop: Laptop, intake: TeamIntake, repo: Path, key_file: Path
    ) -> None:
        await enqueue(laptop.queue, event("s1", 1, repo))
        key_file.unlink()
        assert await laptop.drain() == 300.0
        reason = (await laptop.forwarder.status())["paused_reason"]
        assert reason.startswith("no API key")
        assert str(key_file) in reason
        assert intake.requests == []


class TestForwardMode:
    """MEMQ_UPSTREAM_MODE=forward: what the server has is processed; the rest fails here."""

    async def test_queue_rows_are_settled_with_their_outbox_rows(
        self,
        clocked_queue: Queue,
        intake: TeamIntake,
        key_file: Path,
        clock: ManualClock,
        repo: Path,
        tmp_path: Path,
        db_path: Path,
    ) -> None:
        laptop = Laptop(clocked_queue, intake, key_file, clock, forward_only=True)
        plain = tmp_path / "plain"
        plain.mkdir()
        sent = await enqueue(clocked_queue, event("s1", 1, repo))
        local = await enqueue(clocked_queue, event("s1", 2, plain))
        try:
            assert await laptop.drain() is None
        finally:
            await laptop.close()
        conn = sqlite3.connect(db_path)
        rows = conn.execute(
            "SELECT id, status, payload IS NULL, last_error FROM pending_messages ORDER BY id"
        ).fetchall()
        conn.close()
        assert rows[0] == (sent, "processed", 1, None)
        assert rows[1][:3] == (local, "failed", 0)
        assert "not shared" in rows[1][3]
        assert intake.local_ids() == [sent]


async def sent(intake: TeamIntake, ids: list[int]) -> None:
    """Wait until the server has exactly ``ids``, for 5 s at most."""
    with anyio.fail_after(5):
        while intake.local_ids() != ids:  # noqa: ASYNC110 - another thread's state
            await anyio.sleep(0.01)


class TestRunning:
    """The forwarder as the daemon runs it: woken by enqueues here and by rows another
    process wrote."""

    async def test_rows_the_hook_wrote_beside_the_running_daemon_are_sent(
        self, db_path: Path, intake: TeamIntake, key_file: Path, repo: Path
    ) -> None:
        queue = await Queue.open(db_path)
        await Outbox(queue).set_enabled(True)
        laptop = Laptop(queue, intake, key_file, queue.clock)  # run() waits for real
        try:
            async with anyio.create_task_group() as tg:
                run = functools.partial(
                    laptop.forwarder.run, foreign_rows=queue.wait_for_foreign_rows
                )
                await tg.start(run)
                mine = await enqueue(queue, event("s1", 1, repo))
                laptop.forwarder.wake("claude-code:s1")  # as the session manager's notify
                await sent(intake, [mine])
                payload = event("s1", 2, repo)  # the daemon was slow: the hook wrote it
                body = json.dumps(payload).encode()
                theirs = await anyio.to_thread.run_sync(
                    fallback.store_directly, str(db_path.parent), route_event(payload), body, 5.0
                )
                await sent(intake, [mine, theirs])  # others' rows: looked for every second
                tg.cancel_scope.cancel()
        finally:
            await laptop.close()
            await queue.close()
