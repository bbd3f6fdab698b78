"""Transfers between sessions of one fork family, and deletes and reverts of a parent, on each
backend (SQLite and PostgreSQL; issue 10, item 2 and the ``parent_key`` part of item 6).

A transfer must never make ``parent_key`` a cycle or name a session that is gone, and a record
that both sessions hold (an original and a fork's copy of it, or two forks' copies of one
original) must end up once. Each direction is checked: parent into fork, fork into parent, fork
into sibling, and every transfer within a chain of three. The transfers run as the daemon runs
them (``Queue.move_session``, then ``MemoryStore.transfer_effect``), on sessions built through
the worker's write path and forked by ``fork_effect``.

"Once" is checked on the rows, as an outside tool reads them, and through search: across
sessions (which leaves out inherited records) and within the target.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from typing import Any, Final

import pytest

from memq.memory import MemoryStore, ObservationKind, ObservationRecord
from memq.memory.backend import TransferResult
from memq.memory.fork import fork_effect
from memq.memory.records import SummaryRecord
from memq.memory.search import MemorySearch
from memq.queue import Queue
from memq.storage import schema
from memq.storage.sqlfile import load_queries
from tests.helpers.backends import Backend, SqliteBackend
from tests.helpers.memory import Item, Prompt, query_plan
from tests.helpers.memory import write as write_items
from tests.helpers.rows import table

PROJECT: Final = "/home/dev/project"
TABLES: Final = ("prompts", "observations", "summaries")
# What a fork's copy or a transfer may change in a record: everything else is its content.
NOT_CONTENT: Final = frozenset(
    {"id", "message_id", "session_key", "inherited", "origin_id", "number"}
)

A: Final = "claude-code:alpha"
B: Final = "claude-code:bravo"
C: Final = "claude-code:charlie"
P: Final = "claude-code:parent"
F1: Final = "claude-code:fork-one"
F2: Final = "claude-code:fork-two"


def obs(title: str) -> ObservationRecord:
    return ObservationRecord(kind=ObservationKind.DISCOVERY, title=title, tool_name="Read")


def items(word: str) -> list[Item]:
    """A prompt, two observations and a summary, each with its own searchable word."""
    return [
        Prompt(f"Work on the {word}prompt task"),
        obs(f"Read the {word}first module"),
        (obs(f"Changed the {word}second module"), SummaryRecord(request=f"{word}summary")),
    ]


def words(word: str) -> list[str]:
    """The searchable words of ``items(word)``: one per record."""
    return [f"{word}{part}" for part in ("prompt", "first", "second", "summary")]


async def write(queue: Queue, store: MemoryStore, session: str, word: str) -> list[int]:
    return await write_items(queue, store, items(word), session=session, project=PROJECT)


async def fork(queue: Queue, parent: str, child: str) -> None:
    await queue.run_in_transaction(fork_effect(parent, child))


async def transfer(queue: Queue, store: MemoryStore, source: str, target: str) -> TransferResult:
    """What ``POST /api/sessions/{source}/transfer`` does once it has stopped both sessions."""
    await queue.move_session(source, target)
    return await queue.run_in_transaction(store.transfer_effect(source, target))


# -- reading the family back -------------------------------------------------------------------


def parents(backend: Backend) -> dict[str, str | None]:
    rows = backend.table("SELECT key, parent_key FROM sessions ORDER BY key")
    return {r["key"]: r["parent_key"] for r in rows}


def content(kind: str, row: dict[str, Any]) -> tuple[Any, ...]:
    """A record's identity across copies: its type, time and every field a copy keeps."""
    return (kind, *sorted((k, v) for k, v in row.items() if k not in NOT_CONTENT))


def holdings(backend: Backend, session: str) -> list[tuple[tuple[Any, ...], bool]]:
    """(content, inherited) of each of the session's records."""
    found = []
    for kind in TABLES:
        for row in backend.table(f"SELECT * FROM {kind} WHERE session_key = ?", session):
            found.append((content(kind, row), bool(row["inherited"])))
    return found


