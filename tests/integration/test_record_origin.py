"""Issue 17: records carry who produced them and on which machine, on each backend.

The team server's intake stamps each event's payload with ``memq_origin`` (key name,
machine); the store copies the two onto every record the event produced. Records, search
hits, timelines, look-ups, the feed and the context name them; search, the context, the feed
and the session list filter by person; a context line of someone else's record is labelled
with their name. Forks, transfers and export/import keep them. A malformed ``memq_origin`` is
ignored, never a reason to refuse an event.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest

from memq.cli.parser import build_parser
from memq.config import Settings
from memq.exceptions import InvalidArchiveError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord, SummaryRecord
from memq.memory.archive import SessionExporter, import_effect
from memq.memory.context import ContextBuilder
from memq.memory.feed import FeedReader
from memq.memory.fork import fork_effect
from memq.memory.lookup import RecordLookup
from memq.memory.origin import MAX_ORIGIN_CHARS, record_origin
from memq.memory.records import ProcessResult, RecordType
from memq.memory.refs import RecordRef
from memq.memory.search import MemorySearch
from memq.queue import Queue
from memq.storage.sqlfile import load_queries
from tests.helpers.backends import Backend
from tests.helpers.memory import Prompt, query_plan, settle
from tests.helpers.services import api_client, built_services

PROJECT = "/home/dev/app"
ALICE = "claude-code:alice-1"
BOB = "claude-code:bob-1"
LOCAL = "claude-code:mine-1"

Item = Prompt | ObservationRecord | SummaryRecord | tuple[ObservationRecord, SummaryRecord]


def change(title: str, *files: str) -> ObservationRecord:
    return ObservationRecord(kind=ObservationKind.CHANGE, title=title, files_modified=files)


def stamped(author: str, machine: str, local_id: int = 1) -> dict[str, Any]:
    """The ``memq_origin`` the team server's intake adds to a payload."""
    return {
        "memq_origin": {
            "key": author,
            "machine": machine,
            "local_id": local_id,
            "project": "github.com/o/r",
        }
    }


async def remember(
    queue: Queue,
    store: MemoryStore,
    session: str,
    items: list[Item],
    origin: Any = None,
) -> list[int]:
    """Store each item as one message's memory through the worker's write path, each
    payload carrying ``origin`` as its ``memq_origin`` (none when None)."""
    results: dict[int, ProcessResult] = {}
    ids = []
    for item in items:
        payload: dict[str, Any] = {"cwd": PROJECT}
        if origin is not None:
            payload["memq_origin"] = origin
        if isinstance(item, Prompt):
            kind, result = "prompt", ProcessResult()
            payload["prompt"] = item.text
        elif isinstance(item, ObservationRecord):
            kind, result = "observation", ProcessResult(observation=item)
        elif isinstance(item, SummaryRecord):
            kind, result = "summarize", ProcessResult(summary=item)
        else:
            kind, result = "summarize", ProcessResult(observation=item[0], summary=item[1])
        message_id = (await queue.enqueue(session, kind, payload)).message_id
        results[message_id] = result
        ids.append(message_id)
        await anyio.sleep(0.002)  # distinct times: the context orders by them
    await settle(queue, store, session, results, project=PROJECT)
    return ids


async def team_memory(queue: Queue, store: MemoryStore) -> None:
    """Alice's session (laptop-a), then Bob's (laptop-b), then one of this machine's user,
    all in one project, all about the backoff."""
    await remember(
        queue,
        store,
        ALICE,
        [
            Prompt("Fix the retry backoff"),
            change("Edited src/retry.py backoff", "src/retry.py"),
            SummaryRecord(request="Fix the retry backoff", completed="alice's backoff works"),
        ],
        stamped("alice", "laptop-a")["memq_origin"],
    )
    await remember(
        queue,
        store,
        BOB,
        [
            Prompt("Test the backoff"),
            (
                change("Wrote tests/test_backoff.py", "tests/test_backoff.py"),
                SummaryRecord(request="Backoff tests", completed="bob's tests pass"),
            ),
        ],
        stamped("bob", "laptop-b")["memq_origin"],
    )
    await remember(queue, store, LOCAL, [Prompt("Read the backoff notes"), change("Read backoff")])


