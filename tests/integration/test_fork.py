"""Forks on each backend (SQLite and PostgreSQL): the copy (memq.memory.fork), how readers
across sessions show each record once, and the automatic link of Claude Code's
--fork-session (memq.worker.forks.ForkLinker).

Sessions are built through the worker's write path (Queue + MemoryStore.effect); forks run
on the queue's writer, so the search index (SQLite's FTS triggers of migration 0003,
PostgreSQL's generated ``search`` columns) holds the copies.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import anyio
import pytest
from structlog.testing import capture_logs

from memq.events import route_event
from memq.exceptions import ForkParentNotFoundError, ForkTargetExistsError, SameSessionError
from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.context import ContextBuilder
from memq.memory.fork import ForkResult, fork_effect
from memq.memory.records import SummaryRecord, from_epoch_ms
from memq.memory.search import MemorySearch
from memq.queue import Queue
from memq.storage.sqlfile import load_queries
from memq.worker.forks import ForkLinker
from tests.helpers.backends import Backend
from tests.helpers.memory import Item, Prompt, query_plan
from tests.helpers.memory import settle as settle_session
from tests.helpers.memory import write as write_items
from tests.helpers.memory_rows import dump, execute

PARENT_ID = "c2c6f4bc-4c27-401e-9856-1cd43eb344f3"
CHILD_ID = "75d813a0-9e31-4855-b2a6-54f62d4cd8ba"
OTHER_ID = "c9f4e45b-5385-44d4-9035-1094a42f7f3f"
PARENT = f"claude-code:{PARENT_ID}"
CHILD = f"claude-code:{CHILD_ID}"
OTHER = f"claude-code:{OTHER_ID}"
PROJECT = "/home/dev/project"
CWD = "/home/dev/project"

# A parent of every record type, with one message that made both an observation and a
# summary, and a unique word per record: zanzibar (prompt), quokka and wombat (observations),
# marmalade (summary).
PARENT_ITEMS: list[Item] = [
    Prompt("Fix the flaky zanzibar retry logic"),
    ObservationRecord(
        kind=ObservationKind.DISCOVERY,
        title="Read src/quokka_policy.py",
        files_read=("src/quokka_policy.py",),
        tool_name="Read",
    ),
    (
        ObservationRecord(
            kind=ObservationKind.CHANGE,
            title="Capped the wombat backoff",
            files_modified=("src/quokka_policy.py",),
            tool_name="Edit",
        ),
        SummaryRecord(request="Fix the marmalade retry", completed="Capped the backoff"),
    ),
    Prompt("Now document the setting"),
]


COPY_CHANGES = ("id", "message_id", "session_key", "inherited", "origin_id")


def fields(record: dict[str, Any]) -> dict[str, Any]:
    """A record row without what a copy changes."""
    return {k: v for k, v in record.items() if k not in COPY_CHANGES}


def records(backend: Backend, kind: str, session: str) -> list[dict[str, Any]]:
    return backend.table(f"SELECT * FROM {kind} WHERE session_key = ? ORDER BY message_id", session)


def payload(session_id: str, event: str, cwd: str = CWD, **extra: Any) -> dict[str, Any]:
    return {"session_id": session_id, "hook_event_name": event, "cwd": cwd, **extra}


async def settle(queue: Queue, store: MemoryStore, session: str) -> None:
    """Process everything pending in ``session`` through the worker's write path, with
    empty results (a prompt is still stored as one)."""
    await settle_session(queue, store, session, project=PROJECT)


async def write(
    queue: Queue, store: MemoryStore, items: list[Item], session: str = PARENT
) -> list[int]:
    """Store each item as the memory of its own message, in order, in this file's project;
    return the message ids."""
    return await write_items(queue, store, items, session=session, project=PROJECT, cwd=CWD)


async def fork(queue: Queue, parent: str = PARENT, child: str = CHILD) -> ForkResult:
    return await queue.run_in_transaction(fork_effect(parent, child))


async def deliver(
    queue: Queue, linker: ForkLinker, session_id: str, event: str, cwd: str = CWD, **extra: Any
) -> int:
    """What ``POST /api/events`` does with an accepted event: the linker, then the queue."""
    body = payload(session_id, event, cwd, **extra)
    route = route_event(body)
    await linker.before_enqueue(route.session_key, route.event, body)
    return (await queue.enqueue(route.session_key, route.kind, body, route.dedupe_key)).message_id


async def resume(backend: Backend, store: MemoryStore, linker: ForkLinker, **extra: Any) -> int:
    """The parent resumed, its SessionStart processed (so its queue row has no payload)."""
    queue = backend.queue
    message_id = await deliver(queue, linker, PARENT_ID, "SessionStart", source="resume", **extra)
    await settle(queue, store, PARENT)
    query = "SELECT payload FROM pending_messages WHERE id = ?"
    assert backend.table(query, message_id) == [{"payload": None}]
    return message_id


# -- the copy --------------------------------------------------------------------------------


class TestCopy:
    async def test_the_child_gets_a_copy_of_every_record_under_new_message_ids(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Same fields, numbers and order; new ids after every id used, one per message
        (the message that made an observation and a summary stays one); inherited; each
        new id a settled queue row of the child; the parent untouched."""
        queue, store = backend.queue, backend_store
        ids = await write(queue, store, PARENT_ITEMS)
        before = dump(backend)
        result = await fork(queue)
        assert (result.child, result.parent) == (CHILD, PARENT)
        assert (result.prompts, result.observations, result.summaries) == (2, 2, 1)
        assert result.records == 5

        after = dump(backend)
        for name in ("prompts", "observations", "summaries"):
            parent_rows = records(backend, name, PARENT)
            child_rows = records(backend, name, CHILD)
            assert [fields(r) for r in child_rows] == [fields(r) for r in parent_rows]
            assert {r["inherited"] for r in child_rows} == {1}
            assert {r["inherited"] for r in parent_rows} == {0}
            # Each copy names its original; an original names none.
            assert [r["origin_id"] for r in child_rows] == [r["message_id"] for r in parent_rows]
            assert {r["origin_id"] for r in parent_rows} == {None}
            assert [r for r in after[name] if r["session_key"] == PARENT] == before[name]
        child_ids = sorted(
            {
                r["message_id"]
                for n in ("prompts", "observations", "summaries")
                for r in records(backend, n, CHILD)
            }
        )
        assert len(child_ids) == len(ids)
        assert min(child_ids) > max(ids)
        (both,) = records(backend, "summaries", CHILD)
        assert both["message_id"] == records(backend, "observations", CHILD)[1]["message_id"]
        assert [p["number"] for p in records(backend, "prompts", CHILD)] == [1, 2]

        reserved = backend.table(
            "SELECT * FROM pending_messages WHERE session_id = ? ORDER BY id", CHILD
        )
        assert [r["id"] for r in reserved] == child_ids
        assert [r["dedupe_key"] for r in reserved] == [f"fork:{i}" for i in ids]
        assert {(r["status"], r["payload"], r["kind"]) for r in reserved} == {
            ("processed", None, "event")
        }
        # Every copy is in the search index, under its own rowid (SQLite), or has the
        # search column of its original (PostgreSQL's generated column).
        if backend.postgres:
            for name in ("prompts", "observations", "summaries"):
                copies = [r["search"] for r in records(backend, name, CHILD)]
                assert copies == [r["search"] for r in records(backend, name, PARENT)]
                assert all(copies)
        else:
            indexed = {r["rowid"] for r in after["memory_fts"]}
            codes = {"observations": 1, "summaries": 2, "prompts": 3}
            copied = {
                r["message_id"] * 4 + code
                for name, code in codes.items()
                for r in records(backend, name, CHILD)
            }
            assert copied <= indexed
            assert len(after["memory_fts"]) == 2 * len(before["memory_fts"])

    async def test_the_child_session_names_its_parent(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Project and directory come from the parent, the title too, marked as a fork's;
        it is open, started when it was forked, and counts the copied prompts."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        start = datetime.now(UTC)
        result = await fork(queue)
        detail = await store.get_session(CHILD)
        parent = await store.get_session(PARENT)
        assert detail is not None
        assert parent is not None
        assert detail.parent_key == PARENT
        assert parent.parent_key is None
        assert detail.forked_at == result.forked_at
        assert start - timedelta(seconds=1) <= result.forked_at <= datetime.now(UTC)
        assert (detail.assistant, detail.external_id) == ("claude-code", CHILD_ID)
        assert (detail.project, detail.cwd, detail.title) == (
            parent.project,
            parent.cwd,
            f"[fork] {parent.title}",
        )
        assert not detail.title_edited
        assert detail.started_at == detail.updated_at == result.forked_at
        assert detail.ended_at is None
        assert detail.prompt_count == 2
        assert [p.text for p in detail.prompts] == [p.text for p in parent.prompts]
        assert (detail.observation_count, detail.summary_count) == (2, 1)
        listed = {s.key: s for s in (await store.list_sessions()).items}
        assert listed[CHILD].parent_key == PARENT
        assert result.to_dict() == {
            "child": CHILD,
            "parent": PARENT,
            "prompts": 2,
            "observations": 2,
            "summaries": 1,
            "forked_at": result.to_dict()["forked_at"],
        }
        assert result.to_dict()["forked_at"].endswith("Z")

    async def test_the_childs_own_records_follow_its_inherited_ones(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """Its own prompt is numbered after the copies, is not inherited, and leaves the
        (fork's) title alone."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await write(queue, store, [Prompt("Continue in the fork")], session=CHILD)
        prompts = records(backend, "prompts", CHILD)
        assert [(p["number"], p["inherited"]) for p in prompts] == [(1, 1), (2, 1), (3, 0)]
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert detail.prompt_count == 3
        assert detail.title == "[fork] Fix the flaky zanzibar retry logic"

    async def test_a_fork_of_a_fork_inherits_everything_its_parent_holds(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await write(queue, store, [Prompt("Continue in the fork")], session=CHILD)
        result = await fork(queue, CHILD, OTHER)
        assert (result.prompts, result.observations, result.summaries) == (3, 2, 1)
        prompts = records(backend, "prompts", OTHER)
        assert [(p["number"], p["inherited"]) for p in prompts] == [(1, 1), (2, 1), (3, 1)]

    async def test_a_session_without_records_forks_into_an_empty_child(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        # A Stop whose turn left no summary: the session exists, without records. (A
        # SessionStart alone makes no session: memq.memory.store.)
        await queue.enqueue(PARENT, "summarize", payload(PARENT_ID, "Stop"))
        await settle(queue, store, PARENT)
        result = await fork(queue)
        assert result.records == 0
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert detail.parent_key == PARENT
        assert backend.table("SELECT * FROM pending_messages WHERE session_id = ?", CHILD) == []


class TestRefusals:
    async def test_a_target_with_memory_or_queue_rows_is_refused_and_nothing_written(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A target memory knows, or that has only a pending queue row, already exists."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await write(queue, store, [Prompt("Another session")], session=OTHER)
        before = dump(backend)
        with pytest.raises(ForkTargetExistsError, match=OTHER):
            await fork(queue, PARENT, OTHER)
        assert dump(backend) == before

        await queue.enqueue(CHILD, "prompt", payload(CHILD_ID, "UserPromptSubmit", prompt="x"))
        before = dump(backend)
        with pytest.raises(ForkTargetExistsError):
            await fork(queue)
        assert dump(backend) == before

    async def test_a_target_with_a_failed_row_exists(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await queue.enqueue(CHILD, "prompt", payload(CHILD_ID, "UserPromptSubmit", prompt="x"))
        async for claim in queue.stream(CHILD, linger=0):
            await claim.fail("broken")
        while await queue.has_pending(CHILD):
            async for claim in queue.stream(CHILD, linger=0):
                await claim.fail("broken")
        statuses = backend.table("SELECT status FROM pending_messages WHERE session_id = ?", CHILD)
        assert statuses == [{"status": "failed"}]
        with pytest.raises(ForkTargetExistsError):
            await fork(queue)

    async def test_an_unknown_parent_is_refused(self, backend: Backend) -> None:
        queue = backend.queue
        before = dump(backend)
        with pytest.raises(ForkParentNotFoundError, match=PARENT):
            await fork(queue)
        assert dump(backend) == before
        with pytest.raises(SameSessionError, match="itself"):
            fork_effect(PARENT, PARENT)


# -- readers across sessions -----------------------------------------------------------------


class TestReaders:
    async def test_search_across_sessions_finds_each_record_once(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """Across sessions: the parent's record, once; the fork's own records too. Filtered
        to the fork: its copy, marked inherited."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await write(queue, store, [Prompt("Continue with the quokka docs")], session=CHILD)
        for word in ("zanzibar", "wombat", "marmalade"):
            (hit,) = await search.search(word)
            assert (hit.session_key, hit.inherited) == (PARENT, False)
        hits = await search.search("quokka", limit=100)  # a title, a file, the fork's prompt
        assert sorted((h.session_key, h.record_type.value) for h in hits) == [
            (CHILD, "prompt"),
            (PARENT, "observation"),
            (PARENT, "observation"),
        ]
        (copy,) = await search.search("wombat", session_key=CHILD)
        assert (copy.session_key, copy.inherited) == (CHILD, True)
        assert copy.to_dict()["inherited"] is True
        (own,) = await search.search("wombat", session_key=PARENT)
        assert own.message_id != copy.message_id
        assert len(await search.search("quokka", session_key=CHILD, limit=100)) == 3

    async def test_the_rank_window_ranks_everything_when_copies_fill_it(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        backend_search: MemorySearch,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """When the newest matches are mostly a fork's copies, the search ranks every match
        rather than return fewer hits than it could."""
        queue, store, search = backend.queue, backend_store, backend_search
        monkeypatch.setattr("memq.memory.search.RANK_WINDOW", 2)
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)  # the two newest of the four "quokka" matches are the copies
        hits = await search.search("quokka", limit=10)
        assert [(h.session_key, h.inherited) for h in hits] == [(PARENT, False)] * 2

    async def test_the_context_shows_each_record_once(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await write(
            queue,
            store,
            [ObservationRecord(kind=ObservationKind.COMMAND, title="Ran the platypus tests")],
            session=CHILD,
        )
        builder = await backend.reader(ContextBuilder)
        text = await builder.build(PROJECT)
        assert text.count("Capped the wombat backoff") == 1
        assert text.count("Read src/quokka_policy.py") == 1
        assert text.count("Fix the marmalade retry") == 1
        assert text.count("Ran the platypus tests") == 1
        # A fork with nothing of its own adds nothing.
        await fork(queue, PARENT, OTHER)
        assert await builder.build(PROJECT) == text

    def test_the_readers_go_through_indexes_of_own_records(self) -> None:
        """The context's per-session reads use the partial indexes of 0006, and no fork
        statement scans a table outside a partial index."""
        context = load_queries("context")
        plan = query_plan(context["newest_observations"])
        assert any("observations_own_time" in step for step in plan)
        plan = query_plan(context["newest_summaries"])
        assert any("summaries_own_time" in step for step in plan)
        for name, sql in load_queries("fork").items():
            for step in query_plan(sql):
                assert not re.fullmatch(r"SCAN \w+", step), (name, step)
                if step.startswith("SCAN pending_messages"):
                    assert "leases" in step or "failed" in step, (name, step)

    async def test_a_timeline_of_an_own_record_leaves_the_copies_out(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        (own_id,) = await write(queue, store, [Prompt("Continue in the fork")], session=CHILD)
        timeline = await search.timeline(own_id, before=10, after=10)
        assert timeline is not None
        assert [item.message_id for item in timeline.items] == [own_id]
        # Around a copy (found by a search of the fork), the fork's records are its timeline.
        (copy,) = await search.search("wombat", session_key=CHILD)
        around = await search.timeline(copy.message_id, before=10, after=10)
        assert around is not None
        assert around.anchor.inherited
        assert around.to_dict()["anchor"]["inherited"] is True
        assert [item.inherited for item in around.items] == [True] * 5 + [False]


# -- the fork's and the parent's life after the fork -------------------------------------------


class TestAfterTheFork:
    async def test_reverting_the_fork_forgets_its_own_records_first(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await write(queue, store, [Prompt("Continue in the fork")], session=CHILD)
        parent_before = records(backend, "prompts", PARENT)
        cutoff = await store.revert_cutoff(CHILD, 1)
        assert cutoff is not None
        await queue.forget_session_from(CHILD, cutoff)
        assert await queue.run_in_transaction(store.revert_effect(CHILD, cutoff)) == 1
        prompts = records(backend, "prompts", CHILD)
        assert [(p["number"], p["inherited"]) for p in prompts] == [(1, 1), (2, 1)]
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert detail.prompt_count == 2
        assert records(backend, "prompts", PARENT) == parent_before

    async def test_deleting_the_parent_leaves_the_forks_copy(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """The fork keeps its copy, now its own, and no longer names the deleted parent."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        await queue.forget_session(PARENT)
        await queue.run_in_transaction(store.forget_effect(PARENT))
        assert await store.get_session(PARENT) is None
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert (detail.parent_key, detail.forked_at) == (None, None)
        assert [s.parent_key for s in (await store.list_sessions()).items] == [None]
        assert [p.text for p in detail.prompts] == [
            "Fix the flaky zanzibar retry logic",
            "Now document the setting",
        ]
        assert (await store.observations(CHILD)).total == 2
        # The copies are the fork's own now: a search across sessions finds them.
        (hit,) = await search.search("wombat")
        assert (hit.session_key, hit.inherited) == (CHILD, False)

    async def test_transferring_a_fork_keeps_its_parent_and_moves_its_children(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await fork(queue)
        grandchild = "claude-code:grandchild"
        await fork(queue, parent=CHILD, child=grandchild)
        await queue.run_in_transaction(store.transfer_effect(CHILD, "claude-code:moved"))
        moved = await store.get_session("claude-code:moved")
        assert moved is not None
        assert (moved.parent_key, moved.forked_at is not None) == (PARENT, True)
        below = await store.get_session(grandchild)
        assert below is not None
        assert below.parent_key == "claude-code:moved"


# -- the automatic link ----------------------------------------------------------------------


def child_prompts(backend: Backend) -> list[tuple[int, int]]:
    return [(p["number"], p["inherited"]) for p in records(backend, "prompts", CHILD)]


class TestLink:
    @pytest.fixture
    def linker(self, backend: Backend) -> ForkLinker:
        return ForkLinker(backend.queue)

    async def test_a_forks_first_event_after_a_resume_links_it(
        self, backend: Backend, backend_store: MemoryStore, linker: ForkLinker
    ) -> None:
        """SessionStart (resume) with the parent's id, then an event of a new id in the same
        directory: the new session is a fork, its copy in place before its own event."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await resume(backend, store, linker)
        with capture_logs() as logs:
            own = await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="forked")
        forked = [e for e in logs if e["event"] == "session.forked"]
        assert forked == [
            {
                "event": "session.forked",
                "log_level": "info",
                "session_id": CHILD,
                "parent": PARENT,
                "automatic": True,
                "records": 5,
            }
        ]
        copies = backend.table("SELECT id FROM pending_messages WHERE session_id = ?", CHILD)
        assert max(r["id"] for r in copies) == own
        await settle(queue, store, CHILD)
        assert child_prompts(backend) == [(1, 1), (2, 1), (3, 0)]
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert detail.parent_key == PARENT
        assert CHILD in linker

    async def test_the_link_holds_before_the_resume_is_processed(
        self, backend: Backend, backend_store: MemoryStore, linker: ForkLinker
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await deliver(queue, linker, PARENT_ID, "SessionStart", source="resume")
        await deliver(queue, linker, CHILD_ID, "Stop")
        assert (await store.get_session(CHILD)) is not None

    async def test_later_events_cost_no_look_up(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        linker: ForkLinker,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """Once seen, a session's events are one set look-up: no transaction."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await resume(backend, store, linker)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="forked")
        calls: list[object] = []
        original = queue.run_in_transaction

        async def counting(fn: Any) -> Any:
            calls.append(fn)
            return await original(fn)

        monkeypatch.setattr(queue, "run_in_transaction", counting)
        for n in range(3):
            await deliver(queue, linker, CHILD_ID, "PostToolUse", tool_use_id=f"t{n}")
        await deliver(queue, linker, OTHER_ID, "SessionStart", source="startup")
        await deliver(queue, linker, OTHER_ID, "UserPromptSubmit", prompt="new")
        assert calls == []

    async def test_a_first_event_with_no_resume_nearby_costs_no_transaction(
        self,
        backend: Backend,
        backend_store: MemoryStore,
        linker: ForkLinker,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        """The writer is asked only when a session was resumed in the directory within the
        window: a new session in another directory is one read on the reader."""
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await resume(backend, store, linker)
        calls: list[object] = []
        original = queue.run_in_transaction

        async def counting(fn: Any) -> Any:
            calls.append(fn)
            return await original(fn)

        monkeypatch.setattr(queue, "run_in_transaction", counting)
        await deliver(queue, linker, OTHER_ID, "UserPromptSubmit", cwd="/elsewhere", prompt="x")
        assert calls == []
        assert OTHER in linker
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="forked")
        assert len(calls) == 1  # the resume is in this directory: the writer looks and links
        detail = await store.get_session(CHILD)
        assert detail is not None
        assert detail.parent_key == PARENT

    async def test_the_seen_set_is_bounded(self, backend: Backend) -> None:
        queue = backend.queue
        linker = ForkLinker(queue, capacity=2)
        for key in ("a", "b", "a", "c"):
            linker.mark_seen(key)
        assert ("a" in linker, "b" in linker, "c" in linker) == (True, False, True)
        with pytest.raises(ValueError, match="capacity"):
            ForkLinker(queue, capacity=0)

    async def test_concurrent_first_events_link_once(
        self, backend: Backend, backend_store: MemoryStore, linker: ForkLinker
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await resume(backend, store, linker)
        with capture_logs() as logs:
            async with anyio.create_task_group() as group:
                for n in range(4):
                    deliver_one = partial(deliver, tool_use_id=f"t{n}")
                    group.start_soon(deliver_one, queue, linker, CHILD_ID, "PostToolUse")
        assert [e["event"] for e in logs if e["event"] == "session.forked"] == ["session.forked"]
        assert child_prompts(backend) == [(1, 1), (2, 1)]

    async def test_a_restarted_daemon_does_not_link_a_known_session_again(
        self, backend: Backend, backend_store: MemoryStore, linker: ForkLinker
    ) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)
        await resume(backend, store, linker)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="forked")
        await settle(queue, store, CHILD)
        fresh = ForkLinker(queue)  # a new daemon: nothing seen yet
        await deliver(queue, fresh, CHILD_ID, "UserPromptSubmit", prompt="again")
        await settle(queue, store, CHILD)
        assert child_prompts(backend) == [(1, 1), (2, 1), (3, 0), (4, 0)]


class TestNoLink:
    """Each case: a session that must not become a fork."""

    @pytest.fixture
    async def parent(self, backend: Backend, backend_store: MemoryStore) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, PARENT_ITEMS)

    async def assert_not_linked(
        self, store: MemoryStore, backend: Backend, key: str = CHILD
    ) -> None:
        detail = await store.get_session(key)
        assert detail is None or detail.parent_key is None
        assert (
            backend.table("SELECT 1 FROM prompts WHERE session_key = ? AND inherited = 1", key)
            == []
        )

    async def test_a_resume_older_than_the_window(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue, window_seconds=0.2)
        await resume(backend, store, linker)
        await anyio.sleep(0.3)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="late")
        await self.assert_not_linked(store, backend)

    async def test_a_resume_in_another_directory(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await resume(backend, store, linker)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", "/elsewhere", prompt="x")
        await self.assert_not_linked(store, backend)
        await deliver(queue, linker, OTHER_ID, "UserPromptSubmit", "", prompt="no cwd")
        await self.assert_not_linked(store, backend, OTHER)

    async def test_a_parent_with_events_after_its_resume(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        """A plain resume: the parent went on with its own id."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await resume(backend, store, linker)
        await deliver(queue, linker, PARENT_ID, "UserPromptSubmit", prompt="go on")
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x")
        await self.assert_not_linked(store, backend)

    async def test_a_session_memq_knows(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        """A session with a queue row (e.g. written by the hook's fallback while the daemon
        was down) or with memory is known: this daemon not having seen it changes nothing."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await queue.enqueue(CHILD, "prompt", payload(CHILD_ID, "UserPromptSubmit", prompt="a"))
        await write(queue, store, [Prompt("known")], session=OTHER)
        await queue.forget_session(OTHER)  # memory alone knows it now
        await resume(backend, store, linker)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="b")
        await deliver(queue, linker, OTHER_ID, "UserPromptSubmit", prompt="c")
        await self.assert_not_linked(store, backend)
        await self.assert_not_linked(store, backend, OTHER)

    async def test_a_startup_session_start(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        """A parent that started (or was compacted or cleared), not resumed."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        for source in ("startup", "compact", "clear"):
            await deliver(queue, linker, PARENT_ID, "SessionStart", source=source)
        await settle(queue, store, PARENT)
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x")
        await self.assert_not_linked(store, backend)

    async def test_a_new_session_that_started_itself(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        """A brand-new session whose own SessionStart came first, right after a resume in
        the same directory; also once the daemon restarted in between."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await resume(backend, store, linker)
        await deliver(queue, linker, CHILD_ID, "SessionStart", source="startup")
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x")
        await deliver(queue, ForkLinker(queue), CHILD_ID, "PostToolUse", tool_use_id="t1")
        await self.assert_not_linked(store, backend)

    async def test_an_event_memqs_hooks_do_not_send(
        self, backend: Backend, backend_store: MemoryStore, parent: None
    ) -> None:
        """Claude Code sends InstructionsLoaded with a throw-away id on every resume. It does
        not mark the id seen either: a fork's own id comes that way before its first prompt
        (tests/integration/test_unknown_events.py)."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await resume(backend, store, linker)
        await deliver(queue, linker, OTHER_ID, "InstructionsLoaded")
        await self.assert_not_linked(store, backend, OTHER)
        assert OTHER not in linker

    async def test_a_parent_memory_never_stored(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """The resumed session has no memory yet (its SessionStart still queued): nothing to
        inherit, no link."""
        queue, store = backend.queue, backend_store
        linker = ForkLinker(queue)
        await deliver(queue, linker, PARENT_ID, "SessionStart", source="resume")
        await deliver(queue, linker, CHILD_ID, "UserPromptSubmit", prompt="x")
        await self.assert_not_linked(store, backend)


class TestResumeTrigger:
    """Migration 0006's trigger: what the link reads once a SessionStart lost its payload."""

    async def test_each_session_keeps_its_latest_resume_for_a_day(self, backend: Backend) -> None:
        queue = backend.queue
        start = payload(PARENT_ID, "SessionStart", source="resume")
        first = (await queue.enqueue(PARENT, "event", start)).message_id
        second = (await queue.enqueue(PARENT, "event", {**start, "cwd": "/b"})).message_id
        rows = backend.table("SELECT * FROM session_resumes")
        assert [(r["session_key"], r["cwd"], r["message_id"]) for r in rows] == [
            (PARENT, "/b", second)
        ]
        assert second > first
        execute(backend, "UPDATE session_resumes SET resumed_at = resumed_at - 86400001")
        await queue.enqueue(OTHER, "event", payload(OTHER_ID, "SessionStart", source="resume"))
        assert [r["session_key"] for r in backend.table("SELECT * FROM session_resumes")] == [OTHER]

    async def test_a_row_that_is_not_a_resume_is_left_alone(self, backend: Backend) -> None:
        """Other events, and payloads that are not JSON or lack a directory, insert as
        before."""
        queue = backend.queue
        await queue.enqueue(PARENT, "event", payload(PARENT_ID, "SessionStart", source="startup"))
        await queue.enqueue(
            PARENT, "event", {"hook_event_name": "SessionStart", "source": "resume"}
        )
        await queue.enqueue(PARENT, "observation", payload(PARENT_ID, "PostToolUse"))
        execute(
            backend,
            "INSERT INTO pending_messages (session_id, kind, payload, available_at, "
            "created_at) VALUES (?, 'event', 'not json', 0, 0)",
            OTHER,
        )
        assert backend.table("SELECT * FROM session_resumes") == []
        assert len(backend.table("SELECT id FROM pending_messages")) == 4


def test_forked_at_is_the_transaction_clock() -> None:
    """ForkResult.forked_at is the stored millisecond time as a UTC datetime."""
    result = ForkResult(CHILD, PARENT, 0, 0, 0, from_epoch_ms(1_700_000_000_250))
    assert result.to_dict()["forked_at"] == "2023-11-14T22:13:20.250Z"