def everything(backend: Backend) -> set[tuple[Any, ...]]:
    """Every distinct record memory holds, whoever holds it."""
    return {item for key in parents(backend) for item, _ in holdings(backend, key)}


def check_family(backend: Backend) -> None:
    """What must hold after any fork, transfer, revert or delete: parent_key names a session
    that exists and never leads back; no session holds a record twice; each record is its
    owner's once across memory (what search across sessions shows), and a copy's original
    is one of those."""
    links = parents(backend)
    for key in links:
        seen: list[str] = []
        node: str | None = key
        while node is not None:
            assert node not in seen, f"parent_key cycle: {[*seen, node]}"
            seen.append(node)
            node = links[node]
            assert node is None or node in links, f"{seen[-1]} names a missing parent {node}"
    owned: list[tuple[Any, ...]] = []
    copied: set[tuple[Any, ...]] = set()
    for key in links:
        held = holdings(backend, key)
        records = [item for item, _ in held]
        assert len(records) == len(set(records)), f"{key} holds a record twice"
        owned += [item for item, inherited in held if not inherited]
        copied |= {item for item, inherited in held if inherited}
    assert len(owned) == len(set(owned)), "a record is its own in two sessions"
    assert copied <= set(owned), "a copy whose original is gone"


async def hits(search: MemorySearch, word: str, session: str | None = None) -> list[str]:
    """The sessions of a search's hits for ``word`` (across sessions, or within one)."""
    return [h.session_key for h in await search.search(word, session_key=session, limit=50)]


# -- the two reports of issue 10 ---------------------------------------------------------------


