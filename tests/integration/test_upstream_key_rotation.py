"""Issue 17: a laptop whose key was rotated while events waited sends them again under the new
key, and the team server counts them once.

The server dedupes by the key's name (``memq.team.intake.origin_key``), not its id: a rotated
key is the same person. The fake intake (tests.helpers.fake_team) dedupes as the server does;
here the laptop's real forwarder talks to it on a real SQLite queue.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memq.queue import Queue
from memq.queue.testing import ManualClock
from memq.team.forwarder import Forwarder, ForwardSettings
from memq.team.intake import origin_key
from memq.team.outbox import Outbox
from memq.team.upstream_client import UpstreamClient
from tests.helpers.fake_team import KEY, ROTATED, TeamIntake
from tests.integration.test_upstream_outbox import enqueue as store
from tests.integration.test_upstream_outbox import event, repository


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def queue(db_path: Path, clock: ManualClock) -> AsyncIterator[Queue]:
    """The queue on the test's clock, with forwarding switched on."""
    opened = await Queue.open(db_path, clock=clock)
    await Outbox(opened).set_enabled(True)
    yield opened
    await opened.close()


async def drain(forwarder: Forwarder) -> float | None:
    while (delay := await forwarder.step()) == 0:
        pass
    return delay


async def test_a_batch_sent_again_with_the_rotated_key_is_a_duplicate(
    queue: Queue, clock: ManualClock, tmp_path: Path
) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    key_file = tmp_path / "upstream.key"
    key_file.write_text(KEY + "\n")
    key_file.chmod(0o600)
    intake = TeamIntake()
    client = UpstreamClient("http://team.test", transport=intake.transport())
    try:
        forwarder = Forwarder(
            Outbox(queue),
            client,
            ForwardSettings(key_file=key_file),
            clock=clock,
            machine="laptop-a",
            jitter=random.Random(7).random,
        )
        for n in (0, 1):
            await store(queue, event("s", n, repo))
        # The server stores the batch and its answer is lost: both rows still wait.
        intake.drop_answers = 1
        assert await drain(forwarder) is not None  # a backoff
        assert intake.origins() == [("alice", "laptop-a", 1), ("alice", "laptop-a", 2)]

        # Alice's key is rotated meanwhile: the laptop reads the new one and sends again.
        intake.rotate(KEY, ROTATED)
        key_file.write_text(ROTATED + "\n")
        clock.advance(3600)  # past any backoff (300 s at most)
        assert await drain(forwarder) is None
    finally:
        await client.aclose()
    assert intake.duplicates == 2
    assert intake.local_ids() == [1, 2]
    assert set(intake.dedupe) == {origin_key("alice", "laptop-a", n) for n in (1, 2)}
