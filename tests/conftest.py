"""Fixtures shared by every test layer."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memq.queue import Queue, QueueSettings

# Short delays so retry paths run in milliseconds; the defaults are tested on their own.
FAST = QueueSettings(retry_delay=0.01, retry_delay_max=0.05, change_check_interval=0.05)


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    """A fresh database path in the test's own directory."""
    return tmp_path / "memq.db"


@pytest.fixture
async def queue(db_path: Path) -> AsyncIterator[Queue]:
    """An open queue with fast retries, closed after the test."""
    q = await Queue.open(db_path, FAST)
    yield q
    await q.close()
