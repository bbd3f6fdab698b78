"""``MEMQ_CONTEXT_BUDGET``: the tokens a SessionStart's text may use, the team's block
included (memq.worker.injection, memq.team.context_share). Read and checked as a setting
(variable and settings file, a clear error naming the variable); on a real SQLite file with
the daemon's services as ``memq serve`` builds them, a SessionStart keeps to it, and the team
server is asked for a context within the team's share of it (a real HTTP server on
127.0.0.1 standing in for the team server's context route)."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from memq.config import SettingError, Settings, settings_report
from memq.env import environment
from memq.events import route_event
from memq.limits import DEFAULT_CONTEXT_BUDGET
from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.context import estimate_tokens
from memq.memory.fence import FENCE_OPEN
from memq.queue import Queue
from memq.team.context_share import team_share
from memq.worker import injection
from memq.worker.services import Services
from tests.helpers.json_stub import JsonStub, serving
from tests.helpers.memory import SESSION, sample, write
from tests.helpers.services import built_services
from tests.integration.test_team_context_budget import team_block

IDENTITY = "github.com/acme/app"
BUDGET = 900  # well under the default 2,000: a text within 2,000 would not be within this
KEY = "memq_k1_not-a-real-secret"


@pytest.fixture
def stub() -> Iterator[JsonStub]:
    """The team server's context route on 127.0.0.1: a long team block."""
    with serving(lambda _: (200, {"project": IDENTITY, "context": team_block(200)})) as made:
        yield made


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
async def services(
    tmp_path: Path, queue: Queue, db_path: Path, stub: JsonStub
) -> AsyncIterator[Services]:
    """The daemon's services with MEMQ_CONTEXT_BUDGET=BUDGET and the stub as team server."""
    home = tmp_path / "home"
    settings = Settings.from_env(
        {
            "MEMQ_HOME": str(home),
            "MEMQ_UPSTREAM": stub.url,
            "MEMQ_CONTEXT_BUDGET": str(BUDGET),
            "MEMQ_RESERVE_BYTES": "0",
        }
    )
    settings = dataclasses.replace(settings, database=db_path)
    settings.paths.create_home()
    settings.upstream_key_path.write_text(KEY + "\n")
    settings.upstream_key_path.chmod(0o600)
    async with built_services(settings, queue) as built:
        yield built.services


async def start(services: Services, repo: Path) -> str:
    payload = sample("SessionStart", cwd=str(repo), session_id="s1", source="startup")
    return (await injection.injected(services, route_event(payload), payload)).shown.text


class TestTheSetting:
    def test_defaults_to_the_context_routes_default(self) -> None:
        assert Settings.from_env({}).context_budget == DEFAULT_CONTEXT_BUDGET == 2000

    def test_read_from_the_variable_and_the_settings_file(self, tmp_path: Path) -> None:
        assert Settings.from_env({"MEMQ_CONTEXT_BUDGET": "900"}).context_budget == 900
        (tmp_path / "settings.toml").write_text("context_budget = 3000\n")
        env = environment({"MEMQ_HOME": str(tmp_path)})
        assert Settings.from_env(env).context_budget == 3000
        assert settings_report(env)["context_budget"] == {
            "value": 3000,
            "source": "settings file",
            "variable": "MEMQ_CONTEXT_BUDGET",
        }
        over = environment({"MEMQ_HOME": str(tmp_path), "MEMQ_CONTEXT_BUDGET": "600"})
        assert Settings.from_env(over).context_budget == 600  # the variable wins

    @pytest.mark.parametrize("value", ["199", "20001", "-5"])
    def test_a_value_out_of_range_names_the_variable_and_the_range(self, value: str) -> None:
        with pytest.raises(SettingError, match="MEMQ_CONTEXT_BUDGET") as caught:
            Settings.from_env({"MEMQ_CONTEXT_BUDGET": value})
        assert "200..20000" in str(caught.value)

    @pytest.mark.parametrize("value", ["lots", "2000.5"])
    def test_a_value_that_is_no_number_names_the_variable(self, value: str) -> None:
        with pytest.raises(SettingError, match=r"MEMQ_CONTEXT_BUDGET.*not a whole number"):
            Settings.from_env({"MEMQ_CONTEXT_BUDGET": value})

    def test_the_range_ends_are_accepted(self) -> None:
        for value in (200, 20000):
            assert Settings.from_env({"MEMQ_CONTEXT_BUDGET": str(value)}).context_budget == value


async def test_a_session_start_keeps_to_the_setting_and_the_team_to_its_share(
    services: Services, queue: Queue, store: MemoryStore, repo: Path, stub: JsonStub
) -> None:
    items = [
        ObservationRecord(
            kind=ObservationKind.CHANGE, title=f"Edited src/module_{n:03d}.py: " + "detail " * 12
        )
        for n in range(120)
    ]
    await write(queue, store, list(items), session=SESSION, project=str(repo), cwd=str(repo))
    alone = await start(services, repo)  # no team text yet: local memory has the budget
    assert BUDGET - 100 < estimate_tokens(alone) <= BUDGET

    team = services.team
    assert team is not None
    await team.refresh(IDENTITY)
    # The server is asked for the team's share of this budget, not of the default one.
    assert [asked.query["budget"] for asked in stub.asked] == [[str(team_share(BUDGET))]]
    assert team_share(BUDGET) == 300
    text = await start(services, repo)
    assert estimate_tokens(text) <= BUDGET
    block = text[text.index("\n\n" + FENCE_OPEN) + 2 :]
    assert team_share(BUDGET) - 30 < estimate_tokens(block) <= team_share(BUDGET)
    assert estimate_tokens(text) > BUDGET - 100  # what the team leaves, local memory uses
