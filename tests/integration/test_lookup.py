"""Records read by reference on each backend (SQLite, PostgreSQL): every field, the order
asked, the missing ones, the timeline around a reference, and the direct read the CLI and MCP
use without a daemon."""

from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from memq.exceptions import InvalidRequestError
from memq.limits import MAX_RECORD_REFS
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, SummaryRecord, direct
from memq.memory.lookup import QUERIES, RecordLookup
from memq.memory.records import RecordType
from memq.memory.refs import RecordRef, parse_ref, parse_refs
from tests.helpers.backends import Backend, SqliteBackend
from tests.helpers.memory import Prompt, query_plan, write

SESSION = "claude-code:4e1d7f0a-77b2-4f57-9c1e-5d0f4b3a9e21"
PROJECT = "/work/retry-service"

EDIT = ObservationRecord(
    kind=ObservationKind.CHANGE,
    title="Edited src/retry.py",
    narrative="Retries now back off exponentially.",
    facts=("max 5 attempts", "jitter 10%"),
    files_read=("src/retry.py",),
    files_modified=("src/retry.py",),
    tool_name="Edit",
)
RUN = ObservationRecord(
    kind=ObservationKind.COMMAND,
    title="Ran `pytest -q` (exit 1)",
    tool_name="Bash",
    command="pytest -q",
    exit_code=1,
    excerpt="1 failed, 12 passed",
)
SUMMARY = SummaryRecord(request="fix the retry logic", completed="backoff added")


@pytest.fixture
async def lookup(backend: Backend) -> RecordLookup:
    """A record lookup on each backend's store, as the daemon builds it."""
    return await backend.reader(RecordLookup)


def database(backend: Backend) -> direct.Database:
    """The store as the CLI names it: the file, or the server's URL (in the schema)."""
    if isinstance(backend, SqliteBackend):
        return backend.db_path
    return direct.ServerDatabase(backend.target)


async def remember(backend: Backend, store: MemoryStore) -> list[int]:
    """A prompt, an edit, a command and a summary in SESSION; their message ids."""
    return await write(
        backend.queue,
        store,
        [Prompt("fix the retry logic"), EDIT, RUN, SUMMARY],
        session=SESSION,
        project=PROJECT,
    )


async def refs_of(lookup: RecordLookup, store: MemoryStore) -> dict[str, RecordRef]:
    """The references of the remembered records, by name."""
    observations = (await store.observations(SESSION, limit=10)).items
    summaries = (await store.summaries(SESSION, limit=10)).items
    detail = await store.get_session(SESSION)
    assert detail is not None
    return {
        "prompt": RecordRef(RecordType.PROMPT, detail.prompts[0].id),
        "edit": RecordRef(RecordType.OBSERVATION, int(observations[0].id or 0)),
        "run": RecordRef(RecordType.OBSERVATION, int(observations[1].id or 0)),
        "summary": RecordRef(RecordType.SUMMARY, int(summaries[0].id or 0)),
    }


