"""Export and import of a session on each backend (SQLite and PostgreSQL).

Sessions are built through the real write path (Queue + MemoryStore.effect), imports run on
the queue's writer (``queue.run_in_transaction``), and searches go through MemorySearch, so
the search index (SQLite's FTS triggers of migration 0003, PostgreSQL's generated ``search``
columns) is what finds imported records.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import anyio
import pytest

from memq.exceptions import InvalidArchiveError, StorageError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.archive import (
    ExportedRecord,
    ImportResult,
    SessionExporter,
    import_effect,
    parse_export,
)
from memq.memory.records import RecordType, SummaryRecord
from memq.memory.search import MemorySearch
from memq.queue import Queue
from tests.conftest import FAST
from tests.helpers.backends import POSTGRES, Backend, PgBackend, SqliteBackend
from tests.helpers.memory import Item, Prompt
from tests.helpers.memory import write as write_items
from tests.helpers.memory_rows import dump
from tests.postgres.conftest import server_url

SESSION = "claude-code:7d1c9a40-2b6e-4f3a-9c55-0e8f1b2a6d31"
OTHER = "claude-code:3f0b8e21-6c4d-4a9e-8b17-5d2c9e0f4a62"
PROJECT = "/home/dev/project"
CWD = "/home/dev/project/src"


def obs(kind: ObservationKind, title: str, **fields: Any) -> ObservationRecord:
    return ObservationRecord(kind=kind, title=title, **fields)


# One session of every record type, with one message that made both an observation and a
# summary, and a unique word per type for searches: zanzibar (prompt), quokka (observation),
# marmalade (summary).
ITEMS: list[Item] = [
    Prompt("Fix the flaky retry logic in the worker"),
    obs(
        ObservationKind.DISCOVERY,
        "Read src/retry_policy.py",
        narrative="The backoff doubles without a cap; the quokka test proves it.",
        facts=("backoff has no cap",),
        concepts=("retry", "backoff"),
        files_read=("src/retry_policy.py",),
        tool_name="Read",
        excerpt="def backoff(attempt): return 2 ** attempt",
    ),
    obs(
        ObservationKind.COMMAND,
        "Ran `pytest -q` (exit 1)",
        command="pytest -q",
        exit_code=1,
        tool_name="Bash",
        excerpt="1 failed, 40 passed",
    ),
    (
        obs(
            ObservationKind.CHANGE,
            "Capped the backoff at 30 s",
            files_modified=("src/retry_policy.py",),
            tool_name="Edit",
        ),
        SummaryRecord(
            request="Fix the flaky retry logic",
            investigated="The retry policy",
            learned="Uncapped backoff made the marmalade job time out",
            completed="Capped the backoff",
            next_steps="Document it",
            files_read=("src/retry_policy.py",),
            files_edited=("src/retry_policy.py",),
            notes="",
        ),
    ),
    Prompt("Now document the zanzibar setting"),
    SummaryRecord(request="Document the zanzibar setting", completed="Wrote docs/settings.md"),
]

OTHER_ITEMS: list[Item] = [
    Prompt("Set up the deploy script"),
    obs(ObservationKind.CHANGE, "Edited deploy.sh", files_modified=("deploy.sh",)),
    obs(ObservationKind.COMMAND, "Ran `./deploy.sh`", command="./deploy.sh", exit_code=0),
    SummaryRecord(request="Set up the deploy script", completed="It deploys"),
    Prompt("Add a rollback"),
    obs(ObservationKind.CHANGE, "Edited rollback.sh", files_modified=("rollback.sh",)),
    obs(ObservationKind.CHANGE, "Edited rollback2.sh", files_modified=("rollback2.sh",)),
    obs(ObservationKind.CHANGE, "Edited rollback3.sh", files_modified=("rollback3.sh",)),
]


async def write(
    queue: Queue,
    store: MemoryStore,
    items: list[Item],
    *,
    session: str = SESSION,
    project: str | None = PROJECT,
    end: bool = False,
) -> list[int]:
    """``tests.helpers.memory.write`` with this file's session, project and directory:
    each item the memory of its own message; the message ids."""
    return await write_items(
        queue, store, items, session=session, project=project, cwd=CWD, end=end
    )


def stored_on_postgres(text: str) -> str:
    """``text`` as PostgreSQL stores it: each NUL as U+FFFD."""
    return text.replace("\x00", "\ufffd")


def parsed(lines: list[str]) -> list[dict[str, Any]]:
    """The lines as JSON, without the export time (the one field that always differs)."""
    data = [json.loads(line) for line in lines]
    del data[0]["exported_at"]
    return data


def without_message_ids(lines: list[str]) -> list[dict[str, Any]]:
    return [{k: v for k, v in item.items() if k != "message_id"} for item in parsed(lines)]


def without_row_ids(value: Any) -> Any:
    """``value.to_dict()`` without the ``id`` of any record in it."""
    if isinstance(value, dict):
        return {k: without_row_ids(v) for k, v in value.items() if k != "id"}
    if isinstance(value, list):
        return [without_row_ids(item) for item in value]
    if hasattr(value, "to_dict"):
        return without_row_ids(value.to_dict())
    return value


@dataclass
class Database:
    """One open memq database: its queue, store, exporter and search."""

    backend: Backend
    queue: Queue
    store: MemoryStore
    exporter: SessionExporter
    searcher: MemorySearch

    @classmethod
    async def of(cls, backend: Backend) -> Database:
        """The database of ``backend`` (its queue open), with readers the backend closes."""
        return cls(
            backend,
            backend.queue,
            await backend.reader(MemoryStore),
            await backend.reader(SessionExporter),
            await backend.reader(MemorySearch),
        )

    async def export(self, session: str = SESSION) -> list[str]:
        lines = await self.exporter.export(session)
        assert lines is not None
        return lines

    async def load(self, lines: Any) -> ImportResult:
        return await self.queue.run_in_transaction(import_effect(lines))

    async def search(self, query: str, **filters: Any) -> list[Any]:
        return await self.searcher.search(query, **filters)


@pytest.fixture
async def origin(backend: Backend) -> Database:
    """The database sessions are exported from (the ``backend`` fixture's)."""
    return await Database.of(backend)


@pytest.fixture(scope="session")
def postgres_target_store() -> Iterator[str]:
    """A second schema of the run, for the target's PostgreSQL cases; dropped at the end."""
    made = PgBackend.create()
    try:
        yield made.schema.name
    finally:
        made.drop()


@pytest.fixture
async def target(
    backend_name: str, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Database]:
    """A second, fresh database of the same backend to import into (on PostgreSQL, a second
    schema, emptied before each test as the ``backend`` fixture's is)."""
    made: Backend
    if backend_name == POSTGRES:
        schema: str = request.getfixturevalue("postgres_target_store")
        made = await PgBackend(server_url(), schema, owned=False).emptied()
    else:
        made = SqliteBackend(tmp_path / "target.db")
    try:
        made.queue = await made.open(FAST)
        yield await Database.of(made)
    finally:
        try:
            await made.close_all()
        finally:
            made.drop()


class TestExport:
    async def test_the_file_is_the_metadata_then_records_in_time_order(
        self, origin: Database
    ) -> None:
        """Line 1 describes the session; each record follows in message order, a message's
        observation before its summary, without the database-local row id."""
        ids = await write(origin.queue, origin.store, ITEMS, end=True)
        lines = await origin.export()
        assert all(line.endswith("\n") and line.count("\n") == 1 for line in lines)
        head, *records = [json.loads(line) for line in lines]
        assert head["type"] == "memq-export"
        assert head["format"] == 1
        assert head["memq_version"]
        assert head["exported_at"].endswith("Z")
        session = head["session"]
        assert session["key"] == SESSION
        assert session["assistant"] == "claude-code"
        assert session["external_id"] == SESSION.removeprefix("claude-code:")
        assert session["project"] == PROJECT
        assert session["cwd"] == CWD
        assert session["title"] == "Fix the flaky retry logic in the worker"
        assert session["prompt_count"] == 2
        assert session["ended_at"] is not None
        assert set(session) == {
            "key",
            "assistant",
            "external_id",
            "project",
            "cwd",
            "title",
            "prompt_count",
            "started_at",
            "ended_at",
            "updated_at",
        }
        assert [(r["type"], r["message_id"]) for r in records] == [
            ("prompt", ids[0]),
            ("observation", ids[1]),
            ("observation", ids[2]),
            ("observation", ids[3]),
            ("summary", ids[3]),
            ("prompt", ids[4]),
            ("summary", ids[5]),
        ]
        assert all("id" not in r and "session_key" not in r for r in records)
        assert list(records[0]) == ["type", "message_id", "created_at", "number", "text"]
        assert records[1]["facts"] == ["backoff has no cap"]
        assert records[2]["exit_code"] == 1
        assert records[4]["files_edited"] == ["src/retry_policy.py"]
        assert [r["created_at"] for r in records] == sorted(r["created_at"] for r in records)

    async def test_an_unknown_session_is_none(self, origin: Database) -> None:
        """Exporting a session memory does not hold gives None (the API answers 404)."""
        assert await origin.exporter.export(SESSION) is None

    async def test_a_session_without_records_exports_its_metadata(self, origin: Database) -> None:
        """A session with no records is one line, and imports as a session alone."""
        # A Stop whose turn left no summary: a session without records. (A SessionStart
        # alone makes no session: memq.memory.store.)
        await origin.queue.enqueue(SESSION, "summarize", {"hook_event_name": "Stop"})
        await write(origin.queue, origin.store, [])
        lines = await origin.export()
        assert len(lines) == 1
        assert parse_export(lines).records == ()


# Text that JSON, UTF-8 and line splitting each could get wrong.
TRICKY = "héllo wörld — 日本語 🚀 e\u0301 \u2028 line\u2029sep \x85 \r\n\t \x1c"


class TestRoundTrip:
    async def test_export_import_export_is_equal(self, origin: Database, target: Database) -> None:
        """A session imported into a fresh database exports the same file, ids included."""
        # Another session first, so that this one's message ids do not start at 1 (where a
        # fresh queue's own ids would start).
        await write(origin.queue, origin.store, OTHER_ITEMS, session=OTHER)
        ids = await write(origin.queue, origin.store, ITEMS, end=True)
        assert min(ids) > len(OTHER_ITEMS)
        first = await origin.export()
        result = await target.load(first)
        assert result == ImportResult(
            session_key=SESSION,
            session_created=True,
            prompts=2,
            observations=3,
            summaries=2,
            skipped=0,
            remapped=0,
            renumbered=0,
        )
        assert result.imported == 7
        assert parsed(await target.export()) == parsed(first)
        # What the store reads back is the same too, but for the tables' own row ids.
        original = await origin.store.get_session(SESSION)
        copy = await target.store.get_session(SESSION)
        assert original is not None
        assert copy is not None
        assert without_row_ids(copy) == without_row_ids(original)
        for read in (MemoryStore.observations, MemoryStore.summaries):
            page = await read(target.store, SESSION)
            assert without_row_ids(page) == without_row_ids(await read(origin.store, SESSION))

    @pytest.mark.parametrize(
        "tricky",
        [
            pytest.param(TRICKY, id="text"),
            pytest.param(
                TRICKY + " \x00 nul",
                id="nul",
            ),
        ],
    )
    async def test_unicode_and_long_texts_survive(
        self, origin: Database, target: Database, tricky: str
    ) -> None:
        """Any Unicode text, line separators and control characters (NUL too) included, and
        texts of hundreds of kilobytes come back exactly; the file is UTF-8, not escaped
        ASCII. PostgreSQL's text cannot hold NUL: there each one is stored as U+FFFD, and
        reads, exports and the comparison that finds records already present agree."""
        long_text = "".join(f"line {n}: {tricky}\n" for n in range(4000))
        items: list[Item] = [
            Prompt(tricky),
            obs(
                ObservationKind.OTHER,
                "Ünïcödé 🚀 title",
                narrative=long_text,
                facts=(tricky, "€"),
                files_read=("src/naïve café.py",),
                command="echo '日本語'",
                excerpt=tricky,
            ),
            SummaryRecord(request=tricky, learned=long_text, files_edited=("ü/ß.txt",)),
        ]
        await write(origin.queue, origin.store, items)
        first = await origin.export()
        text = "".join(first)
        assert "日本語 🚀" in text
        assert len(text.split("\n")) == len(first) + 1  # only "\n" ends a line
        assert len(text) > 2 * len(long_text)
        # As a client sends it: the file's UTF-8 bytes.
        await target.load(text.encode("utf-8"))
        assert parsed(await target.export()) == parsed(first)
        if origin.backend.postgres and "\x00" in tricky:
            assert "\\u0000" not in text
            assert "\ufffd nul" in text
            tricky, long_text = stored_on_postgres(tricky), stored_on_postgres(long_text)
        observations = await target.store.observations(SESSION)
        assert observations.items[0].narrative == long_text
        assert observations.items[0].facts == (tricky, "€")
        detail = await target.store.get_session(SESSION)
        assert detail is not None
        assert detail.prompts[0].text == tricky
        # The comparison that finds records already present reads these texts exactly too.
        before = dump(origin.backend)
        assert (await origin.load(text)).skipped == 3
        assert dump(origin.backend) == before

    async def test_a_nul_from_a_sqlite_export_is_stored_as_u_fffd(
        self, origin: Database, target: Database
    ) -> None:
        """A file written where NUL could be stored (SQLite) imports on PostgreSQL with
        U+FFFD in its place, and importing it again finds every record already there."""
        nul = "before \x00 after"
        await write(origin.queue, origin.store, [Prompt(nul)])
        text = "".join(await origin.export())
        text = text.replace("\ufffd", "\\u0000")  # PostgreSQL's export: as SQLite's reads
        assert "\\u0000" in text
        await target.load(text)
        detail = await target.store.get_session(SESSION)
        assert detail is not None
        assert detail.prompts[0].text == (
            stored_on_postgres(nul) if target.backend.postgres else nul
        )
        assert (await target.load(text)).skipped == 1

    async def test_a_file_read_line_by_line_imports(
        self, origin: Database, target: Database, tmp_path: Path
    ) -> None:
        """The lines of an open file (what `memq import` could stream) import the same."""
        await write(origin.queue, origin.store, ITEMS)
        path = tmp_path / "session.jsonl"
        path.write_text("".join(await origin.export()), encoding="utf-8")
        with path.open(encoding="utf-8", newline="") as handle:
            await target.load(handle)
        assert parsed(await target.export()) == parsed(await origin.export())


class TestIdempotence:
    async def test_a_second_import_imports_nothing(
        self, origin: Database, target: Database
    ) -> None:
        """Importing the same file again skips every record and changes no row."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        await target.load(lines)
        before = dump(target.backend)
        again = await target.load(lines)
        assert again.imported == 0
        assert again.skipped == 7
        assert not again.session_created
        assert dump(target.backend) == before

    async def test_a_message_imported_before_is_not_imported_again_once_edited(
        self, origin: Database, target: Database
    ) -> None:
        """The queue row an import leaves marks the message as imported into the session:
        a hand-edited copy of the file adds no second record for it."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        await target.load(lines)
        edited = json.loads(lines[2])
        edited["title"] = "An edited title"
        before = dump(target.backend)
        again = await target.load([*lines[:2], json.dumps(edited) + "\n", *lines[3:]])
        assert again.imported == 0
        assert again.skipped == 7
        assert dump(target.backend) == before

    async def test_a_file_imports_again_once_its_records_were_forgotten(
        self, origin: Database, target: Database
    ) -> None:
        """Queue rows of an import whose records are gone (memory forgotten on its own) do not
        block the next import: it restores the session, under the same ids."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        await target.load(lines)
        assert await target.queue.run_in_transaction(target.store.forget_effect(SESSION)) > 0
        assert target.backend.table("SELECT count(*) AS n FROM pending_messages")[0]["n"] == 6
        result = await target.load(lines)
        assert result.imported == 7
        assert result.remapped == 0
        assert parsed(await target.export()) == parsed(lines)
        assert target.backend.table("SELECT count(*) AS n FROM pending_messages")[0]["n"] == 6

    async def test_a_second_import_after_the_queue_rows_were_pruned_imports_nothing(
        self, origin: Database, target: Database
    ) -> None:
        """Retention prunes the queue rows an import leaves; the records themselves still
        show that the file was imported."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        pruning = target.backend
        queue = await pruning.open(replace(FAST, processed_retention=0.0))
        await queue.run_in_transaction(import_effect(lines))
        await anyio.sleep(0.01)
        report = await queue.maintain()
        assert report.processed_pruned == 6  # one row per imported message
        assert pruning.table("SELECT count(*) AS n FROM pending_messages")[0]["n"] == 0
        before = dump(pruning)
        again = await queue.run_in_transaction(import_effect(lines))
        assert again.imported == 0
        assert again.skipped == 7
        assert dump(pruning) == before

    async def test_importing_into_the_database_it_came_from_adds_nothing(
        self, origin: Database
    ) -> None:
        """The records are already there (under their own message ids): all skipped."""
        await write(origin.queue, origin.store, ITEMS, end=True)
        lines = await origin.export()
        before = dump(origin.backend)
        result = await origin.load(lines)
        assert result.imported == 0
        assert result.skipped == 7
        assert dump(origin.backend) == before

    async def test_a_record_is_present_only_when_every_field_matches(
        self, origin: Database
    ) -> None:
        """A record of the session at the same time but differing in one field (here the
        exit code: 1 against null, or a prompt's text) is a different record: imported."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        command = json.loads(lines[3])
        assert (command["type"], command["exit_code"]) == ("observation", 1)
        prompt = json.loads(lines[1])
        assert prompt["type"] == "prompt"
        changed = [
            command | {"message_id": 900, "exit_code": None},
            prompt | {"message_id": 901, "text": prompt["text"] + "!"},
            prompt | {"message_id": 902, "number": 7},  # the same prompt under another number
        ]
        result = await origin.load([lines[0], *(json.dumps(line) + "\n" for line in changed)])
        assert (result.prompts, result.observations, result.skipped) == (1, 1, 1)

    async def test_a_grown_export_imports_only_what_is_new(
        self, origin: Database, target: Database
    ) -> None:
        """A later export of the same session adds only the records written since."""
        await write(origin.queue, origin.store, ITEMS[:3])
        await target.load(await origin.export())
        await write(origin.queue, origin.store, ITEMS[3:])
        result = await target.load(await origin.export())
        assert (result.prompts, result.observations, result.summaries) == (1, 1, 2)
        assert result.skipped == 3
        assert result.remapped == 0
        assert parsed(await target.export()) == parsed(await origin.export())


class TestIdCollisions:
    async def test_taken_ids_are_remapped_in_order_without_duplicates(
        self, origin: Database, target: Database
    ) -> None:
        """When the target used the file's message ids, every imported message gets a new
        id, in the original order, after every id in use; nothing else changes."""
        await write(origin.queue, origin.store, ITEMS)
        target_ids = await write(target.queue, target.store, OTHER_ITEMS, session=OTHER)
        other_before = await target.export(OTHER)
        lines = await origin.export()
        original_ids = sorted({json.loads(line)["message_id"] for line in lines[1:]})
        assert set(original_ids) <= set(target_ids)  # they collide

        result = await target.load(lines)
        assert result.imported == 7
        assert result.remapped == len(original_ids) == 6
        copy = await target.export()
        assert without_message_ids(copy) == without_message_ids(lines)
        new_ids = [json.loads(line)["message_id"] for line in copy[1:]]
        assert new_ids == sorted(new_ids)
        assert min(new_ids) > max(target_ids)
        assert parsed(await target.export(OTHER)) == parsed(other_before)
        for name in ("prompts", "observations", "summaries"):
            rows = target.backend.table(f"SELECT message_id, session_key FROM {name}")
            ours = [row["message_id"] for row in rows if row["session_key"] == SESSION]
            assert len(ours) == len(set(ours))
        # And the second import is still a no-op.
        assert (await target.load(lines)).imported == 0

    async def test_imported_message_ids_are_reserved_in_the_queue(
        self, origin: Database, target: Database
    ) -> None:
        """Each imported message has a settled, payload-free queue row under its id, so the
        queue never gives that id to a new message."""
        ids = await write(origin.queue, origin.store, ITEMS)
        await target.load(await origin.export())
        rows = target.backend.rows()
        assert [row["id"] for row in rows] == ids
        assert {row["status"] for row in rows} == {"processed"}
        assert {row["payload"] for row in rows} == {None}
        assert {row["session_id"] for row in rows} == {SESSION}
        assert [row["dedupe_key"] for row in rows] == [f"import:{i}" for i in ids]
        assert all(row["finished_at"] is not None for row in rows)
        fresh = await target.queue.enqueue(OTHER, "prompt", {"prompt": "next"})
        assert fresh.message_id > max(ids)
        stats = await target.queue.stats()
        assert stats.counts.pending == 1

    async def test_imported_records_are_searchable(
        self, origin: Database, target: Database
    ) -> None:
        """The search index holds imported records of every type, under their new ids."""
        await write(target.queue, target.store, OTHER_ITEMS, session=OTHER)
        await write(origin.queue, origin.store, ITEMS)
        await target.load(await origin.export())
        copy = [json.loads(line) for line in (await target.export())[1:]]
        for word, record_type in (
            ("zanzibar", RecordType.PROMPT),
            ("quokka", RecordType.OBSERVATION),
            ("marmalade", RecordType.SUMMARY),
        ):
            hits = await target.search(word, types=[record_type])
            assert len(hits) == 1, word
            assert hits[0].session_key == SESSION
            assert hits[0].project == PROJECT
            assert any(
                r["type"] == record_type.value and r["message_id"] == hits[0].message_id
                for r in copy
            )
        assert len(await target.search("zanzibar", session_key=SESSION)) == 2

    async def test_taken_prompt_numbers_are_renumbered_after_the_sessions_own(
        self, origin: Database, target: Database
    ) -> None:
        """Importing into a session that exists keeps what it says, numbers the imported
        prompts after its own, and counts them."""
        await write(origin.queue, origin.store, ITEMS, end=True)
        await write(
            target.queue,
            target.store,
            [Prompt("Another first prompt"), Prompt("Another second prompt")],
            project=None,
        )
        result = await target.load(await origin.export())
        assert not result.session_created
        assert result.prompts == 2
        assert result.renumbered == 2
        detail = await target.store.get_session(SESSION)
        origin_detail = await origin.store.get_session(SESSION)
        assert detail is not None
        assert origin_detail is not None
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "Another first prompt"),
            (2, "Another second prompt"),
            (3, "Fix the flaky retry logic in the worker"),
            (4, "Now document the zanzibar setting"),
        ]
        assert detail.prompt_count == 4
        assert detail.title == "Another first prompt"  # the session's own wins
        assert detail.project == PROJECT  # the file fills what it lacked
        assert detail.ended_at is None  # still open here
        assert detail.started_at == origin_detail.started_at
        assert detail.updated_at > origin_detail.updated_at


class TestInvalidFiles:
    async def test_an_invalid_line_writes_nothing(self, origin: Database, target: Database) -> None:
        """A bad line anywhere, even the last, refuses the whole file before any write."""
        await write(origin.queue, origin.store, ITEMS)
        lines = await origin.export()
        last = json.loads(lines[-1])
        del last["request"]
        before = dump(target.backend)
        with pytest.raises(InvalidArchiveError, match=r"^line 8: missing field 'request'$"):
            await target.load([*lines[:-1], json.dumps(last) + "\n"])
        with pytest.raises(InvalidArchiveError, match=r"^line 3: not JSON"):
            await target.load([*lines[:2], "{oops\n", *lines[2:]])
        assert dump(target.backend) == before

    async def test_a_write_that_fails_midway_leaves_nothing(
        self, origin: Database, target: Database
    ) -> None:
        """The import is one transaction: a record the database refuses undoes the session,
        the records before it and their queue rows."""
        await write(origin.queue, origin.store, ITEMS)
        document = parse_export(await origin.export())
        bad: list[ExportedRecord] = list(document.records)
        # The last observation: a prompt, observations and their queue rows come before it.
        index = max(i for i, r in enumerate(bad) if r.type is RecordType.OBSERVATION)
        bad[index] = replace(bad[index], fields={**bad[index].fields, "kind": "nonsense"})
        # The ids the rolled-back inserts took are gone on PostgreSQL (its sequences).
        counters = not target.backend.postgres
        before = dump(target.backend, counters=counters)
        with pytest.raises(StorageError, match=r"(?i)check constraint"):  # SQLite's, PG's
            await target.load(replace(document, records=tuple(bad)))
        assert dump(target.backend, counters=counters) == before
        # The writer is fine afterwards.
        assert (await target.load(document)).imported == 7


def hand_written(*prompts: tuple[int, int, str], prompt_count: int = 0) -> str:
    """An export of SESSION written by hand: prompts as (message id, number, text)."""
    session = {
        "key": SESSION,
        "assistant": "claude-code",
        "external_id": SESSION.removeprefix("claude-code:"),
        "project": None,
        "cwd": None,
        "title": None,
        "prompt_count": prompt_count,
        "started_at": "2025-01-31T12:00:00.000Z",
        "ended_at": None,
        "updated_at": "2025-01-31T13:00:00.000Z",
    }
    lines = [
        {
            "type": "memq-export",
            "format": 1,
            "memq_version": "0",
            "exported_at": "2025-02-01T00:00:00Z",
            "session": session,
        }
    ]
    lines += [
        {
            "type": "prompt",
            "message_id": message_id,
            "created_at": f"2025-01-31T12:{message_id:02d}:00.000Z",
            "number": number,
            "text": text,
        }
        for message_id, number, text in prompts
    ]
    return "".join(json.dumps(line) + "\n" for line in lines)


class TestHandWrittenFiles:
    async def test_prompt_numbers_stay_in_time_order_when_some_are_taken(
        self, target: Database
    ) -> None:
        """Once one imported prompt is numbered after the session's highest, the ones after
        it are too, even where their own number is free."""
        await target.load(hand_written((1, 2, "two"), (2, 10, "ten")))
        result = await target.load(hand_written((3, 1, "one"), (4, 2, "b"), (5, 3, "c")))
        assert result.renumbered == 2
        detail = await target.store.get_session(SESSION)
        assert detail is not None
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "one"),
            (2, "two"),
            (10, "ten"),
            (11, "b"),
            (12, "c"),
        ]
        assert detail.prompt_count == 5

    @pytest.mark.parametrize(("said", "counted"), [(5, 5), (0, 2)])
    async def test_a_new_sessions_prompt_count_is_never_below_its_prompts(
        self, target: Database, said: int, counted: int
    ) -> None:
        """The file's count is kept (prompts may have been forgotten before the export), but
        a count below the prompts imported would be a lie."""
        await target.load(hand_written((1, 1, "a"), (2, 2, "b"), prompt_count=said))
        detail = await target.store.get_session(SESSION)
        assert detail is not None
        assert detail.prompt_count == counted
