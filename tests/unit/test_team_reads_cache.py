"""The laptop's cache of the team's context (memq.team.team_reads), on a manual clock at the
real refresh interval (300 s), and its reads of a mock team server."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import httpx
import pytest

from memq.cli.status_lines import upstream_lines
from memq.queue.testing import ManualClock
from memq.team.team_reads import REFRESH_INTERVAL, TeamContextCache, TeamReads, merge_hits

P = "github.com/acme/app"
TOKEN = "memq_abcdefghijkl_" + "s" * 43


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream.key"
    path.write_text(TOKEN)
    path.chmod(0o600)
    return path


class Server:
    """A mock team server: answers the context routes with ``text``, or fails."""

    def __init__(self) -> None:
        self.text = "team context 1"
        self.status = 200
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if self.status != 200:
            return httpx.Response(self.status, json={"error": "down for maintenance"})
        if request.url.path.endswith("/search"):
            items = [{"id": 7, "title": "team hit", "score": 2.0, "author": "alice"}]
            return httpx.Response(200, json={"items": items, "total": 1})
        return httpx.Response(200, json={"project": P, "context": self.text})


def reads(clock: ManualClock, server: Server, key_file: Path, *, mine: bool = True) -> TeamReads:
    async def machine() -> list[str]:
        return ["laptop-b"]

    return TeamReads(
        "http://team.test",
        key_file,
        machine if mine else None,
        clock,
        transport=httpx.MockTransport(server),
    )


def test_cache_refresh_is_due_once_per_interval_and_keeps_text_on_failure() -> None:
    clock = ManualClock()
    cache = TeamContextCache(clock, interval=REFRESH_INTERVAL)
    assert REFRESH_INTERVAL == 300.0
    assert cache.due(P)
    assert cache.text(P) == ""
    cache.attempt(P)
    assert not cache.due(P)  # asked for already: a second SessionStart does not ask again
    cache.store(P, "v1")
    clock.advance(299)
    assert not cache.due(P)
    clock.advance(1)
    assert cache.due(P)
    cache.attempt(P)
    cache.failed(P, "server down")
    assert cache.text(P) == "v1"  # the old text stays
    status = cache.status()
    assert status["failing"] == 1
    assert status["last_error"] == "server down"
    assert status["items"][0]["age_seconds"] == 300.0
    cache.store(P, "v2")
    assert cache.text(P) == "v2"
    assert cache.status()["failing"] == 0


def test_cache_is_bounded_least_recently_used_first() -> None:
    cache = TeamContextCache(ManualClock(), max_projects=2)
    for project in ("a", "b"):
        cache.store(project, project)
    cache.text("a")  # a used last: b goes
    cache.store("c", "c")
    assert [i["project"] for i in cache.status()["items"]] == ["a", "c"]


async def test_context_is_served_from_cache_and_refreshed_in_background(key_file: Path) -> None:
    clock, server = ManualClock(), Server()
    team = reads(clock, server, key_file)
    async with anyio.create_task_group() as tg:
        await tg.start(team.run)
        assert team.context(P) == ""  # never read yet: nothing now, a refresh asked for
        await wait_until(lambda: team.cache.text(P) == "team context 1")
        request = server.requests[0]
        assert request.headers["authorization"] == f"Bearer {TOKEN}"
        assert dict(request.url.params) == {
            "project": P,
            "budget": "1000",
            "exclude_machine": "laptop-b",
        }
        server.text = "team context 2"
        assert team.context(P) == "team context 1"
        clock.advance(120)
        assert team.context(P) == "team context 1"
        await anyio.sleep(0.05)
        assert len(server.requests) == 1  # within the interval: no request
        clock.advance(180)
        assert team.context(P) == "team context 1"  # from cache, refresh asked for
        await wait_until(lambda: team.cache.text(P) == "team context 2")
        server.status = 503
        clock.advance(300)
        team.context(P)
        await wait_until(lambda: team.status()["failing"] == 1)
        assert team.context(P) == "team context 2"
        assert "503" in team.status()["last_error"]
        tg.cancel_scope.cancel()
    await team.aclose()


async def test_forward_mode_excludes_nothing_and_search_failure_gives_a_note(
    key_file: Path,
) -> None:
    server = Server()
    team = reads(ManualClock(), server, key_file, mine=False)
    hits, note = await team.search(P, "backoff", 5)
    assert note is None
    assert hits[0]["author"] == "alice"
    assert "exclude_machine" not in server.requests[0].url.params
    server.status = 500
    hits, note = await team.search(P, "backoff", 5)
    assert hits == []
    assert note is not None
    assert "500" in note
    await team.aclose()


def test_merge_hits_orders_by_score_and_marks_the_team_s() -> None:
    local = [{"id": 1, "score": 1.0}, {"id": 2, "score": 3.0}]
    team = [{"record_type": "summary", "id": 1, "score": 2.0, "author": "alice"}]
    merged = merge_hits(local, team, 2)
    assert [(h["id"], h.get("team", False)) for h in merged] == [(2, False), (1, True)]
    assert merged[1]["ref"] == "team#S1"  # the server's id never passes for a local one
    assert json.dumps(merged)


async def wait_until(condition: object) -> None:
    """Poll ``condition`` for up to 2 s of the event loop (the mock server answers at once)."""
    assert callable(condition)
    for _ in range(200):
        if condition():
            return
        await anyio.sleep(0.01)
    raise AssertionError("the condition never held")


def test_status_names_a_failed_refresh() -> None:
    clock = ManualClock()
    cache = TeamContextCache(clock)
    cache.store(P, "v1")
    cache.failed(P, "answered 503")
    upstream = {"url": "https://team.test", "mode": "both", "reachable": True, "waiting": 0}
    lines = upstream_lines({**upstream, "team_context": cache.status()})
    assert lines[-1] == "          team context: 1 of 1 projects not refreshed: answered 503"
    cache.store(P, "v2")
    assert "team context" not in upstream_lines({**upstream, "team_context": cache.status()})[-1]
