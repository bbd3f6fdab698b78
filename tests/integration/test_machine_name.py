"""MEMQ_MACHINE_NAME: the name this laptop goes by on the team server, checked as a setting,
and changed safely while events wait.

The server's dedupe key holds the machine (``memq.team.intake.origin_key``): an event that may have
reached the server under one name, sent again under another, would be a second event there.
So a new name holds only once no event waits; until then the stored one is used. Run on a
real SQLite queue and the forwarder, against the fake intake through httpx's mock transport.
"""

from __future__ import annotations

import random
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memq.config import MAX_MACHINE_NAME_CHARS, SettingError, Settings
from memq.queue import Queue
from memq.queue.testing import ManualClock
from memq.team.forwarder import Forwarder, ForwardSettings
from memq.team.intake import MAX_MACHINE_CHARS
from memq.team.outbox import Outbox
from memq.team.upstream_client import UpstreamClient
from tests.helpers.fake_team import KEY, TeamIntake
from tests.integration.test_upstream_outbox import enqueue as store
from tests.integration.test_upstream_outbox import event, repository


class TestSetting:
    def test_the_default_is_the_host_name(self) -> None:
        assert Settings.from_env({}).machine_name == socket.gethostname()
        assert Settings.from_env({"MEMQ_MACHINE_NAME": "  "}).machine_name == socket.gethostname()

    def test_a_name_is_taken_stripped(self) -> None:
        settings = Settings.from_env({"MEMQ_MACHINE_NAME": " alice's laptop "})
        assert settings.machine_name == "alice's laptop"

    def test_the_settings_file_names_it(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text('machine_name = "build-7"\n')
        settings = Settings.load({"MEMQ_HOME": str(tmp_path)})
        assert settings.machine_name == "build-7"

    @pytest.mark.parametrize(
        ("value", "problem"),
        [
            ("x" * (MAX_MACHINE_NAME_CHARS + 1), "is 201 characters long: at most 200"),
            ("lap\ttop", "holds a character that is not printable"),
            ("lap\x00top", "holds a character that is not printable"),
            ("lap\x1b[31mtop", "holds a character that is not printable"),
        ],
    )
    def test_a_bad_name_is_refused_clearly(self, value: str, problem: str) -> None:
        with pytest.raises(SettingError, match="MEMQ_MACHINE_NAME=") as caught:
            Settings.from_env({"MEMQ_MACHINE_NAME": value})
        assert problem in str(caught.value)
        assert "(set in the environment)" in str(caught.value)

    def test_a_bad_name_in_the_settings_file_names_the_file(self, tmp_path: Path) -> None:
        (tmp_path / "settings.toml").write_text('machine_name = "a\\u0007b"\n')
        with pytest.raises(SettingError) as caught:
            Settings.load({"MEMQ_HOME": str(tmp_path)})
        message = str(caught.value)
        assert message.startswith("machine_name = 'a\\x07b' holds a character that is not")
        assert f"(set in {tmp_path / 'settings.toml'})" in message

    def test_the_longest_name_is_the_servers(self) -> None:
        assert MAX_MACHINE_NAME_CHARS == MAX_MACHINE_CHARS
        name = "x" * MAX_MACHINE_NAME_CHARS
        assert Settings.from_env({"MEMQ_MACHINE_NAME": name}).machine_name == name


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


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "upstream.key"
    path.write_text(KEY + "\n")
    path.chmod(0o600)
    return path


class Laptop:
    """A daemon's forwarder as it starts with ``machine`` set (a restart: a new one)."""

    def __init__(self, queue: Queue, intake: TeamIntake, key_file: Path, machine: str) -> None:
        self.client = UpstreamClient("http://team.test", transport=intake.transport())
        self.outbox = Outbox(queue)
        self.forwarder = Forwarder(
            self.outbox,
            self.client,
            ForwardSettings(key_file=key_file),
            clock=queue.clock,
            machine=machine,
            jitter=random.Random(7).random,
        )

    async def drain(self) -> float | None:
        while (delay := await self.forwarder.step()) == 0:
            pass
        return delay


async def enqueue(queue: Queue, cwd: Path, *ns: int) -> None:
    for n in ns:
        await store(queue, event("s", n, cwd))


def machines(intake: TeamIntake) -> list[tuple[int, str]]:
    return [(int(e["local_id"]), str(e["machine"])) for e in intake.stored]


async def test_a_new_name_waits_until_nothing_that_may_have_been_sent_waits(
    queue: Queue, clock: ManualClock, tmp_path: Path, key_file: Path
) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    intake = TeamIntake()
    old = Laptop(queue, intake, key_file, "laptop-a")
    await enqueue(queue, repo, 0, 1)
    # The server stores the batch, and its answer is lost: the rows still wait.
    intake.drop_answers = 1
    assert await old.drain() is not None  # a backoff
    assert machines(intake) == [(1, "laptop-a"), (2, "laptop-a")]

    # Restarted with a new name while they wait: they go again under the old name, so the
    # server sees duplicates, not new events.
    await old.client.aclose()
    clock.advance(3600)  # past any backoff (300 s at most)
    new = Laptop(queue, intake, key_file, "laptop-b")
    assert await new.drain() is None
    assert intake.duplicates == 2
    assert machines(intake) == [(1, "laptop-a"), (2, "laptop-a")]
    # Nothing waits now: the new name holds for what comes next.
    assert await new.outbox.stored_machine() == "laptop-b"
    assert (await new.forwarder.status())["machine"] == "laptop-b"
    await enqueue(queue, repo, 2)
    assert await new.drain() is None
    assert machines(intake)[-1] == (3, "laptop-b")
    assert len(intake.stored) == 3
    await new.client.aclose()


async def test_with_nothing_waiting_a_new_name_holds_from_the_first_send(
    queue: Queue, tmp_path: Path, key_file: Path
) -> None:
    repo = repository(tmp_path, "repo", "https://github.com/team/repo.git")
    intake = TeamIntake()
    old = Laptop(queue, intake, key_file, "laptop-a")
    await enqueue(queue, repo, 0)
    assert await old.drain() is None
    await old.client.aclose()
    new = Laptop(queue, intake, key_file, "laptop-b")
    assert await new.drain() is None  # idle: the name is taken now
    await enqueue(queue, repo, 1)
    assert await new.drain() is None
    await new.client.aclose()
    assert machines(intake) == [(1, "laptop-a"), (2, "laptop-b")]
    assert intake.duplicates == 0
