"""An export moves a session between the backends: written on one, imported into the other
and back, it exports the same file (message ids included) and reads back the same records.

Each store is a real one (a SQLite file, a PostgreSQL schema) with its queue open; sessions
are written through the worker's write path and imported on the queue's writer.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import pytest

from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.archive import ImportResult, SessionExporter, import_effect
from memq.memory.records import RecordType, SummaryRecord
from memq.memory.search import MemorySearch
from tests.conftest import FAST
from tests.helpers.backends import POSTGRES, SQLITE, Backend, PgBackend, SqliteBackend
from tests.helpers.memory import Item, Prompt
from tests.helpers.memory import write as write_items
from tests.postgres.conftest import PgSchema

SESSION: Final = "claude-code:5e2f7a10-8c3b-4d6e-9f01-2a3b4c5d6e7f"
OTHER: Final = "claude-code:0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
PROJECT: Final = "/home/dev/project"
# Text each side must keep as it is: accents, combining marks, line and paragraph separators,
# C1 and C0 controls (not NUL: PostgreSQL's text cannot hold it), emoji.
TRICKY: Final = "héllo — 日本語 🚀 e\u0301 \u2028 line\u2029sep \x85 \r\n\t \x1c"

ITEMS: Final[list[Item]] = [
    Prompt(f"Fix the zanzibar retry logic: {TRICKY}"),
    ObservationRecord(
        kind=ObservationKind.DISCOVERY,
        title="Read src/quokka_policy.py",
        narrative="The backoff doubles without a cap.\n" * 200,
        facts=("backoff has no cap", TRICKY),
        concepts=("retry", "backoff"),
        files_read=("src/quokka_policy.py", "src/naïve café.py"),
        tool_name="Read",
        excerpt="def backoff(attempt): return 2 ** attempt",
    ),
    ObservationRecord(
        kind=ObservationKind.COMMAND,
        title="Ran `pytest -q` (exit 1)",
        command="pytest -q",
        exit_code=1,
        tool_name="Bash",
        excerpt="1 failed, 40 passed",
    ),
    (
        ObservationRecord(
            kind=ObservationKind.CHANGE,
            title="Capped the backoff at 30 s",
            files_modified=("src/backoff.py",),
            tool_name="Edit",
        ),
        SummaryRecord(
            request="Fix the marmalade retry",
            investigated="The retry policy",
            learned=TRICKY,
            completed="Capped the backoff",
            next_steps="Document it",
            files_read=("src/backoff.py",),
            files_edited=("src/backoff.py",),
        ),
    ),
    Prompt("Now document the setting"),
    SummaryRecord(request="Document the setting", completed="Wrote docs/settings.md"),
]


class Store:
    """One backend's store, its queue open: what an export and an import need."""

    def __init__(self, backend: Backend, store: MemoryStore, exporter: SessionExporter) -> None:
        self.backend = backend
        self.store = store
        self.exporter = exporter

    async def export(self) -> list[str]:
        lines = await self.exporter.export(SESSION)
        assert lines is not None
        return lines

    async def load(self, lines: list[str]) -> ImportResult:
        result: ImportResult = await self.backend.queue.run_in_transaction(import_effect(lines))
        return result

    async def records(self) -> dict[str, Any]:
        """What the store reads back of SESSION, but for the tables' own row ids."""
        detail = await self.store.get_session(SESSION)
        assert detail is not None
        read = {
            "session": detail,
            "observations": await self.store.observations(SESSION),
            "summaries": await self.store.summaries(SESSION),
        }
        return {name: without_row_ids(value) for name, value in read.items()}


def without_row_ids(value: Any) -> Any:
    """``value.to_dict()`` without the ``id`` of any record in it (each store's own)."""
    if isinstance(value, dict):
        return {k: without_row_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [without_row_ids(item) for item in value]
    if hasattr(value, "to_dict"):
        return without_row_ids(value.to_dict())
    return value


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """The lines as JSON, without the export time (the one field that always differs)."""
    data = [json.loads(line) for line in lines]
    del data[0]["exported_at"]
    return data


@pytest.fixture
async def stores(tmp_path: Path, pg_schema: PgSchema) -> AsyncIterator[dict[str, list[Store]]]:
    """Two stores of each backend: SQLite files, PostgreSQL schemas (the test's own and one
    made here), each with its queue open (fast retries); all closed and dropped after."""
    backends: dict[str, list[Backend]] = {
        SQLITE: [SqliteBackend(tmp_path / "first.db"), SqliteBackend(tmp_path / "second.db")],
        POSTGRES: [PgBackend(pg_schema.url, pg_schema.name, owned=False), PgBackend.create()],
    }
    opened: list[Backend] = []
    try:
        made: dict[str, list[Store]] = {}
        for name, pair in backends.items():
            made[name] = []
            for backend in pair:
                backend.queue = await backend.open(FAST)
                opened.append(backend)
                store = await backend.reader(MemoryStore)
                made[name].append(Store(backend, store, await backend.reader(SessionExporter)))
        yield made
    finally:
        for backend in opened:
            await backend.close_all()
        for pair in backends.values():
            for backend in pair:
                backend.drop()


@pytest.mark.parametrize(("home", "away"), [(SQLITE, POSTGRES), (POSTGRES, SQLITE)])
async def test_a_session_goes_to_the_other_backend_and_back_unchanged(
    stores: dict[str, list[Store]], home: str, away: str
) -> None:
    """Written on ``home``, exported, imported into ``away``, exported again and imported
    into a fresh ``home`` store: each export is the first one, ids and all; each store
    reads the same session, prompts, observations and summaries; ``away`` finds the
    imported records through its own search."""
    origin, back = stores[home]
    there = stores[away][0]
    # Another session first, so that this one's message ids are not those a fresh queue
    # would give.
    await write_items(
        origin.backend.queue,
        origin.store,
        [Prompt("Set up the deploy script"), Prompt("Add a rollback")],
        session=OTHER,
        project=PROJECT,
    )
    ids = await write_items(
        origin.backend.queue, origin.store, ITEMS, session=SESSION, project=PROJECT, end=True
    )
    assert min(ids) > 2
    first = await origin.export()
    assert len(first) == 1 + 7

    result = await there.load(first)
    assert (result.session_created, result.imported, result.remapped) == (True, 7, 0)
    crossed = await there.export()
    assert parsed(crossed) == parsed(first)
    assert await there.records() == await origin.records()

    assert (await back.load(crossed)).imported == 7
    assert parsed(await back.export()) == parsed(first)
    assert await back.records() == await origin.records()

    search = await there.backend.reader(MemorySearch)
    for word, record_type in (
        ("zanzibar", RecordType.PROMPT),
        ("quokka", RecordType.OBSERVATION),
        ("marmalade", RecordType.SUMMARY),
    ):
        (hit,) = await search.search(word, types=[record_type])
        assert (hit.session_key, hit.message_id in ids) == (SESSION, True)
    # Imported again: every record is found present, on either side.
    assert (await there.load(first)).skipped == 7
    assert (await back.load(first)).skipped == 7
