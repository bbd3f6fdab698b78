"""Fixtures of the integration tests: memory readers on the shared queue's database, and for
the tests that call a model API, one fake API server per module (``tests.helpers.fake_llm``)
and each provider's processor pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from memq.memory.search import MemorySearch
from memq.memory.store import MemoryStore
from memq.processors.llm import ModelProcessor
from memq.queue import Queue
from tests.helpers.backends import Backend
from tests.helpers.fake_llm import PROVIDERS, FakeLLM, settings_env


@pytest.fixture
async def store(queue: Queue, db_path: Path) -> AsyncIterator[MemoryStore]:
    """A memory store on the queue's (already migrated) database."""
    async with await MemoryStore.open(db_path) as memory:
        yield memory


@pytest.fixture
async def search(queue: Queue, db_path: Path) -> AsyncIterator[MemorySearch]:
    """Memory search on the queue's database."""
    async with await MemorySearch.open(db_path) as memory:
        yield memory


@pytest.fixture
async def backend_store(backend: Backend) -> MemoryStore:
    """A memory store on each backend's store (``backend``, whose queue migrated it)."""
    return await backend.reader(MemoryStore)


@pytest.fixture
async def backend_search(backend: Backend) -> MemorySearch:
    """Memory search on each backend's store, in its dialect."""
    return await backend.reader(MemorySearch)


@pytest.fixture(scope="module")
def llm_server() -> Iterator[FakeLLM]:
    """One fake API server for the module."""
    with FakeLLM.running() as fake:
        yield fake


@pytest.fixture
def fake(llm_server: FakeLLM) -> Iterator[FakeLLM]:
    """The server with an empty script and no requests seen."""
    llm_server.reset()
    yield llm_server
    llm_server.reset()


@pytest.fixture(params=list(PROVIDERS))
def provider(request: pytest.FixtureRequest) -> str:
    """Each model API in turn: "anthropic", "openai"."""
    name: str = request.param
    return name


@pytest.fixture
async def processor(provider: str, fake: FakeLLM) -> AsyncIterator[ModelProcessor]:
    """The provider's processor, pointed at the fake server (``settings_env``)."""
    made = PROVIDERS[provider].from_env(settings_env(provider, fake.url))
    yield made
    await made.aclose()