class TestRecords:
    async def test_full_records_in_the_order_asked(
        self, backend: Backend, backend_store: MemoryStore, lookup: RecordLookup
    ) -> None:
        """Each reference gives its whole record, its session and project, in the order
        asked, whatever the record types."""
        await remember(backend, backend_store)
        refs = await refs_of(lookup, backend_store)
        order = [refs["summary"], refs["edit"], refs["prompt"], refs["run"]]
        found = await lookup.records(order)
        assert [record.ref for record in found.found] == order
        assert found.missing == ()
        summary, edit, prompt, run = (record.to_dict() for record in found.found)
        assert summary["ref"] == str(refs["summary"])
        assert summary["request"] == "fix the retry logic"
        assert (
            edit
            | {
                "narrative": EDIT.narrative,
                "facts": list(EDIT.facts),
                "files_modified": ["src/retry.py"],
                "kind": "change",
                "session_key": SESSION,
                "project": PROJECT,
                "record_type": "observation",
            }
            == edit
        )
        assert prompt["text"] == "fix the retry logic"
        assert (run["command"], run["exit_code"], run["excerpt"]) == ("pytest -q", 1, RUN.excerpt)
        assert all(
            item["created_at"].endswith("Z") and item["message_id"]
            for item in (summary, edit, prompt, run)
        )

    async def test_missing_references_are_listed_apart(
        self, backend: Backend, backend_store: MemoryStore, lookup: RecordLookup
    ) -> None:
        """A reference no record answers is listed in ``missing``; the others are found; a
        reference given twice is answered once."""
        await remember(backend, backend_store)
        refs = await refs_of(lookup, backend_store)
        asked = [refs["edit"], parse_ref("#999999"), refs["edit"], parse_ref("S424242")]
        found = await lookup.records(asked)
        assert [record.ref for record in found.found] == [refs["edit"]]
        assert [str(ref) for ref in found.missing] == ["#999999", "#S424242"]
        assert found.to_dict()["missing"] == ["#999999", "#S424242"]

    async def test_no_references_or_too_many_are_refused(self, lookup: RecordLookup) -> None:
        with pytest.raises(InvalidRequestError, match="at least one"):
            await lookup.records([])
        too_many = [RecordRef(RecordType.OBSERVATION, n) for n in range(1, MAX_RECORD_REFS + 2)]
        with pytest.raises(InvalidRequestError, match=f"at most {MAX_RECORD_REFS}"):
            await lookup.records(too_many)

    def test_each_read_uses_the_primary_key(self) -> None:
        """One look-up per record type, by rowid, whatever the size of memory."""
        for name in ("observations_by_id", "summaries_by_id", "prompts_by_id"):
            plan = " / ".join(query_plan(QUERIES[name], ids="[1,2]"))
            assert "INTEGER PRIMARY KEY" in plan, plan
            scans = [step for step in plan.split(" / ") if step.startswith("SCAN")]
            assert all("json_each" in step for step in scans), plan


class TestTimelineByReference:
    async def test_the_timeline_of_a_reference_is_the_timeline_of_its_message(
        self, backend: Backend, backend_store: MemoryStore, lookup: RecordLookup
    ) -> None:
        ids = await remember(backend, backend_store)
        refs = await refs_of(lookup, backend_store)
        timeline = await lookup.timeline(refs["edit"], before=1, after=1)
        assert timeline is not None
        assert timeline.anchor.message_id == ids[1]
        assert [item.message_id for item in timeline.items] == ids[:3]
        assert await lookup.timeline(parse_ref("#999999")) is None


class TestDirectReads:
    async def test_records_read_from_the_file_as_the_api_answers(
        self, backend: Backend, backend_store: MemoryStore, lookup: RecordLookup
    ) -> None:
        await remember(backend, backend_store)
        refs = await refs_of(lookup, backend_store)
        asked = [refs["run"], parse_ref("#999999")]
        # The direct reads run their own event loop, as the CLI and the MCP server call them.
        status, body = await anyio.to_thread.run_sync(direct.records, database(backend), asked)
        assert status == 200
        assert json.loads(body) == (await lookup.records(asked)).to_dict()
        missing = [parse_ref("#999999")]
        status, body = await anyio.to_thread.run_sync(direct.records, database(backend), missing)
        assert status == 404
        assert "#999999" in json.loads(body)["error"]
        status, body = await anyio.to_thread.run_sync(
            lambda: direct.timeline_at(database(backend), refs["edit"], before=0, after=0)
        )
        assert status == 200
        assert json.loads(body)["anchor"]["title"] == EDIT.title

    def test_memory_that_holds_nothing_yet_finds_nothing(self, tmp_path: Path) -> None:
        database = tmp_path / "memq.db"
        status, body = direct.records(database, parse_refs(["#1", "S2"]))
        assert status == 404
        assert "#1, #S2" in json.loads(body)["error"]
        assert not database.exists()
        status, _ = direct.timeline_at(database, parse_ref("#1"))
        assert status == 404