def origins(backend: Backend, table: str, session: str) -> set[tuple[Any, Any]]:
    rows = backend.table(f"SELECT author, machine FROM {table} WHERE session_key = ?", session)
    return {(row["author"], row["machine"]) for row in rows}


@pytest.fixture
async def memory(backend: Backend, backend_store: MemoryStore) -> MemoryStore:
    await team_memory(backend.queue, backend_store)
    return backend_store


class TestStored:
    async def test_each_record_names_its_author_and_machine(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        for table in ("prompts", "observations", "summaries"):
            assert origins(backend, table, ALICE) == {("alice", "laptop-a")}, table
            assert origins(backend, table, BOB) == {("bob", "laptop-b")}, table
        # This machine's user's records name nobody.
        assert origins(backend, "prompts", LOCAL) == {(None, None)}
        assert origins(backend, "observations", LOCAL) == {(None, None)}

    async def test_the_store_reads_them_back(self, memory: MemoryStore) -> None:
        detail = await memory.get_session(BOB)
        assert detail is not None
        assert [(p.author, p.machine) for p in detail.prompts] == [("bob", "laptop-b")]
        observations = (await memory.observations(BOB)).items
        assert [o.to_dict()["author"] for o in observations] == ["bob"]
        summaries = (await memory.summaries(ALICE)).items
        assert [(s.author, s.machine) for s in summaries] == [("alice", "laptop-a")]
        mine = (await memory.observations(LOCAL)).items
        assert [(o.author, o.machine) for o in mine] == [(None, None)]

    @pytest.mark.parametrize(
        ("origin", "expected"),
        [
            ("alice", (None, None)),  # not an object
            ({"key": 7, "machine": ["x"]}, (None, None)),  # not strings
            ({"key": "", "machine": "   "}, (None, None)),  # empty, blank
            ({"key": "a" * (MAX_ORIGIN_CHARS + 1), "machine": "m"}, (None, "m")),  # too long
            ({"key": "al\nice", "machine": "laptop\x1b[31m"}, (None, None)),  # not printable
            ({"key": " alice", "machine": "laptop-a"}, (None, "laptop-a")),  # padded
            ({"machine": "laptop-a"}, (None, "laptop-a")),  # no key
            ({"key": "a" * MAX_ORIGIN_CHARS, "machine": "m"}, ("a" * MAX_ORIGIN_CHARS, "m")),
        ],
    )
    async def test_a_bad_origin_is_ignored(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        origin: Any,
        expected: tuple[str | None, str | None],
    ) -> None:
        """Whatever ``memq_origin`` holds, the event's records are stored; only names that
        are bounded printable strings are kept."""
        await remember(
            backend.queue, backend_store, ALICE, [Prompt("hello"), change("Edited a.py")], origin
        )
        assert origins(backend, "prompts", ALICE) == {expected}
        assert origins(backend, "observations", ALICE) == {expected}

    def test_record_origin_reads_only_names(self) -> None:
        assert record_origin(None) == (None, None)
        assert record_origin({"memq_origin": None}) == (None, None)
        assert record_origin(stamped("alice", "laptop-a")) == ("alice", "laptop-a")


class TestSearch:
    async def test_hits_name_the_author_and_filter_by_it(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        search = await backend.reader(MemorySearch)
        every = await search.search("backoff")
        assert {hit.session_key for hit in every} == {ALICE, BOB, LOCAL}
        by_session = {hit.session_key: hit.to_dict() for hit in every}
        assert (by_session[ALICE]["author"], by_session[ALICE]["machine"]) == (
            "alice",
            "laptop-a",
        )
        assert (by_session[LOCAL]["author"], by_session[LOCAL]["machine"]) == (None, None)

        alice = await search.search("backoff", authors=["alice"])
        assert alice
        assert {hit.author for hit in alice} == {"alice"}
        both = await search.search("backoff", authors=["alice", "bob"])
        assert {hit.author for hit in both} == {"alice", "bob"}
        assert len(both) == len([hit for hit in every if hit.author is not None])
        assert await search.search("backoff", authors=["carol"]) == []
        # With the other filters: the author's records of that type only.
        prompts = await search.search("backoff", authors=["bob"], types=["prompt"])
        assert [(hit.record_type, hit.author) for hit in prompts] == [(RecordType.PROMPT, "bob")]

    async def test_timelines_and_lookups_name_the_author(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        search = await backend.reader(MemorySearch)
        (hit,) = await search.search("tests", authors=["bob"], types=["observation"])
        timeline = await search.timeline(hit.message_id)
        assert timeline is not None
        assert {item["author"] for item in timeline.to_dict()["items"]} == {"bob"}
        lookup = await backend.reader(RecordLookup)
        found = await lookup.records([RecordRef(RecordType.OBSERVATION, hit.id)])
        (item,) = found.to_dict()["items"]
        assert (item["author"], item["machine"]) == ("bob", "laptop-b")


class TestContext:
    async def test_someone_elses_lines_are_labelled(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        builder = await backend.reader(ContextBuilder)
        text = await builder.build(PROJECT)
        lines = text.splitlines()
        alice = [line for line in lines if "[alice]" in line]
        bob = [line for line in lines if "[bob]" in line]
        assert any("Edited src/retry.py" in line for line in alice)
        assert "Completed: alice's backoff works" in text
        assert any("Wrote tests/test_backoff.py" in line for line in bob)
        # The label follows the reference: "- #12 [alice] 5m ago ...".
        assert all(line.split()[2] == "[alice]" for line in alice)
        # This machine's user's line has no name on it.
        (mine,) = [line for line in lines if "Read backoff" in line]
        assert not mine.split()[2].startswith("["), mine

    async def test_the_viewer_s_own_lines_are_not_labelled(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        builder = await backend.reader(ContextBuilder)
        text = await builder.build(PROJECT, viewer="alice")
        assert "[alice]" not in text
        assert "Edited src/retry.py" in text
        assert "[bob]" in text

    async def test_the_context_filters_by_person(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        builder = await backend.reader(ContextBuilder)
        text = await builder.build(PROJECT, authors=["bob"])
        assert "Wrote tests/test_backoff.py" in text
        assert "bob's tests pass" in text
        assert "alice" not in text
        assert "Read backoff" not in text
        assert await builder.build(PROJECT, authors=["carol"]) == ""
        both = await builder.build(PROJECT, authors=["alice", "bob"])
        assert "Edited src/retry.py" in both
        assert "Wrote tests/test_backoff.py" in both
        assert "Read backoff" not in both

    async def test_a_session_of_two_people_shows_only_the_one_asked_for(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        """After a transfer merged Bob's session into Alice's, the filter is by record, not
        by session."""
        await backend.queue.move_session(BOB, ALICE)
        await backend.queue.run_in_transaction(memory.transfer_effect(BOB, ALICE))
        builder = await backend.reader(ContextBuilder)
        alice = await builder.build(PROJECT, authors=["alice"])
        assert "Edited src/retry.py" in alice
        assert "Wrote tests/test_backoff.py" not in alice
        assert "bob's tests pass" not in alice
        bob = await builder.build(PROJECT, authors=["bob"])
        assert "Wrote tests/test_backoff.py" in bob
        assert "Edited src/retry.py" not in bob


class TestFeedAndSessions:
    async def test_the_feed_names_and_filters_the_author(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        feed = await backend.reader(FeedReader)
        last = await feed.last_seq()
        every = await feed.newest(last, limit=50)
        assert {(item.session_key, item.author) for item in every} == {
            (ALICE, "alice"),
            (BOB, "bob"),
            (LOCAL, None),
        }
        bob = await feed.newest(last, limit=50, authors=["bob"])
        assert {item.to_json()["author"] for item in bob} == {"bob"}
        assert {item.to_json()["machine"] for item in bob} == {"laptop-b"}
        assert len(bob) == 3  # a prompt, an observation and a summary
        assert await feed.after(0, authors=["alice"]) == [i for i in every if i.author == "alice"]
        assert await feed.after(0, authors=["null"]) == []  # never matches local records

    async def test_the_session_list_filters_by_person(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        page = await memory.list_sessions(authors=["alice"])
        assert ([s.key for s in page.items], page.total) == ([ALICE], 1)
        page = await memory.list_sessions(authors=["alice", "bob"])
        assert ([s.key for s in page.items], page.total) == ([BOB, ALICE], 2)
        page = await memory.list_sessions(authors=["bob"], assistants=["codex"])
        assert (page.items, page.total) == ((), 0)
        assert (await memory.list_sessions(authors=["bob"], limit=0)).total == 1


class TestCopies:
    async def test_a_fork_and_a_transfer_keep_the_origin(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        queue = backend.queue
        child = "claude-code:bob-fork"
        await queue.run_in_transaction(fork_effect(ALICE, child))
        for table in ("prompts", "observations", "summaries"):
            assert origins(backend, table, child) == {("alice", "laptop-a")}, table
        # Bob goes on in the fork on his laptop: his records next to Alice's copies.
        bobs = stamped("bob", "b")["memq_origin"]
        await remember(queue, memory, child, [change("Edited src/jitter.py")], bobs)
        moved = "claude-code:moved"
        await queue.move_session(child, moved)
        await queue.run_in_transaction(memory.transfer_effect(child, moved))
        assert origins(backend, "observations", moved) == {("alice", "laptop-a"), ("bob", "b")}
        assert origins(backend, "prompts", moved) == {("alice", "laptop-a")}
        # The fork's copies are Alice's, but not hers to list: only her own records are.
        page = await memory.list_sessions(authors=["alice"])
        assert [s.key for s in page.items] == [ALICE]
        assert [s.key for s in (await memory.list_sessions(authors=["bob"])).items] == [
            moved,
            BOB,
        ]

    async def test_export_and_import_keep_the_origin(
        self, backend: Backend, memory: MemoryStore
    ) -> None:
        exporter = await backend.reader(SessionExporter)
        lines = await exporter.export(ALICE)
        assert lines is not None
        records = [json.loads(line) for line in lines[1:]]
        assert {(r["author"], r["machine"]) for r in records} == {("alice", "laptop-a")}
        local = await exporter.export(LOCAL)
        assert local is not None
        # A record of this machine's user leaves the fields out, as a file before them did.
        assert all("author" not in json.loads(line) for line in local[1:])

        copy = "claude-code:alice-copy"
        await backend.queue.run_in_transaction(import_effect(_renamed(lines, copy)))
        for table in ("prompts", "observations", "summaries"):
            assert origins(backend, table, copy) == {("alice", "laptop-a")}, table

        # A file without the fields (an older export) imports, naming nobody.
        older = "claude-code:alice-older"
        stripped = [lines[0]] + [_without_origin(line) for line in lines[1:]]
        await backend.queue.run_in_transaction(import_effect(_renamed(stripped, older)))
        for table in ("prompts", "observations", "summaries"):
            assert origins(backend, table, older) == {(None, None)}, table


def _renamed(lines: list[str], key: str) -> list[str]:
    """The export's lines with the session of line 1 renamed to ``key``."""
    head = json.loads(lines[0])
    head["session"]["key"] = key
    head["session"]["external_id"] = key.partition(":")[2]
    return [json.dumps(head) + "\n", *lines[1:]]


def _without_origin(line: str) -> str:
    data = json.loads(line)
    data.pop("author", None)
    data.pop("machine", None)
    return json.dumps(data) + "\n"


async def test_a_bad_author_in_a_file_is_refused(backend: Backend, memory: MemoryStore) -> None:
    """The file's fields are checked as every other: an author that is no name is an error
    naming its line, and nothing is written."""
    exporter = await backend.reader(SessionExporter)
    lines = await exporter.export(ALICE)
    assert lines is not None
    bad = json.loads(lines[1])
    bad["author"] = 12
    renamed = _renamed([lines[0], json.dumps(bad) + "\n"], "claude-code:bad")
    with pytest.raises(InvalidArchiveError, match="line 2: field 'author' must be a string"):
        await backend.queue.run_in_transaction(import_effect(renamed))
    assert await memory.get_session("claude-code:bad") is None


# -- the HTTP API and the CLI (SQLite: the routes are the same on both) -----------------------


@pytest.fixture
async def api(tmp_path: Path, queue: Queue, db_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """The daemon's HTTP API in process, on team memory."""
    async with await MemoryStore.open(db_path) as store:
        await team_memory(queue, store)
    settings = Settings(home=tmp_path / "home", database=db_path, reserve_bytes=0)
    async with built_services(settings, queue) as built, api_client(built.services) as client:
        yield client


class TestHttp:
    async def test_search_takes_author(self, api: httpx.AsyncClient) -> None:
        every = (await api.get("/api/search?q=backoff")).json()["items"]
        assert {item["author"] for item in every} == {"alice", "bob", None}
        one = (await api.get("/api/search?q=backoff&author=bob")).json()["items"]
        assert one
        assert {(i["author"], i["machine"]) for i in one} == {("bob", "laptop-b")}
        both = (await api.get("/api/search?q=backoff&author=alice,bob")).json()["items"]
        assert {item["author"] for item in both} == {"alice", "bob"}
        repeated = (await api.get("/api/search?q=backoff&author=alice&author=bob")).json()
        assert repeated["items"] == both

    async def test_context_and_sessions_take_author(self, api: httpx.AsyncClient) -> None:
        answer = (await api.get(f"/api/context?project={PROJECT}&author=alice")).json()
        assert "[alice]" in answer["context"]
        assert "bob" not in answer["context"]
        assert answer["has_memory"]
        sessions = (await api.get("/api/sessions?author=bob")).json()
        assert ([s["key"] for s in sessions["items"]], sessions["total"]) == ([BOB], 1)
        detail = (await api.get(f"/api/sessions/{ALICE}")).json()
        assert {p["author"] for p in detail["prompts"]} == {"alice"}

    def test_the_cli_takes_author(self) -> None:
        parser = build_parser()
        args = parser.parse_args(["search", "backoff", "--author", "alice", "--author", "bob"])
        assert args.author == ["alice", "bob"]
        assert parser.parse_args(["context", "--author", "alice"]).author == ["alice"]


# -- plans ----------------------------------------------------------------------------------


class TestQueryPlans:
    def test_a_person_s_sessions_come_from_the_author_indexes(self) -> None:
        """The session list by person and the context's probe of each session read the
        partial indexes *_author (0018), which a laptop's own records (NULL) stay out of."""
        memory, context = load_queries("memory"), load_queries("context")
        plan = query_plan(memory["list_sessions_by_author"], authors='["alice"]')
        for table in ("prompts", "observations", "summaries"):
            assert any(f"{table} USING INDEX {table}_author" in step for step in plan), plan
        plan = query_plan(
            context["sessions_with_observations"], project=PROJECT, authors='["alice"]'
        )
        assert any("USING INDEX observations_author" in step for step in plan), plan
