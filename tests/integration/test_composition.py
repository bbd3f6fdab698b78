"""The daemon's services built from its settings (``memq.worker.composition``), on a real
queue: one round's wiring, and what it closes when the round ends."""

from __future__ import annotations

from pathlib import Path

import pytest

from memq.config import Settings
from memq.memory import MemoryStore, Page
from memq.queue import Queue
from tests.helpers.services import built_services


class TestOpenServices:
    async def test_one_round_is_wired_on_the_queue_and_closes_its_readers(
        self, tmp_path: Path, queue: Queue, db_path: Path
    ) -> None:
        """Every service works on the queue's database, the spool directory is made for the
        hooks, and the memory readers are closed once the round ends."""
        settings = Settings(home=tmp_path / "home", database=db_path, reserve_bytes=0)
        async with built_services(settings, queue) as built:
            services = built.services
            assert services.queue is queue
            assert services.spool is built.spool
            assert Path(built.spool.directory).is_dir()
            assert isinstance(services.store, MemoryStore)
            assert await services.store.list_sessions() == Page((), 0)
            store = services.store
        with pytest.raises(ValueError, match="closed"):
            await store.has_session("s")