class TestReported:
    async def test_a_fork_transferred_into_its_parent_does_not_make_it_its_own_parent(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """memq fork proj-x --to px-fork; memq transfer px-fork proj-x: the parent keeps no
        parent; it holds its records once (its own originals), then the fork's own."""
        queue, store, search = backend.queue, backend_store, backend_search
        parent_ids = await write(queue, store, P, "papa")
        await fork(queue, P, F1)
        fork_ids = await write(queue, store, F1, "fox")
        result = await transfer(queue, store, F1, P)

        assert parents(backend) == {P: None}
        check_family(backend)
        detail = await store.get_session(P)
        assert detail is not None
        assert (detail.parent_key, detail.forked_at) == (None, None)
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "Work on the papaprompt task"),
            (2, "Work on the foxprompt task"),
        ]
        assert detail.prompt_count == 2
        assert (detail.observation_count, detail.summary_count) == (4, 2)
        own = backend.table("SELECT message_id, inherited FROM observations ORDER BY message_id")
        assert [r["message_id"] for r in own] == [*parent_ids[1:], *fork_ids[1:]]
        assert {r["inherited"] for r in own} == {0}
        # The fork's copies were already there: only its own records moved.
        assert (result.records, result.merged) == (4, 4)
        for word in words("papa") + words("fox"):
            assert await hits(search, word) == [P]
            assert await hits(search, word, P) == [P]

    async def test_a_parent_transferred_into_its_fork_does_not_double_its_records(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """memq fork tools-sess --to tools-fork; memq transfer tools-sess tools-fork: seven
        observations stay seven; the parent's originals replace the fork's copies in place
        (same message ids, the copies' prompt numbers), so other copies of them stay
        copies of something."""
        queue, store, search = backend.queue, backend_store, backend_search
        ids = await write_items(
            queue,
            store,
            [Prompt("Tune the tools"), *(obs(f"Read tool {n} backoff") for n in range(7))],
            session=P,
            project=PROJECT,
        )
        await fork(queue, P, F1)
        await fork(queue, P, F2)  # a sibling whose copies must still have an original
        await write(queue, store, F1, "fox")
        await transfer(queue, store, P, F1)

        assert parents(backend) == {F1: None, F2: F1}
        check_family(backend)
        observations = backend.table(
            "SELECT message_id, inherited FROM observations WHERE session_key = ? "
            "ORDER BY message_id",
            F1,
        )
        assert len(observations) == 7 + 2
        assert [r["message_id"] for r in observations[:7]] == ids[1:]
        assert {r["inherited"] for r in observations} == {0}
        detail = await store.get_session(F1)
        assert detail is not None
        assert (detail.parent_key, detail.forked_at) == (None, None)
        assert [(p.number, p.text) for p in detail.prompts] == [
            (1, "Tune the tools"),
            (2, "Work on the foxprompt task"),
        ]
        assert await hits(search, "backoff", F1) == [F1] * 7
        assert await hits(search, "backoff") == [F1] * 7
        assert await hits(search, "backoff", F2) == [F2] * 7  # the sibling's copies


# -- every direction ---------------------------------------------------------------------------


class TestDirections:
    async def test_parent_into_fork_after_both_went_on(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """What the parent learned after the fork moves in after the fork's own prompts; what
        the fork copied stays where it was."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, P, "papa")
        await fork(queue, P, F1)
        await write(queue, store, F1, "fox")
        await write(queue, store, P, "late")
        before = everything(backend)
        await transfer(queue, store, P, F1)

        assert parents(backend) == {F1: None}
        check_family(backend)
        assert everything(backend) == before
        detail = await store.get_session(F1)
        assert detail is not None
        assert [p.text.split()[3] for p in detail.prompts] == [
            "papaprompt",
            "foxprompt",
            "lateprompt",
        ]
        assert [p.number for p in detail.prompts] == [1, 2, 3]
        for word in words("papa") + words("fox") + words("late"):
            assert await hits(search, word) == [F1]
            assert await hits(search, word, F1) == [F1]

    async def test_fork_into_sibling(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """Both forks' copies of the parent end up once, still copies (the parent shows
        them); the sibling keeps its parent; a fork of the moved fork follows it."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, P, "papa")
        await fork(queue, P, F1)
        await write(queue, store, F1, "fox")
        await fork(queue, P, F2)
        await write(queue, store, F2, "golf")
        await fork(queue, F1, C)
        before = everything(backend)
        result = await transfer(queue, store, F1, F2)

        assert parents(backend) == {P: None, F2: P, C: F2}
        check_family(backend)
        assert everything(backend) == before
        assert (result.records, result.merged) == (4, 4)  # its own moved, its copies merged
        held = holdings(backend, F2)
        assert len(held) == 3 * 4
        assert sum(inherited for _, inherited in held) == 4
        for word in words("papa"):
            assert await hits(search, word) == [P]
            assert await hits(search, word, F2) == [F2]
        for word in words("fox") + words("golf"):
            assert await hits(search, word) == [F2]

    async def test_fork_of_a_fork_into_a_fresh_id_keeps_its_place(
        self, backend: Backend, backend_store: MemoryStore
    ) -> None:
        """A rename: the new id takes the old one's parent and time of fork, and its forks."""
        queue, store = backend.queue, backend_store
        await write(queue, store, A, "alpha")
        await fork(queue, A, B)
        await fork(queue, B, C)
        forked_at = (await store.get_session(B)).forked_at  # type: ignore[union-attr]
        await transfer(queue, store, B, "claude-code:renamed")
        assert parents(backend) == {A: None, "claude-code:renamed": A, C: "claude-code:renamed"}
        renamed = await store.get_session("claude-code:renamed")
        assert renamed is not None
        assert renamed.forked_at == forked_at
        check_family(backend)


CHAIN_TRANSFERS: Final = [
    # (source, target, each session's parent afterwards)
    (A, B, {B: None, C: B}),
    (A, C, {B: None, C: B}),  # B's parent is gone and C descends from B: B stands alone
    (B, A, {A: None, C: A}),
    (B, C, {A: None, C: A}),
    (C, A, {A: None, B: A}),
    (C, B, {A: None, B: A}),
]


class TestChainOfThree:
    """alpha, its fork bravo, bravo's fork charlie; each has records of its own, and alpha
    and bravo went on after being forked."""

    @pytest.fixture
    async def chain(self, backend: Backend, backend_store: MemoryStore) -> None:
        queue, store = backend.queue, backend_store
        await write(queue, store, A, "alpha")
        await fork(queue, A, B)
        await write(queue, store, B, "bravo")
        await fork(queue, B, C)
        await write(queue, store, C, "charlie")
        await write(queue, store, A, "anew")
        await write(queue, store, B, "bnew")

    @pytest.mark.parametrize(("source", "target", "after"), CHAIN_TRANSFERS)
    async def test_transfer(
        self,
        chain: None,
        backend: Backend,
        backend_store: MemoryStore,
        backend_search: MemorySearch,
        source: str,
        target: str,
        after: dict[str, str | None],
    ) -> None:
        queue, store, search = backend.queue, backend_store, backend_search
        before = everything(backend)
        source_had = {item for item, _ in holdings(backend, source)}
        target_had = {item for item, _ in holdings(backend, target)}
        await transfer(queue, store, source, target)

        assert parents(backend) == after
        check_family(backend)
        assert everything(backend) == before  # nothing lost
        assert {item for item, _ in holdings(backend, target)} == source_had | target_had
        # Each word is one record: found once across sessions, once within the target.
        for word in ("alpha", "bravo", "charlie", "anew", "bnew"):
            for part in words(word):
                assert len(await hits(search, part)) == 1, part
                if any(part in str(item) for item in source_had | target_had):
                    assert await hits(search, part, target) == [target], part
        # Forking again works on what the transfer left: the copies name live originals.
        await fork(queue, target, "claude-code:again")
        check_family(backend)


# -- deleting or reverting a parent ------------------------------------------------------------


async def delete(queue: Queue, store: MemoryStore, session: str) -> int:
    """What ``DELETE /api/sessions/{id}`` does once it has stopped the session."""
    await queue.forget_session(session)
    return await queue.run_in_transaction(store.forget_effect(session))


class TestDeletedParent:
    async def test_forks_of_a_deleted_root_stand_on_their_own(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """Neither fork names the deleted parent; its records are found once, in one fork,
        the other fork keeping a copy of that one."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, P, "papa")
        await fork(queue, P, F1)
        await fork(queue, P, F2)
        await delete(queue, store, P)

        assert parents(backend) == {F1: None, F2: None}
        for key in (F1, F2):
            detail = await store.get_session(key)
            assert detail is not None
            assert (detail.parent_key, detail.forked_at) == (None, None)
        check_family(backend)
        for word in words("papa"):
            assert await hits(search, word) == [F1]  # the older fork's copy is now its own
            assert await hits(search, word, F2) == [F2]
        # Deleting that fork in turn hands the records on to the other one.
        await delete(queue, store, F1)
        check_family(backend)
        for word in words("papa"):
            assert await hits(search, word) == [F2]

    async def test_a_fork_of_a_deleted_fork_follows_the_grandparent(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """alpha, bravo (its fork), charlie (bravo's fork); bravo deleted: charlie becomes
        alpha's fork, as of bravo's fork; what it copied of alpha stays a copy (alpha shows
        it), what it copied of bravo's own is now charlie's own."""
        queue, store, search = backend.queue, backend_store, backend_search
        await write(queue, store, A, "alpha")
        await fork(queue, A, B)
        await write(queue, store, B, "bravo")
        forked_at = (await store.get_session(B)).forked_at  # type: ignore[union-attr]
        await fork(queue, B, C)
        await delete(queue, store, B)

        assert parents(backend) == {A: None, C: A}
        detail = await store.get_session(C)
        assert detail is not None
        assert detail.forked_at == forked_at
        check_family(backend)
        for word in words("alpha"):
            assert await hits(search, word) == [A]
        for word in words("bravo"):
            assert await hits(search, word) == [C]


class TestRevertedParent:
    async def test_what_a_parent_forgets_its_fork_still_shows(
        self, backend: Backend, backend_store: MemoryStore, backend_search: MemorySearch
    ) -> None:
        """A revert of the parent forgets its records, not its forks' copies: those become
        their own, so a search across sessions still finds them, once."""
        queue, store, search = backend.queue, backend_store, backend_search
        ids = await write(queue, store, P, "papa")
        await fork(queue, P, F1)
        await fork(queue, P, F2)
        await queue.forget_session_from(P, ids[1])
        await queue.run_in_transaction(store.revert_effect(P, ids[1]))
        check_family(backend)
        assert await hits(search, "papaprompt") == [P]
        for word in words("papa")[1:]:
            assert await hits(search, word) == [F1]
            assert await hits(search, word, F2) == [F2]


def test_the_family_statements_go_through_indexes() -> None:
    """No statement of a transfer, a hand-on or a re-parenting reads a whole table: each is
    a handful of index probes per record of the sessions involved."""
    memory = load_queries("memory")
    names = [name for name in memory if name.startswith(("transfer_", "hand_on_", "reparent_"))]
    assert len(names) == 23
    walked = re.compile(r"SCAN (json_each|above_source|target_line|moved|CONSTANT ROW|\(subquery)")
    for name in names:
        for step in query_plan(memory[name]):
            assert not step.startswith("SCAN ") or walked.match(step), (name, step)


# -- databases from before the fix -------------------------------------------------------------


def old_database(path: Path) -> sqlite3.Connection:
    """A database at schema 7 (before copies named their original), as memq left it."""
    conn = sqlite3.connect(path, isolation_level=None)
    schema.migrate(conn, schema.available_migrations()[:7])
    return conn


def insert_session(conn: sqlite3.Connection, key: str, parent: str | None) -> None:
    conn.execute(
        "INSERT INTO sessions (key, assistant, external_id, started_at, updated_at, created_at, "
        "parent_key, forked_at) VALUES (?, 'claude-code', ?, 1, 1, 1, ?, ?)",
        (key, key.partition(":")[2], parent, None if parent is None else 1),
    )


def insert_prompt(
    conn: sqlite3.Connection, message_id: int, session: str, text: str, inherited: int = 0
) -> None:
    number = conn.execute(
        "SELECT coalesce(max(number), 0) + 1 FROM prompts WHERE session_key = ?", (session,)
    ).fetchone()[0]
    conn.execute(
        "INSERT INTO prompts (message_id, session_key, number, text, created_at, inherited) "
        "VALUES (?, ?, ?, ?, 1000, ?)",
        (message_id, session, number, text, inherited),
    )


class TestMigration:
    def test_old_copies_find_their_originals_and_old_links_are_repaired(
        self, tmp_path: Path
    ) -> None:
        """Copies are matched to their original by time and content; copies whose original
        is gone (a reverted parent) become one fork's own; a session that was made its own
        parent, a two-session cycle and a link to a deleted parent are cut."""
        path = tmp_path / "old.db"
        conn = old_database(path)
        try:
            insert_session(conn, P, None)
            insert_session(conn, F1, P)
            insert_session(conn, F2, P)
            insert_session(conn, A, A)  # what the transfer of a fork into its parent left
            insert_session(conn, B, C)
            insert_session(conn, C, B)
            insert_session(conn, "claude-code:orphan", "claude-code:deleted")
            insert_prompt(conn, 1, P, "kept")
            insert_prompt(conn, 5, F1, "kept", inherited=1)
            insert_prompt(conn, 6, F1, "reverted in the parent", inherited=1)
            insert_prompt(conn, 7, F2, "kept", inherited=1)
            insert_prompt(conn, 8, F2, "reverted in the parent", inherited=1)
            # Up to 0008: 0009 would then drop the record-less sessions this test looks at.
            schema.migrate(conn, schema.available_migrations()[:8])
        finally:
            conn.close()
        rows = table(path, "SELECT message_id, inherited, origin_id FROM prompts ORDER BY 1")
        assert [tuple(r.values()) for r in rows] == [
            (1, 0, None),
            (5, 1, 1),
            (6, 0, None),  # the older fork's copy stands in for the lost original
            (7, 1, 1),
            (8, 1, 6),
        ]
        assert parents(SqliteBackend(path)) == {
            A: None,
            B: None,
            C: None,
            "claude-code:orphan": None,
            F1: P,
            F2: P,
            P: None,
        }
        check_family(SqliteBackend(path))
