"""A laptop's team context is read before a repository's first SessionStart
(memq.team.warm_start, memq.team.team_reads): the projects of the local sessions of the last
14 days, 16 at most, read from a real SQLite file at a manual clock, are asked for when the
reads start; a session's first event asks for its project; each at most once per 300 s."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import anyio
import httpx
import pytest

from memq.queue import Queue
from memq.queue.testing import ManualClock
from memq.team.team_reads import REFRESH_INTERVAL, TeamReads
from memq.team.warm_start import DAY_MS, WARM_DAYS, WARM_PROJECTS, recent_projects
from tests.conftest import FAST

TOKEN = "memq_abcdefghijkl_" + "s" * 43


def repository(directory: Path, remote: str) -> Path:
    """A repository whose origin is ``remote`` (its config, as ``git remote add`` writes)."""
    (directory / ".git").mkdir(parents=True)
    (directory / ".git" / "config").write_text(f'[remote "origin"]\n\turl = {remote}\n')
    return directory


@pytest.fixture
async def clocked(db_path: Path) -> AsyncIterator[tuple[Queue, ManualClock]]:
    clock = ManualClock()
    queue = await Queue.open(db_path, FAST, clock=clock)
    try:
        yield queue, clock
    finally:
        await queue.close()


def add_session(db_path: Path, key: str, project: str, updated_at: int) -> None:
    with sqlite3.connect(db_path) as conn:
        conn.execute(
            "INSERT INTO sessions (key, assistant, external_id, project, cwd, started_at,"
            " updated_at, created_at) VALUES (?, 'claude-code', ?, ?, ?, ?, ?, ?)",
            (key, key, project, project, updated_at, updated_at, updated_at),
        )


async def test_recent_projects_are_the_last_14_days_most_recent_first_16_at_most(
    clocked: tuple[Queue, ManualClock], db_path: Path
) -> None:
    queue, clock = clocked
    now = clock.now()
    assert (WARM_DAYS, WARM_PROJECTS) == (14, 16)
    add_session(db_path, "claude-code:old", "/w/old", now - 15 * DAY_MS)
    add_session(db_path, "claude-code:edge", "/w/edge", now - 14 * DAY_MS + 60_000)
    add_session(db_path, "claude-code:a1", "/w/a", now - 3 * DAY_MS)
    add_session(db_path, "claude-code:a2", "/w/a", now - 1000)  # a's latest: first
    add_session(db_path, "claude-code:b", "/w/b", now - 2 * DAY_MS)
    assert await recent_projects(queue) == ["/w/a", "/w/b", "/w/edge"]
    clock.advance(120)  # seconds: the edge project is now 14 days and a minute old
    assert await recent_projects(queue) == ["/w/a", "/w/b"]
    for n in range(20):
        add_session(db_path, f"claude-code:n{n}", f"/w/n{n:02d}", now - 10_000 - n)
    got = await recent_projects(queue)
    assert len(got) == 16
    assert got[:2] == ["/w/a", "/w/n00"]


class Server:
    """A mock team server: the context of each project it is asked for."""

    def __init__(self) -> None:
        self.asked: list[str] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        project = request.url.params["project"]
        self.asked.append(project)
        return httpx.Response(200, json={"project": project, "context": f"team of {project}"})


def team_reads(tmp_path: Path, clock: ManualClock, server: Server, recent: list[str]) -> TeamReads:
    key = tmp_path / "upstream.key"
    key.write_text(TOKEN)
    key.chmod(0o600)

    async def lately() -> list[str]:
        return recent

    return TeamReads(
        "http://team.test",
        key,
        None,
        clock,
        transport=httpx.MockTransport(server),
        recent=lately,
    )


async def wait_until(condition: Callable[[], bool]) -> None:
    for _ in range(300):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("the condition never held")


async def test_the_projects_worked_in_lately_are_read_at_start_before_any_session(
    tmp_path: Path,
) -> None:
    shop = repository(tmp_path / "shop", "git@github.com:acme/shop.git")
    clone = repository(tmp_path / "shop-clone", "https://github.com/Acme/Shop")
    plain = tmp_path / "notes"  # no repository: nothing to ask for
    plain.mkdir()
    lib = repository(tmp_path / "lib", "git@github.com:acme/lib.git")
    clock, server = ManualClock(), Server()
    reads = team_reads(tmp_path, clock, server, [str(shop), str(clone), str(plain), str(lib)])
    async with anyio.create_task_group() as tg:
        await tg.start(reads.run)  # started at once: the reads come after
        await wait_until(lambda: reads.cache.text("github.com/acme/lib") != "")
        await anyio.sleep(0.05)
        # The two clones are one project, asked for once; a SessionStart now has it.
        assert server.asked == ["github.com/acme/shop", "github.com/acme/lib"]
        assert reads.context("github.com/acme/shop") == "team of github.com/acme/shop"
        assert len(server.asked) == 2  # fresh: the SessionStart asks for nothing
        clock.advance(REFRESH_INTERVAL)
        reads.context("github.com/acme/shop")
        await wait_until(lambda: len(server.asked) == 3)
        tg.cancel_scope.cancel()
    await reads.aclose()


async def test_a_sessions_first_event_asks_for_its_project_once(tmp_path: Path) -> None:
    shop = repository(tmp_path / "shop", "git@github.com:acme/shop.git")
    clock, server = ManualClock(), Server()
    reads = team_reads(tmp_path, clock, server, [])
    async with anyio.create_task_group() as tg:
        await tg.start(reads.run)
        reads.first_event("claude-code:s1", str(shop / "src"))
        await wait_until(lambda: reads.cache.text("github.com/acme/shop") != "")
        assert server.asked == ["github.com/acme/shop"]
        clock.advance(REFRESH_INTERVAL)
        reads.first_event("claude-code:s1", str(shop))  # not its first: nothing
        reads.first_event("claude-code:s2", None)  # no directory: nothing
        await anyio.sleep(0.1)
        assert server.asked == ["github.com/acme/shop"]
        reads.first_event("claude-code:s3", str(shop))  # another session, past 300 s
        await wait_until(lambda: len(server.asked) == 2)
        reads.first_event("claude-code:s4", str(shop))  # within 300 s of that: nothing
        await anyio.sleep(0.1)
        assert len(server.asked) == 2
        tg.cancel_scope.cancel()
    await reads.aclose()
