"""A SessionStart's local and team context share one budget (memq.worker.injection with
memq.team.context_share), on a real SQLite file with the daemon's services as ``memq serve``
builds them with MEMQ_UPSTREAM set: the team's block (from the daemon's cache, as a refresh
stores it) takes at most its share, local memory the rest, the whole within the budget."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memq.config import Settings
from memq.events import route_event
from memq.limits import DEFAULT_CONTEXT_BUDGET
from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.context import estimate_tokens
from memq.memory.fence import FENCE_CLOSE, FENCE_OPEN
from memq.queue import Queue
from memq.team.context_share import team_share
from memq.team.team_reads import TeamReads
from memq.worker import injection
from memq.worker.services import Services
from tests.helpers.memory import SESSION, sample, write
from tests.helpers.services import built_services

IDENTITY = "github.com/acme/app"
BUDGET = DEFAULT_CONTEXT_BUDGET  # MEMQ_CONTEXT_BUDGET unset


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A repository whose origin is IDENTITY (its config, as ``git remote add`` writes it)."""
    directory = tmp_path / "repo"
    (directory / ".git").mkdir(parents=True)
    (directory / ".git" / "config").write_text(
        '[remote "origin"]\n\turl = git@github.com:acme/app.git\n'
    )
    return directory


@pytest.fixture
async def services(tmp_path: Path, queue: Queue, db_path: Path) -> AsyncIterator[Services]:
    """The daemon's services with a team server set (never asked: nothing runs the
    refreshes; the test stores what one would)."""
    settings = Settings(
        home=tmp_path / "home", database=db_path, reserve_bytes=0, upstream="http://127.0.0.1:9"
    )
    async with built_services(settings, queue) as built:
        yield built.services


def team_block(lines: int) -> str:
    body = [f"- #{n} [alice] 5m ago Ran `pytest tests/test_team_{n:03d}.py`" for n in range(lines)]
    return "\n".join([FENCE_OPEN, "memq recalled these notes of the team.", *body, FENCE_CLOSE])


def team_reads(services: Services) -> TeamReads:
    assert services.team is not None
    return services.team


async def start(services: Services, repo: Path, session: str = "s1") -> str:
    payload = sample("SessionStart", cwd=str(repo), session_id=session, source="startup")
    return (await injection.injected(services, route_event(payload), payload)).shown.text


async def lots_of_local_memory(queue: Queue, store: MemoryStore, repo: Path) -> None:
    """More local memory than the whole budget holds."""
    items = [
        ObservationRecord(
            kind=ObservationKind.CHANGE, title=f"Edited src/module_{n:03d}.py: " + "detail " * 12
        )
        for n in range(120)
    ]
    await write(queue, store, list(items), session=SESSION, project=str(repo), cwd=str(repo))


async def test_the_team_block_and_local_memory_share_one_budget(
    services: Services, queue: Queue, store: MemoryStore, repo: Path
) -> None:
    await lots_of_local_memory(queue, store, repo)
    alone = await start(services, repo)
    # No team text cached: local memory has the whole budget (and fills it).
    assert estimate_tokens(alone) > BUDGET - 100
    assert estimate_tokens(alone) <= BUDGET

    reads = team_reads(services)
    team = team_block(8)
    reads.cache.store(IDENTITY, team)
    both = await start(services, repo)
    assert both.endswith("\n\n" + team)  # the team's block, whole: it fits its share
    assert estimate_tokens(both) <= BUDGET
    local = both[: -len("\n\n" + team)]
    assert local != alone
    assert alone.startswith(local.split("\n")[0])
    # Local memory gave up about what the team's block costs, no more.
    assert estimate_tokens(alone) - estimate_tokens(local) <= estimate_tokens(team) + 100


async def test_a_team_block_longer_than_its_share_is_cut_at_a_line(
    services: Services, queue: Queue, store: MemoryStore, repo: Path
) -> None:
    await lots_of_local_memory(queue, store, repo)
    long = team_block(200)
    assert estimate_tokens(long) > 2 * team_share(BUDGET)
    team_reads(services).cache.store(IDENTITY, long)
    text = await start(services, repo)
    assert estimate_tokens(text) <= BUDGET
    assert text.endswith(FENCE_CLOSE)
    team = text[text.index("\n\n" + FENCE_OPEN) + 2 :]
    assert estimate_tokens(team) <= team_share(BUDGET)
    assert estimate_tokens(team) > team_share(BUDGET) - 30  # as many lines as fit
    kept = team.split("\n")[:-1]
    assert kept == long.split("\n")[: len(kept)]  # whole lines, from the top
    # What is left to local memory is still used.
    assert estimate_tokens(text) > BUDGET - 100


async def test_with_no_local_memory_the_team_block_alone_keeps_to_its_share(
    services: Services, repo: Path
) -> None:
    team_reads(services).cache.store(IDENTITY, team_block(200))
    text = await start(services, repo)
    assert text.startswith(FENCE_OPEN)
    assert 0 < estimate_tokens(text) <= team_share(BUDGET)
