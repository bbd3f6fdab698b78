"""The daemon's services and its HTTP API, built in process as ``memq serve`` builds them,
for integration tests on a real database."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx

from memq.config import Settings
from memq.queue import QueueBase
from memq.worker.composition import Built, disk_monitor, open_services, processor_pool
from memq.worker.http.app import create_app
from memq.worker.services import Services

API_TOKEN = "test-token"


@contextlib.asynccontextmanager
async def built_services(settings: Settings, queue: QueueBase) -> AsyncIterator[Built]:
    """One round of the daemon's services on ``queue`` (home made, processors closed after)."""
    settings.paths.create_home()
    processors = processor_pool(settings)
    try:
        async with open_services(
            settings,
            queue,
            processors=processors,
            disk=disk_monitor(settings),
            state=lambda: "running",
            port=1,
            started_at=0.0,
        ) as built:
            yield built
    finally:
        await processors.aclose()


@contextlib.asynccontextmanager
async def api_client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon's HTTP API on ``services``, in process, with its token."""
    app = create_app(services, token=API_TOKEN, body_limit=1 << 20)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app),
        base_url="http://127.0.0.1:1",
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    ) as client:
        yield client
